import { sleep } from "./_sleep.ts";
import { listenForPeers } from "./_listen.ts";
import { join } from "node:path";
import type { Metainfo } from "../metainfo/mod.ts";
import type { PeerAddress } from "../peer/address.ts";
import { FsStorage } from "../storage/mod.ts";
import type { DhtPeerSource } from "./peer_sources.ts";
import {
  Announcer,
  checkExisting,
  createResumeData,
  PeerListener,
  type RecheckProgress,
  resumePathFor,
  saveResumeData,
  Torrent,
  type TorrentEvent,
  type TorrentStats,
} from "../torrent/mod.ts";

/** Options for {@linkcode seedTorrent}. */
export interface SeedOptions {
  /** Port to accept peers on (default: 6881, or the next free one up to 6889, else any). */
  port?: number;
  /** Interface to accept peers on (default `0.0.0.0`). */
  hostname?: string;
  /** Peers to dial (e.g. a downloader that only accepts connections). */
  peers?: readonly PeerAddress[];
  /** Announce to the torrent's trackers (default true). */
  useTrackers?: boolean;
  /** Upload slots (default 4). */
  uploadSlots?: number;
  /** Most peer connections (default 50). */
  maxConnections?: number;
  /** Our 20-byte peer id (default: a fresh one). */
  peerId?: Uint8Array;
  /** Write the resume file beside the data after checking it, so the next start is instant (default true). */
  saveResume?: boolean;
  /** Called while the data is hashed at start. */
  onCheck?: (progress: RecheckProgress) => void;
  /** Called for every engine event. */
  onEvent?: (event: TorrentEvent) => void;
  /** Called when a tracker announce fails. */
  onTrackerError?: (url: string, error: Error) => void;
  /**
   * Announce our port into the DHT (BEP 5) through this source, again after each lookup,
   * while seeding; the peers the lookups find are dialled. The caller opens and closes the
   * source. Ignored for a private torrent (BEP 27).
   */
  dht?: DhtPeerSource;
  /** Most time between two DHT lookups and announces, in ms (default 300000: 5 minutes). */
  dhtIntervalMs?: number;
  /** Called when announcing to the DHT fails (e.g. no node answers); it is retried later. */
  onDhtError?: (error: unknown) => void;
  /** Peer exchange (BEP 11) with connected peers (default true; never for a private torrent). */
  pex?: boolean;
  /** Aborts the check, or stops a running seeder (tracker `stopped` is sent). */
  signal?: AbortSignal;
}

/** Counters of a {@linkcode Seeder}. */
export interface SeedStats extends TorrentStats {
  /** Bytes of the torrent we hold verified. */
  verifiedBytes: number;
  /** Distinct peers (by peer id) that connected since the start. */
  peersSeen: number;
}

/** A running seeder from {@linkcode seedTorrent}. */
export interface Seeder extends AsyncDisposable {
  /** The port peers connect to. */
  readonly port: number;
  /** Pieces verified on disk and served. */
  readonly piecesVerified: number;
  /** Pieces in the torrent. */
  readonly pieceCount: number;
  /** Whether every piece is verified (otherwise only the verified ones are served). */
  readonly complete: boolean;
  /** The engine. */
  readonly torrent: Torrent;
  /** A snapshot of the counters. */
  stats(): SeedStats;
  /** Resolves with the final counters once the seeder stopped (by `close` or the signal). */
  readonly stopped: Promise<SeedStats>;
  /** Stops: closes peer connections and the port, tells the trackers, closes the files. */
  close(): Promise<SeedStats>;
}

