/**
 * In-memory storage, for tests and small torrents.
 *
 * @module
 */

import type { Storage } from "./storage.ts";

/**
 * Storage held in one `Uint8Array`.
 *
 * @example Usage
 * ```ts
 * import { MemoryStorage } from "./memory_storage.ts";
 * import assert from "node:assert/strict";
 *
 * const storage = new MemoryStorage(4);
 * await storage.write(0, new Uint8Array([7, 8]));
 * assert.deepEqual(await storage.read(0, 4), new Uint8Array([7, 8, 0, 0]));
 * await storage.close();
 * ```
 */
export class MemoryStorage implements Storage {
  #bytes: Uint8Array | undefined;
  readonly #totalLength: number;

  /**
   * Creates zero-filled storage.
   *
   * @param totalLength Total torrent length in bytes.
   * @throws {RangeError} If `totalLength` is negative or not an integer.
   */
  constructor(totalLength: number) {
    if (!Number.isSafeInteger(totalLength) || totalLength < 0) {
      throw new RangeError(`Cannot create memory storage: invalid length "${totalLength}"`);
    }
    this.#totalLength = totalLength;
    this.#bytes = new Uint8Array(totalLength);
  }

  /** Total torrent length in bytes. */
  get totalLength(): number {
    return this.#totalLength;
  }

  /** The whole content, a live view (for tests). */
  get bytes(): Uint8Array {
    return this.#open();
  }

  /**
   * Copies `data` in at `offset`.
   *
   * @param offset Torrent offset.
   * @param data Bytes to write.
   * @throws {RangeError} If the range runs past the end.
   */
  write(offset: number, data: Uint8Array): Promise<void> {
    try {
      const bytes = this.#open();
      this.#check(offset, data.length);
      bytes.set(data, offset);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Returns a copy of `length` bytes at `offset`.
   *
   * @param offset Torrent offset.
   * @param length Number of bytes.
   * @returns A fresh copy.
   * @throws {RangeError} If the range runs past the end.
   */
  read(offset: number, length: number): Promise<Uint8Array> {
    try {
      const bytes = this.#open();
      this.#check(offset, length);
      return Promise.resolve(bytes.slice(offset, offset + length));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Drops the buffer. */
  close(): Promise<void> {
    this.#bytes = undefined;
    return Promise.resolve();
  }

  #open(): Uint8Array {
    if (!this.#bytes) throw new Error("Cannot use memory storage: closed");
    return this.#bytes;
  }

  #check(offset: number, length: number): void {
    if (
      !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 ||
      length < 0 || offset + length > this.#totalLength
    ) {
      throw new RangeError(
        `Cannot access storage: offset "${offset}" length "${length}" outside 0..${this.#totalLength}`,
      );
    }
  }
}
