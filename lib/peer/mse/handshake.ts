/**
 * Message Stream Encryption (MSE/PE) handshake as two state machines: bytes
 * received go in, bytes to send and the outcome come out. No I/O; the RNG is
 * injectable. {@linkcode MseResponder} is side B (accepts), {@linkcode MseInitiator}
 * side A (dials).
 *
 * 1. A->B: Ya, PadA
 * 2. B->A: Yb, PadB
 * 3. A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
 *    ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA), IA)
 * 4. B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), then the stream in the selected mode
 *
 * @module
 */

import { createHash } from "node:crypto";
import { HandshakeError } from "../errors.ts";
import { DH_KEY_LENGTH, generateKeyPair, sharedSecret } from "./_dh.ts";
import { Rc4 } from "./rc4.ts";
import { type RandomFill, randomFill } from "./random.ts";

/** `crypto_provide` / `crypto_select` bit: plaintext after the handshake. */
export const CRYPTO_PLAINTEXT = 0x01;
/** `crypto_provide` / `crypto_select` bit: RC4 for the whole stream. */
export const CRYPTO_RC4 = 0x02;
/** Largest padding (PadA, PadB, PadC, PadD) the spec allows, in bytes. */
export const MAX_PAD_LENGTH = 512;
/** Largest initial payload (IA) we accept, in bytes. */
export const MAX_INITIAL_PAYLOAD_LENGTH = 65535;

const HASH_LENGTH = 20;
const VC_LENGTH = 8;
const RC4_DROP = 1024;
const ASCII = new TextEncoder();

/** How the stream continues after the handshake. */
export type MseMethod = "plaintext" | "rc4";

/** The outcome of a completed MSE handshake. */
export interface MseResult {
  /** The selected mode. */
  method: MseMethod;
  /** SKEY: the info hash both sides agreed on. */
  infoHash: Uint8Array;
  /** The initial payload IA, decrypted (responder side; empty on the initiator side). */
  initialPayload: Uint8Array;
  /** Bytes received after the handshake, already decrypted when RC4 was selected. */
  rest: Uint8Array;
  /** For `"rc4"`: the cipher decrypting what the peer sends next. */
  decrypt?: Rc4;
  /** For `"rc4"`: the cipher encrypting what we send next. */
  encrypt?: Rc4;
}

/** What one call to `receive` asks the caller to do. */
export interface MseStep {
  /** Bytes to send to the peer now, if any. */
  send?: Uint8Array;
  /** Set once the handshake is complete. */
  result?: MseResult;
}

/** SHA-1 of the concatenated parts (MSE's HASH). */
function hash(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha1");
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
}

