/**
 * The BitTorrent handshake codec (BEP 3), with helpers for the reserved bits
 * used by the extension protocol (BEP 10), the fast extension (BEP 6) and the
 * DHT (BEP 5).
 *
 * Wire layout (68 bytes):
 *
 * | offset | size | field                                  |
 * |-------:|-----:|----------------------------------------|
 * |      0 |    1 | protocol string length, always 19      |
 * |      1 |   19 | `"BitTorrent protocol"`                |
 * |     20 |    8 | reserved (feature) bits                |
 * |     28 |   20 | info hash                              |
 * |     48 |   20 | peer id                                |
 *
 * @module
 */

import { HandshakeError } from "./errors.ts";

/** The protocol string sent at the start of every handshake (BEP 3). */
export const PROTOCOL_STRING = "BitTorrent protocol";

/** Length in bytes of a complete BitTorrent handshake (BEP 3). */
export const HANDSHAKE_LENGTH = 68;

/** Length in bytes of the reserved field of a handshake. */
export const RESERVED_LENGTH = 8;

/** Where a feature bit sits in the 8 reserved handshake bytes. */
export interface ReservedBit {
  /** Index of the byte, 0 to 7. */
  byte: number;
  /** Mask of the bit within that byte. */
  mask: number;
}

/** Byte index and mask of the extension protocol bit (BEP 10): byte 5, `0x10`. */
export const EXTENSION_PROTOCOL_BIT: Readonly<ReservedBit> = Object.freeze({ byte: 5, mask: 0x10 });

/** Byte index and mask of the fast extension bit (BEP 6): byte 7, `0x04`. */
export const FAST_EXTENSION_BIT: Readonly<ReservedBit> = Object.freeze({ byte: 7, mask: 0x04 });

/** Byte index and mask of the DHT bit (BEP 5): byte 7, `0x01`. */
export const DHT_BIT: Readonly<ReservedBit> = Object.freeze({ byte: 7, mask: 0x01 });

const PROTOCOL_BYTES = new TextEncoder().encode(PROTOCOL_STRING);
const INFO_HASH_OFFSET = 28;
const PEER_ID_OFFSET = 48;
const ID_LENGTH = 20;

/** The values carried by a BitTorrent handshake (BEP 3). */
export interface Handshake {
  /** The 8 reserved bytes announcing optional features. */
  reserved: Uint8Array;
  /** The 20-byte SHA-1 info hash of the torrent. */
  infoHash: Uint8Array;
  /** The 20-byte peer id of the sender. */
  peerId: Uint8Array;
}

/** Options for {@linkcode encodeHandshake}. */
export interface EncodeHandshakeOptions {
  /** The 20-byte info hash. */
  infoHash: Uint8Array;
  /** The 20-byte peer id. */
  peerId: Uint8Array;
  /**
   * The 8 reserved bytes. Defaults to only the extension protocol bit
   * (BEP 10) set, i.e. `reservedBits({ extensionProtocol: true })`.
   */
  reserved?: Uint8Array;
}

/** Which features to announce with {@linkcode reservedBits}. */
export interface ReservedBitsOptions {
  /** The extension protocol (BEP 10): byte 5, `0x10`. */
  extensionProtocol?: boolean;
  /** The fast extension (BEP 6): byte 7, `0x04`. */
  fast?: boolean;
  /** The DHT (BEP 5): byte 7, `0x01`. */
  dht?: boolean;
}

/**
 * Builds the 8 reserved handshake bytes announcing the given features
 * (BEP 10 extension protocol, BEP 6 fast extension, BEP 5 DHT).
 *
 * @param options The features to announce; all default to `false`.
 * @returns A fresh 8-byte array.
 *
 * @example Usage
 * ```ts
 * import { reservedBits } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(
 *   reservedBits({ extensionProtocol: true, fast: true, dht: true }),
 *   new Uint8Array([0, 0, 0, 0, 0, 0x10, 0, 0x05]),
 * );
 * assert.deepEqual(reservedBits(), new Uint8Array(8));
 * ```
 */
export function reservedBits(options: ReservedBitsOptions = {}): Uint8Array {
  const reserved = new Uint8Array(RESERVED_LENGTH);
  if (options.extensionProtocol) setBit(reserved, EXTENSION_PROTOCOL_BIT);
  if (options.fast) setBit(reserved, FAST_EXTENSION_BIT);
  if (options.dht) setBit(reserved, DHT_BIT);
  return reserved;
}