/**
 * Seeds a torrent from files on disk (BEP 3): checks the data at `path` (the file or top
 * directory, as given to `create` or written by `download -o`), trusting a matching resume
 * file and hashing otherwise; listens for peers; announces to the trackers with `left` = the
 * bytes not held, and to the DHT when given one (not for a private torrent); and serves
 * verified pieces until closed. Upload slots go round-robin, one rechoke every 10 s; every
 * piece request is checked (range, 16 KiB, choke state).
 *
 * Incomplete data is seeded as far as it is verified (the `complete` flag says so); missing
 * pieces are not downloaded. Files are opened as they are: a missing file or one of the wrong
 * size is an error, so seeding never creates or resizes a file.
 *
 * @param metainfo The torrent.
 * @param path The file (single-file torrent) or top directory (multi-file).
 * @param options Port, trackers, peers, limits, callbacks, abort signal.
 * @returns The running seeder; `await using` stops it.
 * @throws {Error} If a file is missing or of the wrong size, or no piece verifies.
 * @throws {Deno.errors.AddrInUse} If the requested port is taken.
 *
 * @example Seeding a file to a downloader on loopback
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { MemoryStorage } from "../storage/mod.ts";
 * import { Torrent } from "../torrent/mod.ts";
 * import { seedTorrent } from "./seed.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const data = new Uint8Array(100_000).map((_, i) => (i * 7) % 251);
 * await Deno.writeFile(`${dir}/x.bin`, data);
 * const { metainfo } = await createTorrent({ name: "x.bin", data }, { pieceLength: 16384 });
 * await using seeder = await seedTorrent(metainfo, `${dir}/x.bin`, {
 *   port: 0,
 *   hostname: "127.0.0.1",
 *   saveResume: false,
 * });
 * assert.equal(seeder.piecesVerified, metainfo.pieceCount);
 *
 * const storage = new MemoryStorage(data.length);
 * await using leecher = new Torrent({ metainfo, storage });
 * leecher.start();
 * leecher.addPeers([{ host: "127.0.0.1", port: seeder.port }]);
 * await leecher.done;
 * assert.deepEqual(storage.bytes, data);
 * await seeder.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function seedTorrent(
  metainfo: Metainfo,
  path: string,
  options: SeedOptions = {},
): Promise<Seeder> {
  const signal = options.signal;
  signal?.throwIfAborted();
  await checkFiles(metainfo, path);
  const storage = await FsStorage.open({
    root: path,
    files: metainfo.files.map((file) => ({ path: file.path, length: file.length })),
    singleFile: !metainfo.multiFile,
  });
  let listener: PeerListener | undefined;
  try {
    const resumePath = resumePathFor(path);
    const have = await checkExisting({
      metainfo,
      paths: storage.paths,
      resumePath,
      ...(signal ? { signal } : {}),
      ...(options.onCheck ? { onProgress: options.onCheck } : {}),
    });
    if (have.count === 0) {
      throw new Error(
        `Cannot seed "${metainfo.name}": none of its ${metainfo.pieceCount} pieces matches the data in "${path}"`,
      );
    }
    if (options.saveResume ?? true) {
      await saveResumeData(
        resumePath,
        await createResumeData({
          infoHash: metainfo.infoHash,
          bitfield: have,
          paths: storage.paths,
        }),
      );
    }
    signal?.throwIfAborted();
    listener = listenForPeers(options);
    const torrent = new Torrent({
      metainfo,
      storage,
      have,
      listener,
      // A partial seed serves what it has and fetches nothing.
      ...(have.isComplete ? {} : { wantedPieces: [] }),
      ...(options.uploadSlots === undefined ? {} : { uploadSlots: options.uploadSlots }),
      ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      ...(options.pex === false ? { pex: false } : {}),
    });
    return startSeeder(metainfo, storage, listener, torrent, options);
  } catch (error) {
    await listener?.close();
    await storage.close();
    throw error;
  }
}

function startSeeder(
  metainfo: Metainfo,
  storage: FsStorage,
  listener: PeerListener,
  torrent: Torrent,
  options: SeedOptions,
): Seeder {
  const signal = options.signal;
  const seen = new Set<string>();
  torrent.subscribe((event) => {
    if (event.type === "peer-connected") seen.add(event.peerId.toHex());
  });
  const stats = (): SeedStats => {
    const current = torrent.stats();
    // `left` is what we lack, not what we want: a partial seed wants nothing but is no seeder.
    return { ...current, left: metainfo.totalLength - current.verifiedBytes, peersSeen: seen.size };
  };
  const announcer = options.useTrackers === false || metainfo.announceList.length === 0
    ? undefined
    : new Announcer({
      announceList: metainfo.announceList,
      infoHash: metainfo.infoHash,
      peerId: torrent.peerId,
      port: listener.port,
      stats: () => {
        const current = stats();
        return { uploaded: current.uploaded, downloaded: current.downloaded, left: current.left };
      },
      onPeers: (peers) => torrent.addPeers(peers),
      ...(options.onTrackerError ? { onError: options.onTrackerError } : {}),
    });
  const stopped = Promise.withResolvers<SeedStats>();
  const stopDht = new AbortController();
  let announcing: Promise<void> | undefined;
  let closing: Promise<SeedStats> | undefined;
  const close = (): Promise<SeedStats> => {
    closing ??= (async () => {
      signal?.removeEventListener("abort", onAbort);
      stopDht.abort();
      try {
        await torrent.close();
        const final = stats();
        await Promise.all([announcer?.stop(), announcing]);
        return final;
      } finally {
        await listener.close();
        await storage.close();
      }
    })();
    closing.then(stopped.resolve, stopped.reject);
    return closing;
  };
  const onAbort = () => {
    close().catch(handledByStopped);
  };
  stopped.promise.catch(handledByStopped);
  torrent.start();
  if (options.peers) torrent.addPeers(options.peers);
  announcer?.start();
  if (options.dht && !metainfo.private) {
    announcing = announceToDht(options.dht, torrent, {
      port: listener.port,
      signal: stopDht.signal,
      intervalMs: options.dhtIntervalMs ?? DEFAULT_DHT_INTERVAL_MS,
      ...(options.onDhtError ? { onError: options.onDhtError } : {}),
    });
  }
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  return {
    port: listener.port,
    piecesVerified: torrent.have.count,
    pieceCount: metainfo.pieceCount,
    complete: torrent.have.isComplete,
    torrent,
    stats,
    stopped: stopped.promise,
    close,
    [Symbol.asyncDispose]: async () => {
      await close();
    },
  };
}

/** Default most time between two DHT announces of a seeder (peers expire after 30 minutes). */
const DEFAULT_DHT_INTERVAL_MS = 300_000;

