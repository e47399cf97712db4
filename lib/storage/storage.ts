/**
 * The storage interface pieces are written to and read from.
 *
 * @module
 */

/**
 * Random-access storage addressed by torrent offset (the concatenation of all files,
 * BEP 3). Implemented by {@linkcode MemoryStorage} and {@linkcode FsStorage}.
 *
 * @example Usage
 * ```ts
 * import type { Storage } from "./storage.ts";
 * import { MemoryStorage } from "./memory_storage.ts";
 * import assert from "node:assert/strict";
 *
 * const storage: Storage = new MemoryStorage(8);
 * await storage.write(2, new Uint8Array([1, 2]));
 * assert.deepEqual(await storage.read(1, 3), new Uint8Array([0, 1, 2]));
 * await storage.close();
 * ```
 */
export interface Storage {
  /** Total torrent length in bytes. */
  readonly totalLength: number;
  /**
   * Writes `data` at torrent offset `offset`.
   *
   * @throws {RangeError} If the range runs past `totalLength`.
   */
  write(offset: number, data: Uint8Array): Promise<void>;
  /**
   * Reads `length` bytes at torrent offset `offset`.
   *
   * @throws {RangeError} If the range runs past `totalLength`.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Flushes written data to durable storage, where that means something. */
  flush?(): Promise<void>;
  /** Releases resources; further calls fail. */
  close(): Promise<void>;
}