/**
 * Tells whether reserved handshake bytes announce the extension protocol
 * (BEP 10).
 *
 * @param reserved The 8 reserved bytes of a handshake.
 * @returns `true` if byte 5 has bit `0x10` set.
 *
 * @example Usage
 * ```ts
 * import { reservedBits, supportsExtensionProtocol } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(supportsExtensionProtocol(reservedBits({ extensionProtocol: true })), true);
 * assert.equal(supportsExtensionProtocol(reservedBits({ fast: true })), false);
 * ```
 */
export function supportsExtensionProtocol(reserved: Uint8Array): boolean {
  return hasBit(reserved, EXTENSION_PROTOCOL_BIT);
}

/**
 * Tells whether reserved handshake bytes announce the fast extension (BEP 6).
 *
 * @param reserved The 8 reserved bytes of a handshake.
 * @returns `true` if byte 7 has bit `0x04` set.
 *
 * @example Usage
 * ```ts
 * import { reservedBits, supportsFastExtension } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(supportsFastExtension(reservedBits({ fast: true })), true);
 * assert.equal(supportsFastExtension(reservedBits({ dht: true })), false);
 * ```
 */
export function supportsFastExtension(reserved: Uint8Array): boolean {
  return hasBit(reserved, FAST_EXTENSION_BIT);
}

/**
 * Tells whether reserved handshake bytes announce DHT support (BEP 5).
 *
 * @param reserved The 8 reserved bytes of a handshake.
 * @returns `true` if byte 7 has bit `0x01` set.
 *
 * @example Usage
 * ```ts
 * import { reservedBits, supportsDht } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(supportsDht(reservedBits({ dht: true })), true);
 * assert.equal(supportsDht(reservedBits({ fast: true })), false);
 * ```
 */
export function supportsDht(reserved: Uint8Array): boolean {
  return hasBit(reserved, DHT_BIT);
}

/**
 * Encodes a BitTorrent handshake (BEP 3).
 *
 * @param options The info hash, peer id and optional reserved bytes.
 * @returns A fresh 68-byte handshake.
 * @throws {TypeError} If the info hash or peer id is not 20 bytes, or the
 * reserved field is not 8 bytes.
 *
 * @example Usage
 * ```ts
 * import { decodeHandshake, encodeHandshake, supportsExtensionProtocol } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const infoHash = new Uint8Array(20).fill(0xaa);
 * const peerId = new TextEncoder().encode("-DT0100-abcdefghijkl");
 * const bytes = encodeHandshake({ infoHash, peerId });
 * assert.equal(bytes.length, 68);
 * assert.equal(bytes[0], 19);
 *
 * const handshake = decodeHandshake(bytes);
 * assert.deepEqual(handshake.infoHash, infoHash);
 * assert.deepEqual(handshake.peerId, peerId);
 * assert.equal(supportsExtensionProtocol(handshake.reserved), true);
 * ```
 */
export function encodeHandshake(options: EncodeHandshakeOptions): Uint8Array {
  const { infoHash, peerId } = options;
  const reserved = options.reserved ?? reservedBits({ extensionProtocol: true });
  checkLength(infoHash, ID_LENGTH, "info hash");
  checkLength(peerId, ID_LENGTH, "peer id");
  checkLength(reserved, RESERVED_LENGTH, "reserved field");
  const bytes = new Uint8Array(HANDSHAKE_LENGTH);
  bytes[0] = PROTOCOL_BYTES.length;
  bytes.set(PROTOCOL_BYTES, 1);
  bytes.set(reserved, 1 + PROTOCOL_BYTES.length);
  bytes.set(infoHash, INFO_HASH_OFFSET);
  bytes.set(peerId, PEER_ID_OFFSET);
  return bytes;
}

/**
 * Decodes a BitTorrent handshake (BEP 3).
 *
 * The returned fields are copies, so the input buffer may be reused.
 *
 * @param bytes Exactly 68 bytes of handshake.
 * @returns The reserved bytes, info hash and peer id.
 * @throws {HandshakeError} If the input is not 68 bytes or does not start
 * with the `"BitTorrent protocol"` string.
 *
 * @example Usage
 * ```ts
 * import { decodeHandshake, encodeHandshake } from "./handshake.ts";
 * import { HandshakeError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeHandshake({ infoHash: new Uint8Array(20), peerId: new Uint8Array(20) });
 * assert.equal(decodeHandshake(bytes).peerId.length, 20);
 *
 * bytes[1] = 0x62; // "bitTorrent protocol"
 * assert.throws(() => decodeHandshake(bytes), HandshakeError);
 * ```
 */
