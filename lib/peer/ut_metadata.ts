/**
 * The `ut_metadata` extension codec (BEP 9), used to fetch a torrent's info
 * dictionary (the "metadata") from peers for magnet links, and
 * {@linkcode MetadataAssembler}, which collects the 16 KiB metadata pieces
 * and checks them against the info hash.
 *
 * Each message is a bencoded dictionary with `msg_type` (0 request, 1 data,
 * 2 reject) and `piece`; a data message adds `total_size` and is followed,
 * outside the dictionary, by the piece's bytes.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { decodePrefix, encode, isDict } from "../bencode/mod.ts";
import type { BencodeValue } from "../bencode/mod.ts";
import { PeerProtocolError } from "./errors.ts";

/** Size of a metadata piece (BEP 9): 16 KiB; only the last piece may be shorter. */
export const METADATA_PIECE_LENGTH = 16384;

/** Default cap on the metadata size we accept: 16 MiB. */
export const DEFAULT_MAX_METADATA_SIZE = 16 * 1024 * 1024;

/** The `msg_type` values of BEP 9. */
export const METADATA_MSG_TYPE: Readonly<{ request: 0; data: 1; reject: 2 }> = Object.freeze(
  { request: 0, data: 1, reject: 2 } as const,
);

/** A `ut_metadata` message (BEP 9), discriminated on `type`. */
export type MetadataMessage =
  | { type: "request"; piece: number }
  | { type: "data"; piece: number; totalSize: number; data: Uint8Array }
  | { type: "reject"; piece: number }
  /** A `msg_type` this codec does not know; BEP 9 says to ignore it. */
  | { type: "unknown"; msgType: number };

/** Options for {@linkcode decodeMetadataMessage}. */
export interface DecodeMetadataMessageOptions {
  /** Largest `total_size` (and so piece index) accepted. Defaults to 16 MiB. */
  maxMetadataSize?: number;
  /**
   * The metadata size, if known (from the peer's `metadata_size`): pieces
   * must be below its piece count and a data message's `total_size` must
   * equal it.
   */
  metadataSize?: number;
}

/**
 * Returns the number of 16 KiB metadata pieces of a metadata size (BEP 9).
 *
 * @param size The metadata size in bytes.
 * @returns The piece count: `ceil(size / 16384)`.
 * @throws {RangeError} If `size` is not a non-negative safe integer.
 *
 * @example Usage
 * ```ts
 * import { metadataPieceCount } from "./ut_metadata.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(metadataPieceCount(16384), 1);
 * assert.equal(metadataPieceCount(16385), 2);
 * assert.equal(metadataPieceCount(0), 0);
 * ```
 */
export function metadataPieceCount(size: number): number {
  checkSize(size);
  return Math.ceil(size / METADATA_PIECE_LENGTH);
}

/**
 * Returns the length of one metadata piece (BEP 9): 16 KiB, except the last.
 *
 * @param size The metadata size in bytes.
 * @param piece The piece index.
 * @returns The piece length in bytes.
 * @throws {RangeError} If `size` is invalid or `piece` is not an index
 * below {@linkcode metadataPieceCount}.
 *
 * @example Usage
 * ```ts
 * import { metadataPieceLength } from "./ut_metadata.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(metadataPieceLength(20000, 0), 16384);
 * assert.equal(metadataPieceLength(20000, 1), 3616);
 * ```
 */
export function metadataPieceLength(size: number, piece: number): number {
  const count = metadataPieceCount(size);
  if (!Number.isInteger(piece) || piece < 0 || piece >= count) {
    throw new RangeError(
      `Cannot get metadata piece length: piece ${piece} is not an index below ${count}`,
    );
  }
  return Math.min(METADATA_PIECE_LENGTH, size - piece * METADATA_PIECE_LENGTH);
}

/**
 * Encodes a `ut_metadata` message (BEP 9) into the payload of an `extended`
 * message. A data message is the bencoded dictionary followed by the bytes.
 *
 * @param message The message; `unknown` cannot be encoded.
 * @returns The payload.
 * @throws {RangeError} If `piece` is not a non-negative integer, or a data
 * message's `totalSize` is invalid, its `piece` past the end, or its `data`
 * length is not the piece's length.
 * @throws {TypeError} For an `unknown` message.
 *
 * @example Usage
 * ```ts
 * import { encodeMetadataMessage } from "./ut_metadata.ts";
 * import assert from "node:assert/strict";
 *
 * const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
 * assert.equal(text(encodeMetadataMessage({ type: "request", piece: 0 })), "d8:msg_typei0e5:piecei0ee");
 * assert.equal(
 *   text(encodeMetadataMessage({ type: "data", piece: 0, totalSize: 3, data: new Uint8Array([65, 66, 67]) })),
 *   "d8:msg_typei1e5:piecei0e10:total_sizei3eeABC",
 * );
 * ```
 */