/**
 * Announces the seeder's port into the DHT after each lookup and dials the peers found, until
 * `signal` aborts; a failure (no node answers) is reported and retried after the interval.
 */
async function announceToDht(
  dht: DhtPeerSource,
  torrent: Torrent,
  options: {
    port: number;
    signal: AbortSignal;
    intervalMs: number;
    onError?: (error: unknown) => void;
  },
): Promise<void> {
  const { port, signal, intervalMs } = options;
  while (!signal.aborted) {
    try {
      const lookups = dht.peers(torrent.infoHash, { signal, announcePort: port, intervalMs });
      for await (const batch of lookups) torrent.addPeers(batch);
      // Ended without an error: stopped, or the source was closed under us.
      return;
    } catch (error) {
      if (signal.aborted) return;
      options.onError?.(error);
    }
    await sleep(intervalMs, signal);
  }
}

function handledByStopped(_error: unknown): void {
  // A failure to close reaches whoever awaits `stopped` or `close()`; an unawaited one is not
  // reported twice.
}

/** Refuses before anything is opened if a file is missing or sized differently. */
async function checkFiles(metainfo: Metainfo, path: string): Promise<void> {
  const where = `Cannot seed "${metainfo.name}" from "${path}"`;
  let root: Deno.FileInfo;
  try {
    root = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`${where}: it does not exist`, { cause: error });
    }
    throw error;
  }
  if (metainfo.multiFile && !root.isDirectory) {
    throw new Error(`${where}: the torrent has several files but this is not a directory`);
  }
  if (!metainfo.multiFile) {
    if (!root.isFile) throw new Error(`${where}: not a file`);
    if (root.size !== metainfo.totalLength) {
      throw new Error(`${where}: it has ${root.size} bytes, expected ${metainfo.totalLength}`);
    }
    return;
  }
  for (const file of metainfo.files) {
    if (file.padding) continue;
    const relative = file.path.join("/");
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(join(path, ...file.path));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(`${where}: "${relative}" is missing`, { cause: error });
      }
      throw error;
    }
    if (!info.isFile || info.size !== file.length) {
      throw new Error(
        `${where}: "${relative}" has ${info.size} bytes, expected ${file.length}`,
      );
    }
  }
}