function rc4For(name: "keyA" | "keyB", secret: Uint8Array, skey: Uint8Array): Rc4 {
  return new Rc4(hash(ASCII.encode(name), secret, skey), { drop: RC4_DROP });
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b.slice();
  if (b.length === 0) return a;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number, to: number): number {
  const last = Math.min(to, haystack.length - needle.length);
  outer: for (let i = from; i <= last; i++) {
    for (let k = 0; k < needle.length; k++) if (haystack[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function padLengthOf(option: number | undefined, random: RandomFill): number {
  if (option !== undefined) {
    if (!Number.isInteger(option) || option < 0 || option > MAX_PAD_LENGTH) {
      throw new RangeError(
        `Cannot start MSE handshake: padLength ${option} is not 0 to ${MAX_PAD_LENGTH}`,
      );
    }
    return option;
  }
  // Short random padding: enough to vary packet sizes, cheap to send.
  const byte = new Uint8Array(1);
  random(byte);
  return byte[0]! % 64;
}

function randomPad(length: number, random: RandomFill): Uint8Array {
  const pad = new Uint8Array(length);
  random(pad);
  return pad;
}

function u16(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 8) | bytes[at + 1]!;
}

function u32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>>
    0;
}

/** Options for {@linkcode MseResponder}. */
export interface MseResponderOptions {
  /** Which mode to pick when the peer offers both; defaults to `"plaintext"` (cheaper). */
  prefer?: MseMethod;
  /** Length of PadB and PadD; random (0-63) when omitted. */
  padLength?: number;
  /** RNG for the private key and padding; defaults to `crypto.getRandomValues`. */
  random?: RandomFill;
}

type ResponderState = "ya" | "req1" | "skey" | "vc" | "padc" | "ia" | "done";

/**
 * Side B of the MSE handshake (the accepting side). Feed it every byte
 * received with {@linkcode MseResponder.receive}; send what it returns.
 * SKEY is found among `infoHashes`.
 *
 * @example Against an initiator, in memory
 * ```ts
 * import { MseInitiator, MseResponder } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const infoHash = new Uint8Array(20).fill(1);
 * const a = new MseInitiator(infoHash, { initialPayload: new Uint8Array([1, 2, 3]) });
 * const b = new MseResponder([infoHash]);
 * const yb = b.receive(a.start()).send!;
 * const step3 = a.receive(yb).send!;
 * const done = b.receive(step3);
 * assert.equal(done.result?.method, "plaintext");
 * assert.deepEqual(done.result?.initialPayload, new Uint8Array([1, 2, 3]));
 * assert.equal(a.receive(done.send!).result?.method, "plaintext");
 * ```
 */
export class MseResponder {
  readonly #infoHashes: Iterable<Uint8Array>;
  readonly #prefer: MseMethod;
  readonly #random: RandomFill;
  readonly #padLength: number | undefined;
  #state: ResponderState = "ya";
  #buffer: Uint8Array = new Uint8Array(0);
  #secret: Uint8Array = new Uint8Array(0);
  #infoHash: Uint8Array = new Uint8Array(0);
  #decrypt: Rc4 | undefined;
  #provide = 0;
  #padC = 0;

  /**
   * Makes the receiving side of the handshake.
   *
   * @param infoHashes Info hashes we serve: the SKEY candidates.
   * @param options Preferred mode, padding length, RNG.
   */
  constructor(infoHashes: Iterable<Uint8Array>, options: MseResponderOptions = {}) {
    this.#infoHashes = infoHashes;
    this.#prefer = options.prefer ?? "plaintext";
    this.#random = options.random ?? randomFill;
    this.#padLength = options.padLength;
    padLengthOf(this.#padLength, this.#random);
  }

  /**
   * Takes bytes received from the peer.
   *
   * @param bytes The next received bytes (not retained after the call).
   * @returns Bytes to send, and the result once the handshake is complete.
   * @throws {HandshakeError} If the peer's handshake is invalid or names an unknown SKEY.
   */
  receive(bytes: Uint8Array): MseStep {
    if (this.#state === "done") {
      throw new TypeError("Cannot take MSE handshake bytes: the handshake is complete");
    }
    this.#buffer = concat(this.#buffer, bytes);
    let send: Uint8Array | undefined;
    for (;;) {
      const buf = this.#buffer;
      switch (this.#state) {
        case "ya": {
          if (buf.length < DH_KEY_LENGTH) return send ? { send } : {};
          const keys = generateKeyPair(this.#random);
          this.#secret = sharedSecretOrFail(keys.privateKey, buf.subarray(0, DH_KEY_LENGTH));
          const pad = randomPad(padLengthOf(this.#padLength, this.#random), this.#random);
          send = concat(keys.publicKey, pad);
          this.#buffer = buf.subarray(DH_KEY_LENGTH);
          this.#state = "req1";
          break;
        }
        case "req1": {
          const req1 = hash(ASCII.encode("req1"), this.#secret);
          const at = indexOf(buf, req1, 0, MAX_PAD_LENGTH);
          if (at < 0) {
            if (buf.length >= MAX_PAD_LENGTH + HASH_LENGTH) {
              throw new HandshakeError(
                `Cannot complete MSE handshake: no HASH('req1', S) within ${MAX_PAD_LENGTH} bytes of padding`,
              );
            }
            return send ? { send } : {};
          }
          this.#buffer = buf.subarray(at + HASH_LENGTH);
          this.#state = "skey";
          break;
        }
        case "skey": {
          if (buf.length < HASH_LENGTH) return send ? { send } : {};
          const req3 = hash(ASCII.encode("req3"), this.#secret);
          const req2 = buf.slice(0, HASH_LENGTH);
          for (let i = 0; i < HASH_LENGTH; i++) req2[i]! ^= req3[i]!;
          const found = this.#findSkey(req2);
          if (found === undefined) {
            throw new HandshakeError(
              "Cannot complete MSE handshake: peer asked for an info hash we do not serve",
            );
          }
          this.#infoHash = found;
          this.#decrypt = rc4For("keyA", this.#secret, found);
          this.#buffer = buf.subarray(HASH_LENGTH);
          this.#state = "vc";
          break;
        }
        case "vc": {
          if (buf.length < VC_LENGTH + 6) return send ? { send } : {};
          const head = this.#decrypt!.xor(buf.slice(0, VC_LENGTH + 6));
          if (!equal(head.subarray(0, VC_LENGTH), new Uint8Array(VC_LENGTH))) {
            throw new HandshakeError("Cannot complete MSE handshake: bad verification constant");
          }
          this.#provide = u32(head, VC_LENGTH);
          this.#padC = u16(head, VC_LENGTH + 4);
          if (this.#padC > MAX_PAD_LENGTH) {
            throw new HandshakeError(
              `Cannot complete MSE handshake: PadC length ${this.#padC} exceeds ${MAX_PAD_LENGTH}`,
            );
          }
          this.#buffer = buf.subarray(VC_LENGTH + 6);
          this.#state = "padc";
          break;
        }
        case "padc": {
          if (buf.length < this.#padC + 2) return send ? { send } : {};
          const tail = this.#decrypt!.xor(buf.slice(0, this.#padC + 2));
          this.#padC = u16(tail, this.#padC); // now len(IA)
          this.#buffer = buf.subarray(tail.length);
          this.#state = "ia";
          break;
        }
        case "ia": {
          const iaLength = this.#padC;
          if (buf.length < iaLength) return send ? { send } : {};
          const initialPayload = this.#decrypt!.xor(buf.slice(0, iaLength));
          this.#state = "done";
          this.#buffer = new Uint8Array(0);
          const { answer, result } = this.#finish(initialPayload, buf.subarray(iaLength));
          return { send: send ? concat(send, answer) : answer, result };
        }
        default:
          return send ? { send } : {};
      }
    }
  }

  #findSkey(req2: Uint8Array): Uint8Array | undefined {
    const prefix = ASCII.encode("req2");
    for (const infoHash of this.#infoHashes) {
      if (equal(hash(prefix, infoHash), req2)) return infoHash;
    }
    return undefined;
  }

  #finish(
    initialPayload: Uint8Array,
    received: Uint8Array,
  ): { answer: Uint8Array; result: MseResult } {
    const provide = this.#provide;
    const preferred = this.#prefer === "rc4" ? CRYPTO_RC4 : CRYPTO_PLAINTEXT;
    const other = preferred === CRYPTO_RC4 ? CRYPTO_PLAINTEXT : CRYPTO_RC4;
    const select = provide & preferred ? preferred : provide & other ? other : 0;
    if (select === 0) {
      throw new HandshakeError(
        `Cannot complete MSE handshake: peer provides no supported method (crypto_provide ${provide})`,
      );
    }
    const encrypt = rc4For("keyB", this.#secret, this.#infoHash);
    const padD = padLengthOf(this.#padLength, this.#random);
    const answer = new Uint8Array(VC_LENGTH + 6 + padD);
    answer[VC_LENGTH + 3] = select;
    answer[VC_LENGTH + 4] = padD >> 8;
    answer[VC_LENGTH + 5] = padD & 255;
    encrypt.xor(answer);
    const decrypt = this.#decrypt!;
    const result: MseResult = select === CRYPTO_RC4
      ? {
        method: "rc4",
        infoHash: this.#infoHash,
        initialPayload,
        rest: decrypt.xor(received.slice()),
        decrypt,
        encrypt,
      }
      : { method: "plaintext", infoHash: this.#infoHash, initialPayload, rest: received.slice() };
    return { answer, result };
  }
}

function sharedSecretOrFail(privateKey: bigint, peerKey: Uint8Array): Uint8Array {
  try {
    return sharedSecret(privateKey, peerKey);
  } catch (error) {
    throw new HandshakeError("Cannot complete MSE handshake: invalid public key", {
      cause: error,
    });
  }
}

/** Options for {@linkcode MseInitiator}. */
export interface MseInitiatorOptions {
  /** `crypto_provide` bits; defaults to both (`CRYPTO_PLAINTEXT | CRYPTO_RC4`). */
  provide?: number;
  /** IA: bytes sent encrypted inside the handshake, typically the BitTorrent handshake. */
  initialPayload?: Uint8Array;
  /** Length of PadA and PadC; random (0-63) when omitted. */
  padLength?: number;
  /** RNG for the private key and padding; defaults to `crypto.getRandomValues`. */
  random?: RandomFill;
}

type InitiatorState = "new" | "yb" | "vc" | "select" | "padd" | "done";

/**
 * Side A of the MSE handshake (the dialling side). Send
 * {@linkcode MseInitiator.start}'s bytes, then feed every byte received to
 * {@linkcode MseInitiator.receive} and send what it returns.
 *
 * @example Usage
 * ```ts
 * import { MseInitiator } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const a = new MseInitiator(new Uint8Array(20), { padLength: 0 });
 * assert.equal(a.start().length, 96);
 * ```
 */
export class MseInitiator {
  readonly #infoHash: Uint8Array;
  readonly #provide: number;
  readonly #initialPayload: Uint8Array;
  readonly #padLength: number | undefined;
  readonly #random: RandomFill;
  #state: InitiatorState = "new";
  #buffer: Uint8Array = new Uint8Array(0);
  #privateKey = 0n;
  #encrypt: Rc4 | undefined;
  #decrypt: Rc4 | undefined;
  #vc: Uint8Array = new Uint8Array(0);
  #select = 0;
  #padD = 0;

  /**
   * Makes the initiating side of the handshake.
   *
   * @param infoHash SKEY: the 20-byte info hash of the torrent we want.
   * @param options Provided methods, initial payload, padding, RNG.
   * @throws {TypeError} If `infoHash` is not 20 bytes or `provide` offers nothing we support.
   * @throws {RangeError} If `padLength` or the initial payload is too long.
   */
  constructor(infoHash: Uint8Array, options: MseInitiatorOptions = {}) {
    if (infoHash.length !== 20) {
      throw new TypeError(
        `Cannot start MSE handshake: info hash is ${infoHash.length} bytes, not 20`,
      );
    }
    const provide = options.provide ?? (CRYPTO_PLAINTEXT | CRYPTO_RC4);
    if ((provide & (CRYPTO_PLAINTEXT | CRYPTO_RC4)) === 0) {
      throw new TypeError(`Cannot start MSE handshake: provide ${provide} offers no method`);
    }
    const ia = options.initialPayload ?? new Uint8Array(0);
    if (ia.length > MAX_INITIAL_PAYLOAD_LENGTH) {
      throw new RangeError(`Cannot start MSE handshake: initial payload of ${ia.length} bytes`);
    }
    this.#infoHash = infoHash;
    this.#provide = provide;
    this.#initialPayload = ia;
    this.#random = options.random ?? randomFill;
    this.#padLength = options.padLength;
    padLengthOf(this.#padLength, this.#random);
  }

  /**
   * Starts the handshake.
   *
   * @returns Ya and PadA, to send first.
   * @throws {TypeError} If called twice.
   */
  start(): Uint8Array {
    if (this.#state !== "new") throw new TypeError("Cannot start MSE handshake twice");
    const keys = generateKeyPair(this.#random);
    this.#privateKey = keys.privateKey;
    this.#state = "yb";
    return concat(
      keys.publicKey,
      randomPad(padLengthOf(this.#padLength, this.#random), this.#random),
    );
  }

  /**
   * Takes bytes received from the peer.
   *
   * @param bytes The next received bytes (not retained after the call).
   * @returns Bytes to send, and the result once the handshake is complete.
   * @throws {HandshakeError} If the peer's answer is invalid.
   */
  receive(bytes: Uint8Array): MseStep {
    if (this.#state === "new" || this.#state === "done") {
      throw new TypeError(`Cannot take MSE handshake bytes: handshake is ${this.#state}`);
    }
    this.#buffer = concat(this.#buffer, bytes);
    let send: Uint8Array | undefined;
    for (;;) {
      const buf = this.#buffer;
      switch (this.#state) {
        case "yb": {
          if (buf.length < DH_KEY_LENGTH) return send ? { send } : {};
          const secret = sharedSecretOrFail(this.#privateKey, buf.subarray(0, DH_KEY_LENGTH));
          this.#privateKey = 0n;
          send = this.#step3(secret);
          this.#buffer = buf.subarray(DH_KEY_LENGTH);
          this.#state = "vc";
          break;
        }
        case "vc": {
          // PadB (0-512 bytes) precedes ENCRYPT(VC): find the encrypted VC.
          const at = indexOf(buf, this.#vc, 0, MAX_PAD_LENGTH);
          if (at < 0) {
            if (buf.length >= MAX_PAD_LENGTH + VC_LENGTH) {
              throw new HandshakeError(
                `Cannot complete MSE handshake: no verification constant within ${MAX_PAD_LENGTH} bytes of padding`,
              );
            }
            return send ? { send } : {};
          }
          this.#buffer = buf.subarray(at + VC_LENGTH);
          this.#state = "select";
          break;
        }
        case "select": {
          if (buf.length < 6) return send ? { send } : {};
          const head = this.#decrypt!.xor(buf.slice(0, 6));
          const select = u32(head, 0);
          if (
            (select !== CRYPTO_PLAINTEXT && select !== CRYPTO_RC4) || (select & this.#provide) === 0
          ) {
            throw new HandshakeError(
              `Cannot complete MSE handshake: peer selected unprovided method ${select}`,
            );
          }
          this.#select = select;
          this.#padD = u16(head, 4);
          if (this.#padD > MAX_PAD_LENGTH) {
            throw new HandshakeError(
              `Cannot complete MSE handshake: PadD length ${this.#padD} exceeds ${MAX_PAD_LENGTH}`,
            );
          }
          this.#buffer = buf.subarray(6);
          this.#state = "padd";
          break;
        }
        case "padd": {
          if (buf.length < this.#padD) return send ? { send } : {};
          this.#decrypt!.xor(buf.slice(0, this.#padD));
          const received = buf.subarray(this.#padD);
          this.#state = "done";
          this.#buffer = new Uint8Array(0);
          const empty = new Uint8Array(0);
          const result: MseResult = this.#select === CRYPTO_RC4
            ? {
              method: "rc4",
              infoHash: this.#infoHash,
              initialPayload: empty,
              rest: this.#decrypt!.xor(received.slice()),
              decrypt: this.#decrypt!,
              encrypt: this.#encrypt!,
            }
            : {
              method: "plaintext",
              infoHash: this.#infoHash,
              initialPayload: empty,
              rest: received.slice(),
            };
          return send ? { send, result } : { result };
        }
        default:
          return send ? { send } : {};
      }
    }
  }

  #step3(secret: Uint8Array): Uint8Array {
    const skey = this.#infoHash;
    const req1 = hash(ASCII.encode("req1"), secret);
    const req2 = hash(ASCII.encode("req2"), skey);
    const req3 = hash(ASCII.encode("req3"), secret);
    for (let i = 0; i < HASH_LENGTH; i++) req2[i]! ^= req3[i]!;
    this.#encrypt = rc4For("keyA", secret, skey);
    this.#decrypt = rc4For("keyB", secret, skey);
    // ENCRYPT(VC) as B sends it: the first 8 bytes of B's keystream.
    this.#vc = this.#decrypt.xor(new Uint8Array(VC_LENGTH));
    const padC = padLengthOf(this.#padLength, this.#random);
    const ia = this.#initialPayload;
    const body = new Uint8Array(VC_LENGTH + 6 + padC + 2 + ia.length);
    let at = VC_LENGTH;
    body[at + 3] = this.#provide & 0xff;
    body[at + 4] = padC >> 8;
    body[at + 5] = padC & 255;
    at += 6 + padC;
    body[at] = ia.length >> 8;
    body[at + 1] = ia.length & 255;
    body.set(ia, at + 2);
    this.#encrypt.xor(body);
    const out = new Uint8Array(2 * HASH_LENGTH + body.length);
    out.set(req1);
    out.set(req2, HASH_LENGTH);
    out.set(body, 2 * HASH_LENGTH);
    return out;
  }
}