export function encodeMetadataMessage(message: MetadataMessage): Uint8Array {
  if (message.type === "unknown") {
    throw new TypeError(
      `Cannot encode ut_metadata message: unknown msg_type ${message.msgType}`,
    );
  }
  const piece = message.piece;
  if (!Number.isSafeInteger(piece) || piece < 0) {
    throw new RangeError(
      `Cannot encode ut_metadata ${message.type} message: piece ${piece} is not a non-negative integer`,
    );
  }
  if (message.type !== "data") {
    return encode({ msg_type: METADATA_MSG_TYPE[message.type], piece });
  }
  const expected = metadataPieceLength(message.totalSize, piece);
  if (message.data.length !== expected) {
    throw new RangeError(
      `Cannot encode ut_metadata data message: piece ${piece} has ${message.data.length} bytes, expected ${expected}`,
    );
  }
  const head = encode({ msg_type: 1, piece, total_size: message.totalSize });
  const payload = new Uint8Array(head.length + message.data.length);
  payload.set(head);
  payload.set(message.data, head.length);
  return payload;
}

/**
 * Decodes a `ut_metadata` message (BEP 9) from the payload of an `extended`
 * message. Keys may come unsorted and unknown keys are ignored. An unknown
 * `msg_type` decodes to `{ type: "unknown" }`, which callers ignore.
 * A data message's `data` is a view into `payload`.
 *
 * @param payload The bytes after the extended message id.
 * @param options Size limits.
 * @returns The message.
 * @throws {PeerProtocolError} If the payload is not a bencoded dictionary;
 * `msg_type` or `piece` is missing or not an integer; `piece` is negative
 * or past the last piece; `total_size` is missing, not positive, above
 * `maxMetadataSize` or different from `metadataSize`; a data message's
 * bytes are not exactly the piece's length (16 KiB except the last); or a
 * request or reject has bytes after the dictionary.
 *
 * @example Usage
 * ```ts
 * import { decodeMetadataMessage } from "./ut_metadata.ts";
 * import assert from "node:assert/strict";
 *
 * const payload = new TextEncoder().encode("d8:msg_typei1e5:piecei0e10:total_sizei3eeABC");
 * const message = decodeMetadataMessage(payload);
 * assert.equal(message.type, "data");
 * if (message.type === "data") {
 *   assert.equal(message.totalSize, 3);
 *   assert.deepEqual(message.data, new Uint8Array([65, 66, 67]));
 * }
 * ```
 *
 * @example A piece past the end
 * ```ts
 * import { decodeMetadataMessage } from "./ut_metadata.ts";
 * import { PeerProtocolError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const payload = new TextEncoder().encode("d8:msg_typei0e5:piecei2ee");
 * assert.throws(() => decodeMetadataMessage(payload, { metadataSize: 16384 }), PeerProtocolError);
 * ```
 */
export function decodeMetadataMessage(
  payload: Uint8Array,
  options: DecodeMetadataMessageOptions = {},
): MetadataMessage {
  const maxSize = options.maxMetadataSize ?? DEFAULT_MAX_METADATA_SIZE;
  checkSize(maxSize);
  let value: BencodeValue;
  let length: number;
  try {
    ({ value, length } = decodePrefix(payload, { allowUnsortedKeys: true, maxDepth: 8 }));
  } catch (cause) {
    throw new PeerProtocolError(
      `Cannot decode ut_metadata message: ${cause instanceof Error ? cause.message : cause}`,
      { cause },
    );
  }
  if (!isDict(value)) {
    throw new PeerProtocolError("Cannot decode ut_metadata message: payload is not a dictionary");
  }
  const msgType = value.msg_type;
  if (typeof msgType !== "number" && typeof msgType !== "bigint") {
    throw new PeerProtocolError("Cannot decode ut_metadata message: msg_type is not an integer");
  }
  if (msgType !== 0 && msgType !== 1 && msgType !== 2) {
    return { type: "unknown", msgType: Number(msgType) };
  }
  const type = msgType === 0 ? "request" : msgType === 1 ? "data" : "reject";
  const piece = value.piece;
  if (typeof piece !== "number" || !Number.isInteger(piece)) {
    throw new PeerProtocolError(
      `Cannot decode ut_metadata ${type} message: piece is not an integer`,
    );
  }
  if (piece < 0) {
    throw new PeerProtocolError(
      `Cannot decode ut_metadata ${type} message: piece ${piece} is negative`,
    );
  }
  if (type !== "data") {
    const size = options.metadataSize ?? maxSize;
    checkPiece(type, piece, size);
    if (length !== payload.length) {
      throw new PeerProtocolError(
        `Cannot decode ut_metadata ${type} message: ${
          payload.length - length
        } bytes after the dictionary`,
      );
    }
    return { type, piece };
  }
  const totalSize = value.total_size;
  if (typeof totalSize !== "number" && typeof totalSize !== "bigint") {
    throw new PeerProtocolError(
      "Cannot decode ut_metadata data message: total_size is not an integer",
    );
  }
  if (totalSize <= 0 || totalSize > maxSize) {
    throw new PeerProtocolError(
      `Cannot decode ut_metadata data message: total_size ${totalSize} is not in 1-${maxSize}`,
    );
  }
  if (options.metadataSize !== undefined && totalSize !== options.metadataSize) {
    throw new PeerProtocolError(
      `Cannot decode ut_metadata data message: total_size ${totalSize} differs from metadata_size ${options.metadataSize}`,
    );
  }
  const size = Number(totalSize);
  checkPiece(type, piece, size);
  const data = payload.subarray(length);
  const expected = Math.min(METADATA_PIECE_LENGTH, size - piece * METADATA_PIECE_LENGTH);
  if (data.length !== expected) {
    throw new PeerProtocolError(
      `Cannot decode ut_metadata data message: piece ${piece} has ${data.length} bytes, expected ${expected}`,
    );
  }
  return { type, piece, totalSize: size, data };
}

