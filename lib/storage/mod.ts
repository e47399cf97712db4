/**
 * Storage (BEP 3 file layout): mapping torrent offsets to files, safe paths, and
 * in-memory or file-system backends behind one {@linkcode Storage} interface.
 *
 * @example Usage
 * ```ts
 * import { FileMap, MemoryStorage, safePathComponents } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const map = new FileMap([{ path: ["a"], length: 2 }, { path: ["b"], length: 2 }]);
 * assert.equal(map.extents(1, 2).length, 2);
 * assert.deepEqual(safePathComponents(["..", "ok.txt"]), ["_", "ok.txt"]);
 * const storage = new MemoryStorage(map.totalLength);
 * await storage.write(1, new Uint8Array([5, 6]));
 * assert.deepEqual(await storage.read(0, 4), new Uint8Array([0, 5, 6, 0]));
 * await storage.close();
 * ```
 *
 * @module
 */

export { type FileEntry, type FileExtent, FileMap } from "./file_map.ts";
export { resolveInside, safePathComponents } from "./path.ts";
export type { Storage } from "./storage.ts";
export { MemoryStorage } from "./memory_storage.ts";
export { FsStorage, type FsStorageOptions, type FsStorageWriteStats } from "./fs_storage.ts";
