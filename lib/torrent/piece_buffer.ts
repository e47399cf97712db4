/**
 * Pieces being downloaded: blocks assembled in memory, then each complete
 * piece verified (SHA-1) and written to storage whole.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { BLOCK_SIZE } from "../piece/mod.ts";
import type { Storage } from "../storage/mod.ts";

/**
 * Default cap on bytes held in unverified pieces: 32 MiB. Enough for ~3 s of request
 * pipelines at full speed from several peers; more only grows the footprint.
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 32 * 1024 * 1024;

/** Torrent geometry and hashes, as in a `Metainfo`. */
export interface PieceBufferGeometry {
  /** Nominal piece length. */
  pieceLength: number;
  /** Total length of the torrent. */
  totalLength: number;
  /** Number of pieces. */
  pieceCount: number;
  /** Concatenated 20-byte SHA-1 piece hashes. */
  pieceHashes: Uint8Array;
}

/** Options for {@linkcode PieceBuffer}. */
export interface PieceBufferOptions<K> {
  /** Where verified pieces are written. */
  storage: Storage;
  /** Soft cap on bytes in unverified pieces; defaults to {@linkcode DEFAULT_MAX_BUFFERED_BYTES}. */
  maxBufferedBytes?: number;
  /** A piece passed its hash check and is stored. */
  onVerified(index: number, contributors: readonly K[]): void;
  /** A piece failed its hash check; its blocks were dropped. */
  onFailed(index: number, contributors: readonly K[]): void;
  /** Storage failed to write a verified piece. */
  onError(index: number, error: unknown): void;
}

interface BufferedPiece<K> {
  index: number;
  length: number;
  /** Exactly `length` bytes long (for the short last piece, a view of a full-size buffer). */
  bytes: Uint8Array;
  /** One byte per block: 1 once received. */
  received: Uint8Array;
  receivedCount: number;
  contributors: K[];
  verifying: boolean;
}

/**
 * Holds the pieces being downloaded. `begin(index)` reserves a piece's
 * buffer when its first block is requested; `add` copies arriving blocks in;
 * the block that completes a piece starts its verification and write. Peers
 * that sent blocks of a piece are its contributors, reported on success or
 * failure so that bad peers can be banned.
 *
 * Piece buffers are pooled: at hundreds of MiB/s, fresh memory (a page
 * fault per 4 KiB) costs more than the copy into it.
 *
 * @example Usage
 * ```ts
 * import { PieceBuffer } from "./piece_buffer.ts";
 * import { MemoryStorage } from "../storage/mod.ts";
 * import { sha1 } from "../piece/mod.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new Uint8Array(20_000).fill(7);
 * const storage = new MemoryStorage(data.length);
 * const verified = Promise.withResolvers<string[]>();
 * const buffer = new PieceBuffer<string>(
 *   { pieceLength: 32768, totalLength: data.length, pieceCount: 1, pieceHashes: await sha1(data) },
 *   {
 *     storage,
 *     onVerified: (_index, peers) => verified.resolve([...peers]),
 *     onFailed: () => verified.reject(new Error("hash mismatch")),
 *     onError: (_index, error) => verified.reject(error),
 *   },
 * );
 * buffer.begin(0);
 * buffer.add(0, 16384, data.subarray(16384), "peer b"); // out of order is fine
 * buffer.add(0, 0, data.subarray(0, 16384), "peer a");
 * assert.deepEqual(await verified.promise, ["peer b", "peer a"]);
 * assert.deepEqual(storage.bytes, data);
 * ```
 */
export class PieceBuffer<K> {
  readonly #geometry: PieceBufferGeometry;
  readonly #options: PieceBufferOptions<K>;
  readonly #maxBufferedBytes: number;
  readonly #pieces = new Map<number, BufferedPiece<K>>();
  /** Verifications and writes under way, and who waits for them all to end. */
  #pending = 0;
  #idle: (() => void)[] = [];
  /**
   * Records of finished full-length pieces, with their buffers, kept for the next pieces: at
   * hundreds of MiB/s fresh memory (a page fault per 4 KiB) costs more than the copy into
   * it, and per-piece objects that live as long as a download would pile up as garbage.
   */
  readonly #spare: BufferedPiece<K>[] = [];
  #bufferedBytes = 0;

