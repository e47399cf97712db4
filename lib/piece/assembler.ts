/**
 * Assembling 16 KiB blocks into one piece (BEP 3).
 *
 * @module
 */

import { HashQueue, PieceHashMismatchError, verifyPiece } from "./verify.ts";

/** Standard block size: 16 KiB (BEP 3 `request` length used by all clients). */
export const BLOCK_SIZE = 16384;

/** One block request inside a piece. */
export interface BlockRange {
  /** Byte offset inside the piece. */
  begin: number;
  /** Length in bytes. */
  length: number;
}

/**
 * Splits a piece into block requests (BEP 3); the last block may be short.
 *
 * @example Usage
 * ```ts
 * import { blockRequests } from "./assembler.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(blockRequests(20_000).map((r) => r.length), [16384, 3616]);
 * ```
 *
 * @param pieceLength Length of the piece in bytes.
 * @param blockSize Block size; defaults to 16384.
 * @returns The block ranges in order.
 * @throws {RangeError} If a length is not a non-negative integer or `blockSize` is zero.
 */
export function blockRequests(pieceLength: number, blockSize = BLOCK_SIZE): BlockRange[] {
  if (!Number.isSafeInteger(pieceLength) || pieceLength < 0) {
    throw new RangeError(`Cannot split piece: invalid piece length "${pieceLength}"`);
  }
  if (!Number.isSafeInteger(blockSize) || blockSize <= 0) {
    throw new RangeError(`Cannot split piece: invalid block size "${blockSize}"`);
  }
  const out: BlockRange[] = [];
  for (let begin = 0; begin < pieceLength; begin += blockSize) {
    out.push({ begin, length: Math.min(blockSize, pieceLength - begin) });
  }
  return out;
}

/** Torrent geometry used by {@linkcode pieceLengthAt}. */
export interface PieceGeometry {
  /** Nominal piece length from the metainfo. */
  pieceLength: number;
  /** Total length of all files. */
  totalLength: number;
}

/**
 * Returns the length of piece `index`; only the last piece may be shorter.
 *
 * @example Usage
 * ```ts
 * import { pieceLengthAt } from "./assembler.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pieceLengthAt(0, { pieceLength: 16, totalLength: 40 }), 16);
 * assert.equal(pieceLengthAt(2, { pieceLength: 16, totalLength: 40 }), 8);
 * ```
 *
 * @param index Piece index.
 * @param geometry Piece length and total length.
 * @returns The piece's length in bytes.
 * @throws {RangeError} If `index` is out of range or the geometry is invalid.
 */
export function pieceLengthAt(index: number, geometry: PieceGeometry): number {
  const { pieceLength, totalLength } = geometry;
  if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) {
    throw new RangeError(`Cannot compute piece length: invalid piece length "${pieceLength}"`);
  }
  if (!Number.isSafeInteger(totalLength) || totalLength < 0) {
    throw new RangeError(`Cannot compute piece length: invalid total length "${totalLength}"`);
  }
  const count = Math.ceil(totalLength / pieceLength);
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new RangeError(
      `Cannot compute piece length: piece index "${index}" out of range 0..${count - 1}`,
    );
  }
  return index === count - 1 ? totalLength - index * pieceLength : pieceLength;
}

/** Options for {@linkcode PieceAssembler}. */
export interface PieceAssemblerOptions {
  /** Block size; defaults to 16384. */
  blockSize?: number;
}

/** Options for {@linkcode PieceAssembler.verify}. */
export interface AssemblerVerifyOptions {
  /** Queue bounding concurrent digests. */
  queue?: HashQueue;
}

/**
 * Collects the blocks of one piece into a single buffer, then verifies it.
 * Each block is copied exactly once, from the wire into the piece buffer.
 *
 * @example Usage
 * ```ts
 * import { PieceAssembler } from "./assembler.ts";
 * import { sha1 } from "./verify.ts";
 * import assert from "node:assert/strict";
 *
 * const piece = new PieceAssembler(0, 20_000);
 * assert.equal(piece.addBlock(16384, new Uint8Array(3616).fill(2)), true);
 * assert.deepEqual(piece.missingBlocks(), [{ begin: 0, length: 16384 }]);
 * piece.addBlock(0, new Uint8Array(16384).fill(1));
 * assert.equal(piece.isComplete, true);
 * const expected = await sha1(piece.bytes);
 * assert.equal((await piece.verify(expected)).length, 20_000);
 * ```
 */
export class PieceAssembler {
  readonly #index: number;
  readonly #buffer: Uint8Array;
  readonly #blockSize: number;
  readonly #received: Uint8Array;
  #receivedCount = 0;

