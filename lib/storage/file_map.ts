/**
 * Mapping torrent byte offsets to file extents (BEP 3 multi-file layout).
 *
 * @module
 */

/** A file in torrent order, as listed in the metainfo. */
export interface FileEntry {
  /** Path components, e.g. `["dir", "file.txt"]`. */
  path: string[];
  /** Length in bytes. */
  length: number;
}

/** A contiguous byte range inside one file. */
export interface FileExtent {
  /** Index into the file list. */
  fileIndex: number;
  /** Offset inside the file. */
  fileOffset: number;
  /** Length in bytes (never zero). */
  length: number;
}

/**
 * Maps torrent offsets to file extents. The torrent is the concatenation of its files
 * in metainfo order (BEP 3); zero-length files occupy no bytes and never appear in extents.
 *
 * @example Usage
 * ```ts
 * import { FileMap } from "./file_map.ts";
 * import assert from "node:assert/strict";
 *
 * const map = new FileMap([
 *   { path: ["a"], length: 5 },
 *   { path: ["empty"], length: 0 },
 *   { path: ["b"], length: 10 },
 * ]);
 * assert.deepEqual(map.extents(3, 4), [
 *   { fileIndex: 0, fileOffset: 3, length: 2 },
 *   { fileIndex: 2, fileOffset: 0, length: 2 },
 * ]);
 * ```
 */
export class FileMap {
  readonly #files: readonly FileEntry[];
  /** Start offset of each file. */
  readonly #offsets: Float64Array;
  /** Indices of the non-empty files, in order, for binary search. */
  readonly #nonEmpty: Int32Array;
  readonly #totalLength: number;

  /**
   * Builds the map.
   *
   * @param files Files in metainfo order.
   * @throws {RangeError} If a length is not a non-negative safe integer or the total overflows.
   */
  constructor(files: readonly FileEntry[]) {
    this.#files = files;
    this.#offsets = new Float64Array(files.length);
    const nonEmpty: number[] = [];
    let offset = 0;
    for (let i = 0; i < files.length; i++) {
      const length = files[i]!.length;
      if (!Number.isSafeInteger(length) || length < 0) {
        throw new RangeError(`Cannot map files: invalid length "${length}" for file ${i}`);
      }
      this.#offsets[i] = offset;
      if (length > 0) nonEmpty.push(i);
      offset += length;
      if (!Number.isSafeInteger(offset)) {
        throw new RangeError(`Cannot map files: total length exceeds ${Number.MAX_SAFE_INTEGER}`);
      }
    }
    this.#nonEmpty = Int32Array.from(nonEmpty);
    this.#totalLength = offset;
  }

  /** Sum of all file lengths. */
  get totalLength(): number {
    return this.#totalLength;
  }

  /** The files, in metainfo order. */
  get files(): readonly FileEntry[] {
    return this.#files;
  }

  /**
   * Returns the torrent offset at which file `fileIndex` starts.
   *
   * @param fileIndex Index into the file list.
   * @returns The start offset.
   * @throws {RangeError} If `fileIndex` is out of range.
   */
  fileOffset(fileIndex: number): number {
    const offset = this.#offsets[fileIndex];
    if (!Number.isInteger(fileIndex) || offset === undefined) {
      throw new RangeError(`Cannot find file: index "${fileIndex}" out of range`);
    }
    return offset;
  }

  /**
   * Splits the torrent range `[offset, offset + length)` into per-file extents.
   *
   * @param offset Torrent offset.
   * @param length Length in bytes.
   * @returns Extents in order; empty for a zero length.
   * @throws {RangeError} If the range is negative or runs past the end.
   */
  extents(offset: number, length: number): FileExtent[] {
    if (
      !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 ||
      length < 0 || offset + length > this.#totalLength
    ) {
      throw new RangeError(
        `Cannot map range: offset "${offset}" length "${length}" outside 0..${this.#totalLength}`,
      );
    }
    const out: FileExtent[] = [];
    if (length === 0) return out;
    const nonEmpty = this.#nonEmpty;
    let k = this.#findNonEmpty(offset);
    let remaining = length;
    let position = offset;
    while (remaining > 0) {
      const fileIndex = nonEmpty[k++]!;
      const fileStart = this.#offsets[fileIndex]!;
      const fileOffset = position - fileStart;
      const take = Math.min(remaining, this.#files[fileIndex]!.length - fileOffset);
      out.push({ fileIndex, fileOffset, length: take });
      position += take;
      remaining -= take;
    }
    return out;
  }

  /**
   * Returns the extents of piece `index`; the last piece may be short.
   *
   * @param index Piece index.
   * @param pieceLength Nominal piece length.
   * @returns Extents in order.
   * @throws {RangeError} If the piece is out of range.
   */
  pieceExtents(index: number, pieceLength: number): FileExtent[] {
    if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) {
      throw new RangeError(`Cannot map piece: invalid piece length "${pieceLength}"`);
    }
    const start = index * pieceLength;
    if (!Number.isInteger(index) || index < 0 || start >= this.#totalLength) {
      throw new RangeError(`Cannot map piece: index "${index}" out of range`);
    }
    return this.extents(start, Math.min(pieceLength, this.#totalLength - start));
  }

  /**
   * Lists the files a piece touches, zero-length files at its boundaries included
   * (they must exist on disk once the piece completes).
   *
   * @param index Piece index.
   * @param pieceLength Nominal piece length.
   * @returns File indices in order.
   * @throws {RangeError} If the piece is out of range.
   */
  filesForPiece(index: number, pieceLength: number): number[] {
    const extents = this.pieceExtents(index, pieceLength);
    const first = extents[0]!.fileIndex;
    const last = extents[extents.length - 1]!.fileIndex;
    const start = index * pieceLength;
    const end = start + extents.reduce((sum, e) => sum + e.length, 0);
    let from = first;
    // Zero-length files lying exactly at the piece start belong to it too.
    while (from > 0 && this.#files[from - 1]!.length === 0 && this.#offsets[from - 1]! >= start) {
      from--;
    }
    let to = last;
    while (
      to + 1 < this.#files.length && this.#files[to + 1]!.length === 0 &&
      this.#offsets[to + 1]! <= end
    ) to++;
    const out: number[] = [];
    for (let i = from; i <= to; i++) out.push(i);
    return out;
  }

  /** Position in `#nonEmpty` of the non-empty file containing `offset` (< totalLength). */
  #findNonEmpty(offset: number): number {
    const nonEmpty = this.#nonEmpty;
    let lo = 0;
    let hi = nonEmpty.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.#offsets[nonEmpty[mid]!]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