  /**
   * Creates an empty buffer.
   *
   * @param geometry Piece length, total length, count and hashes.
   * @param options Storage, memory cap and result callbacks.
   */
  constructor(geometry: PieceBufferGeometry, options: PieceBufferOptions<K>) {
    this.#geometry = geometry;
    this.#options = options;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  }

  /** Bytes reserved for pieces not yet verified and written. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** Whether the memory cap is reached: request blocks of started pieces only. */
  get full(): boolean {
    return this.#bufferedBytes >= this.#maxBufferedBytes;
  }

  /**
   * Indices of the pieces held (being downloaded or verified).
   *
   * @returns An iterator over piece indices.
   */
  indices(): IterableIterator<number> {
    return this.#pieces.keys();
  }

  /**
   * Tells whether piece `index` is held.
   *
   * @param index Piece index.
   * @returns `true` between {@linkcode PieceBuffer.begin} and its verification.
   */
  has(index: number): boolean {
    return this.#pieces.has(index);
  }

  /**
   * Reserves the buffer for piece `index`; no-op if already held.
   *
   * @param index Piece index.
   * @throws {RangeError} If `index` is out of range.
   */
  begin(index: number): void {
    if (this.#pieces.has(index)) return;
    const { pieceLength, totalLength, pieceCount } = this.#geometry;
    if (!Number.isInteger(index) || index < 0 || index >= pieceCount) {
      throw new RangeError(
        `Cannot buffer piece: index "${index}" out of range 0..${pieceCount - 1}`,
      );
    }
    const length = index === pieceCount - 1 ? totalLength - index * pieceLength : pieceLength;
    let piece = length === pieceLength ? this.#spare.pop() : undefined;
    if (piece) {
      piece.index = index;
      piece.received.fill(0);
      piece.receivedCount = 0;
      piece.contributors = [];
      piece.verifying = false;
    } else {
      // Spare records are full-length, so their bytes are a whole piece buffer.
      const full = this.#spare.pop()?.bytes ?? new Uint8Array(pieceLength);
      piece = {
        index,
        length,
        bytes: length === pieceLength ? full : full.subarray(0, length),
        received: new Uint8Array(Math.ceil(length / BLOCK_SIZE)),
        receivedCount: 0,
        contributors: [],
        verifying: false,
      };
    }
    this.#pieces.set(index, piece);
    this.#bufferedBytes += length;
  }

  /**
   * Copies a block into its piece. The block that completes the piece
   * starts verification and the write to storage.
   *
   * @param index Piece index.
   * @param begin Block offset, a multiple of 16 KiB.
   * @param block The block; copied, so a view into a network chunk is fine.
   * @param contributor The peer that sent it.
   * @returns `true` if the block was new.
   * @throws {RangeError} If the block does not fit the piece's block grid.
   */
  add(index: number, begin: number, block: Uint8Array, contributor: K): boolean {
    const piece = this.#pieces.get(index);
    if (!piece || piece.verifying) return false;
    const slot = begin / BLOCK_SIZE;
    const expected = Math.min(BLOCK_SIZE, piece.length - begin);
    if (!Number.isInteger(slot) || slot < 0 || begin >= piece.length || block.length !== expected) {
      throw new RangeError(
        `Cannot add block to piece ${index}: ${block.length} bytes at offset ${begin} do not fit a ${piece.length}-byte piece`,
      );
    }
    if (piece.received[slot] === 1) return false;
    piece.bytes.set(block, begin);
    piece.received[slot] = 1;
    piece.receivedCount++;
    const contributors = piece.contributors;
    if (
      contributors[contributors.length - 1] !== contributor && !contributors.includes(contributor)
    ) {
      contributors.push(contributor);
    }
    if (piece.receivedCount === piece.received.length) {
      piece.verifying = true;
      this.#track(this.#finish(piece));
    }
    return true;
  }

  /**
   * Waits until every started verification and write has settled.
   *
   * @returns Resolves when idle.
   */
  async settled(): Promise<void> {
    while (this.#pending > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  #track(promise: Promise<void>): void {
    this.#pending++;
    promise.then(this.#untrack, this.#untrack);
  }

  readonly #untrack = (): void => {
    if (--this.#pending > 0) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  };

  async #finish(piece: BufferedPiece<K>): Promise<void> {
    const { pieceLength, pieceHashes } = this.#geometry;
    const index = piece.index;
    // One synchronous node:crypto digest per piece: measured here it costs less CPU in
    // total than crypto.subtle (which copies the input and hops threads), and leaves the
    // second core to the peers and the kernel.
    const digest = createHash("sha1").update(piece.bytes).digest();
    if (!sameHash(digest, pieceHashes, index * 20)) {
      const contributors = piece.contributors;
      piece.contributors = [];
      piece.received.fill(0);
      piece.receivedCount = 0;
      piece.verifying = false;
      this.#options.onFailed(index, contributors);
      return;
    }
    try {
      await this.#options.storage.write(index * pieceLength, piece.bytes);
    } catch (error) {
      this.#drop(piece);
      this.#options.onError(index, error);
      return;
    }
    this.#drop(piece);
    this.#options.onVerified(index, piece.contributors);
  }

  #drop(piece: BufferedPiece<K>): void {
    if (this.#pieces.get(piece.index) !== piece) return;
    this.#pieces.delete(piece.index);
    this.#bufferedBytes -= piece.length;
    // Keep enough to refill the cap without new allocations. Spare plus live buffers never
    // exceed the most that were live at once. The short last piece is left to the GC.
    if (
      piece.length === this.#geometry.pieceLength &&
      this.#spare.length * piece.length < this.#maxBufferedBytes
    ) {
      this.#spare.push(piece);
    }
  }
}

function sameHash(digest: Uint8Array, hashes: Uint8Array, offset: number): boolean {
  for (let i = 0; i < 20; i++) if (digest[i] !== hashes[offset + i]) return false;
  return true;
}
