/**
 * Hashing every piece found in a storage, to learn which pieces it holds.
 *
 * @module
 */

import { Bitfield, HashQueue, verifyPiece } from "../piece/mod.ts";
import type { Storage } from "../storage/mod.ts";
import type { TorrentInfo } from "./torrent.ts";

/** Options for {@linkcode verifyStorage}. */
export interface VerifyStorageOptions {
  /** Digests in flight; defaults to a queue of 3. */
  hashQueue?: HashQueue;
  /** Aborts the check; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Reads and hashes every piece of a storage, a few at a time.
 *
 * @param info Piece geometry and hashes.
 * @param storage The data.
 * @param options Hash queue and abort signal.
 * @returns The pieces whose SHA-1 matches.
 *
 * @example Learning what a storage holds
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { MemoryStorage } from "../storage/mod.ts";
 * import { verifyStorage } from "./verify_storage.ts";
 *
 * const data = new Uint8Array(40_000).fill(7);
 * const { metainfo } = await createTorrent({ name: "x", data }, { pieceLength: 16384 });
 * const storage = new MemoryStorage(data.length);
 * await storage.write(16384, data.subarray(16384, 32768)); // only piece 1
 * assert.deepEqual([...await verifyStorage(metainfo, storage)], [1]);
 * ```
 */
export async function verifyStorage(
  info: TorrentInfo,
  storage: Storage,
  options: VerifyStorageOptions = {},
): Promise<Bitfield> {
  const { pieceCount, pieceLength, totalLength, pieceHashes } = info;
  const queue = options.hashQueue ?? new HashQueue({ concurrency: 3 });
  const have = new Bitfield(pieceCount);
  const inFlight = new Set<Promise<void>>();
  for (let index = 0; index < pieceCount; index++) {
    options.signal?.throwIfAborted();
    const offset = index * pieceLength;
    const length = Math.min(pieceLength, totalLength - offset);
    const expected = pieceHashes.subarray(index * 20, index * 20 + 20);
    const task = storage.read(offset, length)
      .then((bytes) => verifyPiece(bytes, expected, { queue }))
      .then((ok) => {
        if (ok) have.set(index);
      });
    inFlight.add(task);
    task.then(() => inFlight.delete(task), () => inFlight.delete(task));
    // Keep a few reads ahead of the hasher, no more, to bound memory.
    if (inFlight.size >= 4) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return have;
}
