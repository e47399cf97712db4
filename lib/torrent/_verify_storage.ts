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
