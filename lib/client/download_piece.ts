import type { Metainfo } from "../metainfo/mod.ts";
import type { PeerAddress } from "../peer/address.ts";
import { pieceLengthAt } from "../piece/mod.ts";
import type { Storage } from "../storage/mod.ts";
import { Torrent } from "../torrent/mod.ts";
import { findPeers } from "./find_peers.ts";
import { SwarmWatch } from "./_swarm_watch.ts";

/** Options for {@linkcode downloadPiece}. */
export interface DownloadPieceOptions {
  /** Peers to use; when absent, the torrent's trackers are asked. */
  peers?: readonly PeerAddress[];
  /** Our 20-byte peer id (default: a fresh random one). */
  peerId?: Uint8Array;
  /** Gives up after this many milliseconds (default 120000). */
  timeoutMs?: number;
  /** Aborts the download. */
  signal?: AbortSignal;
}

/**
 * Downloads one piece from the swarm: many 16 KiB block requests in flight, SHA-1 checked
 * before the bytes are returned, and another peer used when one fails or sends bad data.
 *
 * @param metainfo The torrent.
 * @param index The piece index.
 * @param options Peers (else the trackers are asked), timeout and abort signal.
 * @returns The verified bytes of the piece.
 * @throws {RangeError} When the index is out of range.
 * @throws {Error} When every peer failed (the message names each peer and why) or time ran out.
 *
 * @example From a seeder on loopback
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { MemoryStorage } from "../storage/mod.ts";
 * import { serveTorrent } from "../torrent/mod.ts";
 * import { downloadPiece } from "./download_piece.ts";
 *
 * const data = crypto.getRandomValues(new Uint8Array(50_000));
 * const { metainfo } = await createTorrent({ name: "x.bin", data }, { pieceLength: 16384 });
 * const storage = new MemoryStorage(data.length);
 * await storage.write(0, data);
 * await using seeder = await serveTorrent({ metainfo, storage, hostname: "127.0.0.1" });
 *
 * const piece = await downloadPiece(metainfo, 3, {
 *   peers: [{ host: "127.0.0.1", port: seeder.port }],
 * });
 * assert.deepEqual(piece, data.subarray(49_152));
 * ```
 */
export async function downloadPiece(
  metainfo: Metainfo,
  index: number,
  options: DownloadPieceOptions = {},
): Promise<Uint8Array> {
  if (!Number.isSafeInteger(index) || index < 0 || index >= metainfo.pieceCount) {
    throw new RangeError(
      `Piece index ${index} is out of range: the torrent has ${metainfo.pieceCount} pieces`,
    );
  }
  const signal = AbortSignal.any([
    AbortSignal.timeout(options.timeoutMs ?? 120_000),
    ...(options.signal ? [options.signal] : []),
  ]);
  const peers = options.peers ?? await findPeers(metainfo, {
    signal,
    left: pieceLengthAt(index, metainfo),
    ...(options.peerId ? { peerId: options.peerId } : {}),
  });
  if (peers.length === 0) {
    throw new Error(`Cannot download piece ${index}: the tracker knows no peers for this torrent`);
  }
  const storage = new PieceCaptureStorage(metainfo, index);
  await using torrent = new Torrent({
    metainfo,
    storage,
    wantedPieces: [index],
    ...(options.peerId ? { peerId: options.peerId } : {}),
  });
  using watch = new SwarmWatch(torrent);
  torrent.start();
  watch.expect(torrent.addPeers(peers));
  const aborted = Promise.withResolvers<never>();
  const onAbort = () => aborted.reject(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    await Promise.race([
      torrent.done,
      aborted.promise,
      watch.exhausted.then(() => {
        throw new Error(`Cannot download piece ${index}: every peer failed: ${watch.summary()}`);
      }),
    ]);
  } catch (error) {
    if (error instanceof DOMException && error.name === "TimeoutError") {
      throw new Error(`Cannot download piece ${index}: timed out`, { cause: error });
    }
    throw error;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  return storage.piece();
}

/** A storage that keeps only the one verified piece the engine writes. */
class PieceCaptureStorage implements Storage {
  readonly totalLength: number;
  readonly #start: number;
  readonly #bytes: Uint8Array;
  #written = false;

  constructor(metainfo: Metainfo, index: number) {
    this.totalLength = metainfo.totalLength;
    this.#start = index * metainfo.pieceLength;
    this.#bytes = new Uint8Array(pieceLengthAt(index, metainfo));
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    if (offset < this.#start || offset + data.length > this.#start + this.#bytes.length) {
      return Promise.reject(new RangeError(`Cannot write at offset ${offset}: not the piece`));
    }
    this.#bytes.set(data, offset - this.#start);
    this.#written = true;
    return Promise.resolve();
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return Promise.reject(new RangeError(`Cannot read ${length} bytes at ${offset}: not held`));
  }

  piece(): Uint8Array {
    if (!this.#written) throw new Error("Cannot return the piece: it was never written");
    return this.#bytes;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
