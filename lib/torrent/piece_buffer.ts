/**
 * Pieces being downloaded: blocks assembled in memory, then each complete
 * piece verified (SHA-1, through a bounded hash queue) and written to
 * storage whole.
 *
 * @module
 */

import { type HashQueue, PieceAssembler, verifyPiece } from "../piece/mod.ts";
import type { Storage } from "../storage/mod.ts";

/** Default cap on bytes held in unverified pieces: 64 MiB. */
export const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

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
  /** Hash queue bounding concurrent SHA-1 digests; defaults to the shared one. */
  hashQueue?: HashQueue;
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
  assembler: PieceAssembler;
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
 * buffer.add(0, 0, data.subarray(0, 16384), "peer a");
 * buffer.add(0, 16384, data.subarray(16384), "peer b");
 * assert.deepEqual(await verified.promise, ["peer a", "peer b"]);
 * assert.deepEqual(storage.bytes, data);
 * ```
 */
export class PieceBuffer<K> {
  readonly #geometry: PieceBufferGeometry;
  readonly #options: PieceBufferOptions<K>;
  readonly #maxBufferedBytes: number;
  readonly #pieces = new Map<number, BufferedPiece<K>>();
  readonly #pending = new Set<Promise<void>>();
  #bufferedBytes = 0;

  /**
   * Creates an empty buffer.
   *
   * @param geometry Piece length, total length, count and hashes.
   * @param options Storage, hash queue, memory cap and result callbacks.
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

  /** Indices of the pieces held (being downloaded or verified). */
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
   */
  begin(index: number): void {
    if (this.#pieces.has(index)) return;
    const { pieceLength, totalLength, pieceCount } = this.#geometry;
    const length = index === pieceCount - 1 ? totalLength - index * pieceLength : pieceLength;
    this.#pieces.set(index, {
      assembler: new PieceAssembler(index, length),
      contributors: [],
      verifying: false,
    });
    this.#bufferedBytes += length;
  }

  /**
   * Copies a block into its piece. The block that completes the piece
   * starts verification and the write to storage.
   *
   * @param index Piece index.
   * @param begin Block offset.
   * @param block The block; copied, so a view into a network chunk is fine.
   * @param contributor The peer that sent it.
   * @returns `true` if the block was new.
   * @throws {RangeError} If the block does not fit the piece's block grid.
   */
  add(index: number, begin: number, block: Uint8Array, contributor: K): boolean {
    const piece = this.#pieces.get(index);
    if (!piece || piece.verifying) return false;
    if (!piece.assembler.addBlock(begin, block)) return false;
    const contributors = piece.contributors;
    if (
      contributors[contributors.length - 1] !== contributor && !contributors.includes(contributor)
    ) {
      contributors.push(contributor);
    }
    if (piece.assembler.isComplete) {
      piece.verifying = true;
      this.#track(this.#finish(index, piece));
    }
    return true;
  }

  /**
   * Waits until every started verification and write has settled.
   *
   * @returns Resolves when idle.
   */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  #track(promise: Promise<void>): void {
    this.#pending.add(promise);
    const remove = () => this.#pending.delete(promise);
    promise.then(remove, remove);
  }

  async #finish(index: number, piece: BufferedPiece<K>): Promise<void> {
    const { pieceLength, pieceHashes } = this.#geometry;
    const bytes = piece.assembler.bytes;
    const expected = pieceHashes.subarray(index * 20, index * 20 + 20);
    const queue = this.#options.hashQueue;
    let ok: boolean;
    try {
      ok = await verifyPiece(bytes, expected, queue ? { queue } : {});
    } catch (error) {
      this.#drop(index, piece);
      this.#options.onError(index, error);
      return;
    }
    if (!ok) {
      const contributors = piece.contributors;
      piece.contributors = [];
      piece.assembler.reset();
      piece.verifying = false;
      this.#options.onFailed(index, contributors);
      return;
    }
    try {
      await this.#options.storage.write(index * pieceLength, bytes);
    } catch (error) {
      this.#drop(index, piece);
      this.#options.onError(index, error);
      return;
    }
    this.#drop(index, piece);
    this.#options.onVerified(index, piece.contributors);
  }

  #drop(index: number, piece: BufferedPiece<K>): void {
    if (this.#pieces.get(index) !== piece) return;
    this.#pieces.delete(index);
    this.#bufferedBytes -= piece.assembler.length;
  }
}
