/**
 * The RC4 stream cipher, as used by Message Stream Encryption (MSE/PE).
 *
 * @module
 */

/**
 * An RC4 keystream. {@linkcode Rc4.xor} encrypts or decrypts (the same
 * operation) in place and advances the keystream.
 *
 * @example Test vector
 * ```ts
 * import { Rc4 } from "./rc4.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new TextEncoder().encode("Plaintext");
 * new Rc4(new TextEncoder().encode("Key")).xor(data);
 * assert.equal(data.toHex(), "bbf316e8d940af0ad3");
 * ```
 */
export class Rc4 {
  readonly #s = new Uint8Array(256);
  #i = 0;
  #j = 0;

  /**
   * Runs the key schedule.
   *
   * @param key 1 to 256 key bytes.
   * @param options `drop`: keystream bytes to discard first (MSE uses 1024).
   * @throws {RangeError} If the key is empty or longer than 256 bytes.
   */
  constructor(key: Uint8Array, options: { drop?: number } = {}) {
    if (key.length === 0 || key.length > 256) {
      throw new RangeError(`Cannot create RC4 cipher: key length ${key.length} is not 1 to 256`);
    }
    const s = this.#s;
    for (let i = 0; i < 256; i++) s[i] = i;
    let j = 0;
    for (let i = 0; i < 256; i++) {
      const si = s[i]!;
      j = (j + si + key[i % key.length]!) & 255;
      s[i] = s[j]!;
      s[j] = si;
    }
    if (options.drop) this.skip(options.drop);
  }

  /**
   * Discards `count` keystream bytes.
   *
   * @param count Number of bytes.
   */
  skip(count: number): void {
    this.xor(new Uint8Array(count));
  }

  /**
   * XORs `bytes` with the next keystream bytes, in place.
   *
   * @param bytes The data; overwritten.
   * @returns `bytes`.
   */
  xor(bytes: Uint8Array): Uint8Array {
    const s = this.#s;
    let i = this.#i, j = this.#j;
    const n = bytes.length;
    for (let k = 0; k < n; k++) {
      i = (i + 1) & 255;
      const si = s[i]!;
      j = (j + si) & 255;
      const sj = s[j]!;
      s[i] = sj;
      s[j] = si;
      bytes[k] = bytes[k]! ^ s[(si + sj) & 255]!;
    }
    this.#i = i;
    this.#j = j;
    return bytes;
  }
}