  /**
   * Creates an empty assembler.
   *
   * @param index Piece index (for error messages).
   * @param length Piece length in bytes.
   * @param options Optional block size.
   * @throws {RangeError} If `length` or the block size is invalid.
   */
  constructor(index: number, length: number, options: PieceAssemblerOptions = {}) {
    const blockSize = options.blockSize ?? BLOCK_SIZE;
    if (!Number.isSafeInteger(length) || length <= 0) {
      throw new RangeError(`Cannot assemble piece ${index}: invalid length "${length}"`);
    }
    if (!Number.isSafeInteger(blockSize) || blockSize <= 0) {
      throw new RangeError(`Cannot assemble piece ${index}: invalid block size "${blockSize}"`);
    }
    this.#index = index;
    this.#blockSize = blockSize;
    this.#buffer = new Uint8Array(length);
    this.#received = new Uint8Array(Math.ceil(length / blockSize));
  }

  /** The piece index. */
  get index(): number {
    return this.#index;
  }

  /** The piece length in bytes. */
  get length(): number {
    return this.#buffer.length;
  }

  /** Whether every block has arrived. */
  get isComplete(): boolean {
    return this.#receivedCount === this.#received.length;
  }

  /** Number of blocks received. */
  get receivedBlocks(): number {
    return this.#receivedCount;
  }

  /** The assembly buffer (unverified until {@linkcode PieceAssembler.verify} resolves). */
  get bytes(): Uint8Array {
    return this.#buffer;
  }

  /**
   * Tells whether the block at `begin` has arrived.
   *
   * @param begin Block offset inside the piece.
   * @returns `true` if received.
   */
  hasBlock(begin: number): boolean {
    return this.#received[Math.floor(begin / this.#blockSize)] === 1;
  }

  /**
   * Copies a block into the piece buffer.
   *
   * @param begin Block offset inside the piece (multiple of the block size).
   * @param block Block bytes (full block size, or the remainder for the last block).
   * @returns `true` if stored, `false` if it was a duplicate.
   * @throws {RangeError} If the block is misaligned, out of range or the wrong length.
   */
  addBlock(begin: number, block: Uint8Array): boolean {
    const length = this.#buffer.length;
    if (!Number.isInteger(begin) || begin < 0 || begin >= length) {
      throw new RangeError(
        `Cannot add block to piece ${this.#index}: offset "${begin}" out of range 0..${length - 1}`,
      );
    }
    if (begin % this.#blockSize !== 0) {
      throw new RangeError(
        `Cannot add block to piece ${this.#index}: offset "${begin}" not aligned to ${this.#blockSize}`,
      );
    }
    const expected = Math.min(this.#blockSize, length - begin);
    if (block.length !== expected) {
      throw new RangeError(
        `Cannot add block to piece ${this.#index}: length "${block.length}" at offset ${begin}, expected ${expected}`,
      );
    }
    const slot = begin / this.#blockSize;
    if (this.#received[slot] === 1) return false;
    this.#buffer.set(block, begin);
    this.#received[slot] = 1;
    this.#receivedCount++;
    return true;
  }

  /**
   * Lists the blocks not received yet.
   *
   * @returns Missing block ranges in order.
   */
  missingBlocks(): BlockRange[] {
    const out: BlockRange[] = [];
    const length = this.#buffer.length;
    for (let slot = 0; slot < this.#received.length; slot++) {
      if (this.#received[slot] === 1) continue;
      const begin = slot * this.#blockSize;
      out.push({ begin, length: Math.min(this.#blockSize, length - begin) });
    }
    return out;
  }

  /** Forgets all received blocks so the piece can be downloaded again. */
  reset(): void {
    this.#received.fill(0);
    this.#receivedCount = 0;
  }

  /**
   * Verifies the complete piece against its SHA-1 hash (BEP 3).
   *
   * @param expectedHash 20-byte hash from the metainfo.
   * @param options Optional hash queue.
   * @returns The verified piece bytes (the assembly buffer, not a copy).
   * @throws {RangeError} If blocks are still missing.
   * @throws {PieceHashMismatchError} If the hash differs.
   */
  async verify(
    expectedHash: Uint8Array,
    options: AssemblerVerifyOptions = {},
  ): Promise<Uint8Array> {
    if (!this.isComplete) {
      throw new RangeError(
        `Cannot verify piece ${this.#index}: ${
          this.#received.length - this.#receivedCount
        } blocks missing`,
      );
    }
    const ok = await verifyPiece(
      this.#buffer,
      expectedHash,
      options.queue ? { queue: options.queue } : {},
    );
    if (!ok) throw new PieceHashMismatchError(this.#index);
    return this.#buffer;
  }
}