/** Options for {@linkcode MetadataAssembler}. */
export interface MetadataAssemblerOptions {
  /** Largest metadata size accepted. Defaults to 16 MiB. */
  maxMetadataSize?: number;
}

/** What {@linkcode MetadataAssembler.receive} made of a piece. */
export type MetadataReceiveResult<K> =
  /** More pieces are needed (also for a duplicate piece, which is ignored). */
  | { status: "incomplete" }
  /** All pieces arrived and their SHA-1 equals the info hash. */
  | { status: "complete"; info: Uint8Array }
  /**
   * All pieces arrived but their SHA-1 is not the info hash. The assembler
   * has been reset; `peers` lists who sent pieces, `pieces` who sent which.
   */
  | { status: "mismatch"; peers: K[]; pieces: K[] };

/**
 * Collects the 16 KiB pieces of a torrent's metadata (BEP 9) from one or
 * more peers, and checks the result against the info hash. Pure state: the
 * caller sends the requests it hands out and feeds back data and rejects.
 *
 * `K` identifies a peer (e.g. its formatted address) so that a mismatch can
 * name the peers that contributed.
 *
 * @example Usage
 * ```ts
 * import { MetadataAssembler } from "./ut_metadata.ts";
 * import { createHash } from "node:crypto";
 * import assert from "node:assert/strict";
 *
 * const info = new TextEncoder().encode("d4:name3:abce");
 * const infoHash = new Uint8Array(createHash("sha1").update(info).digest());
 * const assembler = new MetadataAssembler<string>(infoHash, info.length);
 *
 * const piece = assembler.nextRequest("peer-a");
 * assert.equal(piece, 0);
 * assert.deepEqual(assembler.receive(0, info, "peer-a"), { status: "complete", info });
 * ```
 */
export class MetadataAssembler<K = string> {
  #infoHash: Uint8Array;
  #size: number;
  #buffer: Uint8Array;
  #pieceCount: number;
  /** Who sent each received piece; `undefined` while still needed. */
  #sources: (K | undefined)[];
  #received = 0;
  /** Peers a piece is currently requested from. */
  #requested: Map<number, Set<K>> = new Map();
  #done = false;

  /**
   * Creates an assembler for one torrent's metadata.
   *
   * @param infoHash The 20-byte info hash the metadata must hash to.
   * @param metadataSize The metadata size, from a peer's `metadata_size`.
   * @param options The size cap.
   * @throws {TypeError} If the info hash is not 20 bytes.
   * @throws {RangeError} If `metadataSize` is not in 1 to the cap.
   */
  constructor(infoHash: Uint8Array, metadataSize: number, options: MetadataAssemblerOptions = {}) {
    if (!(infoHash instanceof Uint8Array) || infoHash.length !== 20) {
      throw new TypeError("Cannot assemble metadata: info hash is not 20 bytes");
    }
    const max = options.maxMetadataSize ?? DEFAULT_MAX_METADATA_SIZE;
    if (!Number.isSafeInteger(metadataSize) || metadataSize < 1 || metadataSize > max) {
      throw new RangeError(
        `Cannot assemble metadata: metadata_size ${metadataSize} is not in 1-${max}`,
      );
    }
    this.#infoHash = infoHash.slice();
    this.#size = metadataSize;
    this.#buffer = new Uint8Array(metadataSize);
    this.#pieceCount = metadataPieceCount(metadataSize);
    this.#sources = new Array(this.#pieceCount).fill(undefined);
  }

