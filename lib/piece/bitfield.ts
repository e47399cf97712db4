/**
 * A fixed-length set of piece indices in BEP 3 bit order.
 *
 * @module
 */

const POPCOUNT = buildPopcount();

function buildPopcount(): Uint8Array {
  const table = new Uint8Array(256);
  for (let i = 1; i < 256; i++) table[i] = (i & 1) + table[i >> 1]!;
  return table;
}

/**
 * A set of piece indices stored as bits in BEP 3 order: the high bit of byte 0
 * is piece 0. The number of set bits is kept incrementally, so `count` is O(1).
 *
 * @example Usage
 * ```ts
 * import { Bitfield } from "./bitfield.ts";
 * import assert from "node:assert/strict";
 *
 * const bits = new Bitfield(10);
 * bits.set(0);
 * bits.set(9);
 * assert.equal(bits.count, 2);
 * assert.deepEqual(bits.toBytes(), new Uint8Array([0b1000_0000, 0b0100_0000]));
 * assert.deepEqual([...bits], [0, 9]);
 * ```
 */
export class Bitfield implements Iterable<number> {
  readonly #bytes: Uint8Array;
  readonly #length: number;
  #count = 0;

  /**
   * Creates an empty bitfield.
   *
   * @param length Number of pieces (bits).
   * @throws {RangeError} If `length` is not a non-negative safe integer.
   */
  constructor(length: number) {
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`Cannot create bitfield: invalid length "${length}"`);
    }
    this.#length = length;
    this.#bytes = new Uint8Array(Math.ceil(length / 8));
  }

  /**
   * Builds a bitfield from the payload of a `bitfield` message (BEP 3). The bytes are copied.
   *
   * @example Usage
   * ```ts
   * import { Bitfield } from "./bitfield.ts";
   * import assert from "node:assert/strict";
   *
   * const bits = Bitfield.fromBytes(new Uint8Array([0b1010_0000]), 3);
   * assert.deepEqual([...bits], [0, 2]);
   * assert.throws(() => Bitfield.fromBytes(new Uint8Array([0b0001_0000]), 3), RangeError);
   * ```
   *
   * @param bytes The bitfield bytes, high bit of byte 0 being piece 0.
   * @param length Number of pieces.
   * @returns A new bitfield.
   * @throws {RangeError} If the byte length is not `ceil(length / 8)` or a spare bit is set.
   */
  static fromBytes(bytes: Uint8Array, length: number): Bitfield {
    const field = new Bitfield(length);
    if (bytes.length !== field.#bytes.length) {
      throw new RangeError(
        `Cannot read bitfield: expected ${field.#bytes.length} bytes for ${length} pieces, got "${bytes.length}"`,
      );
    }
    const spare = field.#bytes.length * 8 - length;
    if (spare > 0) {
      const last = bytes[bytes.length - 1]!;
      if ((last & ((1 << spare) - 1)) !== 0) {
        throw new RangeError(`Cannot read bitfield: spare bits set past piece ${length - 1}`);
      }
    }
    field.#bytes.set(bytes);
    let count = 0;
    for (let i = 0; i < bytes.length; i++) count += POPCOUNT[bytes[i]!]!;
    field.#count = count;
    return field;
  }

  /** Number of pieces (bits) in the field. */
  get length(): number {
    return this.#length;
  }

  /** Number of set bits. O(1). */
  get count(): number {
    return this.#count;
  }

  /** Whether every bit is set. */
  get isComplete(): boolean {
    return this.#count === this.#length;
  }

  /**
   * Tells whether piece `index` is set.
   *
   * @param index Piece index.
   * @returns `true` when set.
   * @throws {RangeError} If `index` is out of range.
   */
  has(index: number): boolean {
    this.#check(index);
    return (this.#bytes[index >>> 3]! & (0x80 >>> (index & 7))) !== 0;
  }

  /**
   * Sets piece `index`.
   *
   * @param index Piece index.
   * @returns `true` if the bit changed.
   * @throws {RangeError} If `index` is out of range.
   */
  set(index: number): boolean {
    this.#check(index);
    const byte = index >>> 3;
    const mask = 0x80 >>> (index & 7);
    const old = this.#bytes[byte]!;
    if ((old & mask) !== 0) return false;
    this.#bytes[byte] = old | mask;
    this.#count++;
    return true;
  }

  /**
   * Clears piece `index`.
   *
   * @param index Piece index.
   * @returns `true` if the bit changed.
   * @throws {RangeError} If `index` is out of range.
   */
  clear(index: number): boolean {
    this.#check(index);
    const byte = index >>> 3;
    const mask = 0x80 >>> (index & 7);
    const old = this.#bytes[byte]!;
    if ((old & mask) === 0) return false;
    this.#bytes[byte] = old & ~mask;
    this.#count--;
    return true;
  }

  /** Sets every bit (as after a `have all` message, BEP 6). */
  setAll(): void {
    if (this.#length === 0) return;
    this.#bytes.fill(0xff);
    const spare = this.#bytes.length * 8 - this.#length;
    if (spare > 0) this.#bytes[this.#bytes.length - 1] = (0xff << spare) & 0xff;
    this.#count = this.#length;
  }

  /** Clears every bit. */
  clearAll(): void {
    this.#bytes.fill(0);
    this.#count = 0;
  }

  /**
   * Returns a copy of the bytes, suitable as a `bitfield` message payload (BEP 3).
   *
   * @returns The bitfield bytes.
   */
  toBytes(): Uint8Array {
    return this.#bytes.slice();
  }

  /**
   * Iterates the set indices in ascending order, skipping empty bytes.
   *
   * @returns An iterator of set piece indices.
   */
  *[Symbol.iterator](): IterableIterator<number> {
    const bytes = this.#bytes;
    for (let b = 0; b < bytes.length; b++) {
      const v = bytes[b]!;
      if (v === 0) continue;
      for (let bit = 0; bit < 8; bit++) {
        if ((v & (0x80 >>> bit)) !== 0) yield b * 8 + bit;
      }
    }
  }

  #check(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.#length) {
      throw new RangeError(
        `Cannot access bitfield: piece index "${index}" out of range 0..${this.#length - 1}`,
      );
    }
  }
}