export function decodeHandshake(bytes: Uint8Array): Handshake {
  if (bytes.length !== HANDSHAKE_LENGTH) {
    throw new HandshakeError(
      `Cannot decode handshake: length is ${bytes.length} bytes, expected ${HANDSHAKE_LENGTH}`,
    );
  }
  if (!hasProtocolPrefix(bytes)) {
    throw new HandshakeError(
      `Cannot decode handshake: protocol string is "${
        describePrefix(bytes)
      }", expected "${PROTOCOL_STRING}"`,
    );
  }
  return {
    reserved: bytes.slice(1 + PROTOCOL_BYTES.length, INFO_HASH_OFFSET),
    infoHash: bytes.slice(INFO_HASH_OFFSET, PEER_ID_OFFSET),
    peerId: bytes.slice(PEER_ID_OFFSET, HANDSHAKE_LENGTH),
  };
}

const PEER_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * Generates a 20-byte peer id (BEP 20 Azureus style): the ASCII prefix
 * followed by random alphanumeric characters from `crypto.getRandomValues`.
 *
 * @param prefix Client prefix, `"-DT0100-"` by default.
 * @returns A fresh 20-byte peer id.
 * @throws {TypeError} If the prefix is not printable ASCII.
 * @throws {RangeError} If the prefix is longer than 20 bytes.
 *
 * @example Usage
 * ```ts
 * import { generatePeerId } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const peerId = generatePeerId();
 * assert.equal(peerId.length, 20);
 * assert.match(new TextDecoder().decode(peerId), /^-DT0100-[0-9A-Za-z]{12}$/);
 * ```
 */
export function generatePeerId(prefix = "-DT0100-"): Uint8Array {
  if (!/^[\x20-\x7e]*$/.test(prefix)) {
    throw new TypeError(`Cannot generate peer id: prefix "${prefix}" is not printable ASCII`);
  }
  if (prefix.length > ID_LENGTH) {
    throw new RangeError(
      `Cannot generate peer id: prefix "${prefix}" is ${prefix.length} bytes, at most ${ID_LENGTH} allowed`,
    );
  }
  const peerId = new Uint8Array(ID_LENGTH);
  for (let i = 0; i < prefix.length; i++) peerId[i] = prefix.charCodeAt(i);
  const random = new Uint8Array(64);
  let filled = prefix.length;
  while (filled < ID_LENGTH) {
    crypto.getRandomValues(random);
    for (const byte of random) {
      // Rejection sampling keeps the characters uniform: 248 = 4 * 62.
      if (byte >= 248) continue;
      peerId[filled++] = PEER_ID_ALPHABET.charCodeAt(byte % PEER_ID_ALPHABET.length);
      if (filled === ID_LENGTH) break;
    }
  }
  return peerId;
}

function setBit(reserved: Uint8Array, bit: { byte: number; mask: number }): void {
  reserved[bit.byte] = (reserved[bit.byte] ?? 0) | bit.mask;
}

function hasBit(reserved: Uint8Array, bit: { byte: number; mask: number }): boolean {
  return ((reserved[bit.byte] ?? 0) & bit.mask) !== 0;
}

function checkLength(bytes: Uint8Array, expected: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== expected) {
    const actual = bytes instanceof Uint8Array ? `${bytes.length} bytes` : typeof bytes;
    throw new TypeError(
      `Cannot encode handshake: ${what} is ${actual}, expected ${expected} bytes`,
    );
  }
}

function hasProtocolPrefix(bytes: Uint8Array): boolean {
  if (bytes[0] !== PROTOCOL_BYTES.length) return false;
  for (let i = 0; i < PROTOCOL_BYTES.length; i++) {
    if (bytes[i + 1] !== PROTOCOL_BYTES[i]) return false;
  }
  return true;
}

function describePrefix(bytes: Uint8Array): string {
  const length = Math.min(bytes[0] ?? 0, bytes.length - 1, 19);
  let text = "";
  for (let i = 1; i <= length; i++) {
    const byte = bytes[i] ?? 0;
    text += byte >= 0x20 && byte < 0x7f
      ? String.fromCharCode(byte)
      : `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return text;
}