  /** The metadata size in bytes. */
  get size(): number {
    return this.#size;
  }

  /** The number of 16 KiB pieces. */
  get pieceCount(): number {
    return this.#pieceCount;
  }

  /** How many pieces arrived since the start or the last reset. */
  get receivedCount(): number {
    return this.#received;
  }

  /** Whether the metadata arrived and was verified. */
  get complete(): boolean {
    return this.#done;
  }

  /** Indices of the pieces that have not arrived yet, in order. */
  get neededPieces(): number[] {
    const needed: number[] = [];
    for (let piece = 0; piece < this.#pieceCount; piece++) {
      if (this.#sources[piece] === undefined) needed.push(piece);
    }
    return needed;
  }

  /**
   * Picks the next piece to request from a peer and marks it requested by
   * that peer: the lowest piece that is neither received, nor requested
   * from anyone, nor in `exclude` (e.g. pieces the peer rejected).
   *
   * @param peer The peer that will be asked.
   * @param exclude Pieces not to ask this peer for.
   * @returns The piece index, or `undefined` if there is nothing to ask.
   */
  nextRequest(peer: K, exclude?: ReadonlySet<number>): number | undefined {
    if (this.#done) return undefined;
    for (let piece = 0; piece < this.#pieceCount; piece++) {
      if (this.#sources[piece] !== undefined || this.#requested.has(piece)) continue;
      if (exclude?.has(piece)) continue;
      this.#requested.set(piece, new Set([peer]));
      return piece;
    }
    return undefined;
  }

  /**
   * Forgets that a piece was requested from a peer (it rejected it, timed
   * out or went away), so the piece can be requested again.
   *
   * @param piece The piece index.
   * @param peer The peer.
   */
  release(piece: number, peer: K): void {
    const peers = this.#requested.get(piece);
    if (peers === undefined) return;
    peers.delete(peer);
    if (peers.size === 0) this.#requested.delete(piece);
  }

  /**
   * Forgets every request made to a peer, e.g. when it disconnects.
   *
   * @param peer The peer.
   */
  releasePeer(peer: K): void {
    for (const piece of [...this.#requested.keys()]) this.release(piece, peer);
  }

  /**
   * Stores a piece. When it is the last one, hashes the metadata: a match
   * returns the info bytes; a mismatch resets all pieces and names the
   * peers that sent them. A piece that already arrived is ignored.
   *
   * @param piece The piece index.
   * @param data The piece bytes (copied).
   * @param peer The peer that sent it.
   * @returns The outcome.
   * @throws {PeerProtocolError} If `piece` is out of range or `data` is not
   * exactly the piece's length.
   */
  receive(piece: number, data: Uint8Array, peer: K): MetadataReceiveResult<K> {
    if (!Number.isInteger(piece) || piece < 0 || piece >= this.#pieceCount) {
      throw new PeerProtocolError(
        `Cannot accept metadata piece ${piece}: not an index below ${this.#pieceCount}`,
      );
    }
    const expected = Math.min(METADATA_PIECE_LENGTH, this.#size - piece * METADATA_PIECE_LENGTH);
    if (data.length !== expected) {
      throw new PeerProtocolError(
        `Cannot accept metadata piece ${piece}: ${data.length} bytes, expected ${expected}`,
      );
    }
    this.#requested.delete(piece);
    if (this.#done || this.#sources[piece] !== undefined) return { status: "incomplete" };
    this.#buffer.set(data, piece * METADATA_PIECE_LENGTH);
    this.#sources[piece] = peer;
    this.#received++;
    if (this.#received < this.#pieceCount) return { status: "incomplete" };
    const digest = createHash("sha1").update(this.#buffer).digest();
    if (equalBytes(digest, this.#infoHash)) {
      this.#done = true;
      return { status: "complete", info: this.#buffer };
    }
    const pieces = this.#sources as K[];
    const peers = [...new Set(pieces)];
    this.#sources = new Array(this.#pieceCount).fill(undefined);
    this.#received = 0;
    this.#requested.clear();
    return { status: "mismatch", peers, pieces };
  }
}

function checkPiece(type: string, piece: number, size: number): void {
  const count = Math.ceil(size / METADATA_PIECE_LENGTH);
  if (piece >= count) {
    throw new PeerProtocolError(
      `Cannot decode ut_metadata ${type} message: piece ${piece} is not below the piece count ${count}`,
    );
  }
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new RangeError(`Invalid metadata size ${size}: not a non-negative safe integer`);
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
