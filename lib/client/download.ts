import { listenForPeers } from "./_listen.ts";
import * as nodePath from "node:path";
import type { Metainfo } from "../metainfo/mod.ts";
import type { PeerAddress } from "../peer/address.ts";
import { FsStorage, safePathComponents } from "../storage/mod.ts";
import { Announcer } from "../torrent/announcer.ts";
import { Bitfield } from "../piece/mod.ts";
import {
  checkExisting,
  createResumeData,
  mustSyncBeforeResumeSave,
  type RecheckProgress,
  resumePathFor,
  saveResumeData,
} from "../torrent/resume.ts";
import { Torrent, type TorrentEvent, type TorrentStats } from "../torrent/mod.ts";

/** Options for {@linkcode downloadTorrent}. */
export interface DownloadOptions {
  /**
   * Where to put the data: the file itself for a single-file torrent, the torrent's top
   * directory for a multi-file one. Defaults to the torrent's name, sanitised as a path
   * component, in the current directory.
   */
  out?: string;
  /**
   * Sync the data to disk before each resume save (and in the background as it is written),
   * so that the resume file holds across a power cut. Off by default, as in libtorrent, aria2
   * and Transmission: the kernel writes the data back on its own, and the resume file records
   * the boot it was saved in; after the machine restarts, the data is rechecked instead of
   * trusted. Where the boot cannot be identified (not Linux), data is always synced.
   */
  fsync?: boolean;
  /** Peers to dial besides those the trackers name. */
  peers?: readonly PeerAddress[];
  /** Ask the torrent's trackers for peers (default true). */
  useTrackers?: boolean;
  /** Port to accept peers on (default: 6881, or the next free one up to 6889, else any). */
  port?: number;
  /** Interface to accept peers on (default `0.0.0.0`). */
  hostname?: string;
  /** Most peer connections (default 50). */
  maxConnections?: number;
  /** Keep seeding after the download completes, until `signal` aborts (default false). */
  seed?: boolean;
  /** Milliseconds between resume-file saves (default 30000). */
  resumeIntervalMs?: number;
  /**
   * Floor for the trackers' re-announce interval, in ms (default 30000). Trackers' own
   * `interval` and `min interval` are honoured above it.
   */
  minAnnounceIntervalMs?: number;
  /** Called when an announce to a tracker fails (the announcer fails over and retries). */
  onTrackerError?: (url: string, error: Error) => void;
  /** Called about once a second, and at the end, with the torrent's counters. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Called for every engine event (pieces, peers). */
  onEvent?: (event: TorrentEvent) => void;
  /** Called while the data already on disk is checked at start. */
  onCheck?: (progress: RecheckProgress) => void;
  /**
   * Another source of peers, such as the DHT: called once we listen, with our port; its
   * batches are dialled until the download ends, when `signal` aborts (errors go to `onEvent`).
   */
  peerSource?: (
    context: { port: number; signal: AbortSignal },
  ) => AsyncIterable<readonly PeerAddress[]>;
  /** Stops the download cleanly: verified data and the resume file are kept. */
  signal?: AbortSignal;
}

/** Counters reported by {@linkcode downloadTorrent} as it runs. */
export interface DownloadProgress extends TorrentStats {
  /** Total bytes of the torrent. */
  totalBytes: number;
  /** Milliseconds since the download started. */
  elapsedMs: number;
  /** Bytes that were already verified on disk at start. */
  resumedBytes: number;
  /** True once every piece is verified and written. */
  complete: boolean;
}

/** What {@linkcode downloadTorrent} did. */
export interface DownloadResult {
  /** Where the data is. */
  out: string;
  /** True when every piece is verified on disk; false when stopped early. */
  complete: boolean;
  /** The final counters. */
  progress: DownloadProgress;
}

const RESUME_INTERVAL_MS = 30_000;
const PROGRESS_INTERVAL_MS = 1_000;

/**
 * Downloads a whole torrent into files: peers from every tracker (BEP 12 tiers, HTTP and UDP)
 * and from `peers`, rarest-first from many connections, every piece SHA-1 verified before it is
 * written, uploads to other peers while it runs. Re-running it on a partial output fetches only
 * what is missing: a resume file (`.<name>.dtresume` beside the output) is trusted while file
 * sizes and mtimes match, otherwise the data present is rechecked.
 *
 * @param metainfo The torrent.
 * @param options Output path (default: the torrent's name, sanitised, in the current
 * directory), peers, port, seeding and progress callbacks.
 * @returns Where the data went and whether it is complete.
 * @throws {Error} When the output cannot be created (the message names the path).
 *
 * @example From a seeder on loopback
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { MemoryStorage } from "../storage/mod.ts";
 * import { serveTorrent } from "../torrent/mod.ts";
 * import { downloadTorrent } from "./download.ts";
 *
 * const data = crypto.getRandomValues(new Uint8Array(60_000));
 * const { metainfo } = await createTorrent({ name: "x.bin", data }, { pieceLength: 16384 });
 * const source = new MemoryStorage(data.length);
 * await source.write(0, data);
 * await using seeder = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
 *
 * const dir = await Deno.makeTempDir();
 * const result = await downloadTorrent(metainfo, {
 *   out: `${dir}/x.bin`,
 *   port: 0,
 *   hostname: "127.0.0.1",
 *   peers: [{ host: "127.0.0.1", port: seeder.port }],
 * });
 * assert.equal(result.complete, true);
 * assert.deepEqual(await Deno.readFile(`${dir}/x.bin`), data);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function downloadTorrent(
  metainfo: Metainfo,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const started = performance.now();
  // The torrent's name is untrusted: as a default output it must stay a plain name here.
  const out = options.out ?? safePathComponents([metainfo.name])[0]!;
  options.signal?.throwIfAborted();

  const fsync = mustSyncBeforeResumeSave(options.fsync);
  const storage = await openStorage(metainfo, out, fsync);
  try {
    return await run(metainfo, storage, out, started, fsync, options);
  } finally {
    await storage.close();
  }
}

async function run(
  metainfo: Metainfo,
  storage: FsStorage,
  out: string,
  started: number,
  fsync: boolean,
  options: DownloadOptions,
): Promise<DownloadResult> {
  const signal = options.signal;
  const resumePath = resumePathFor(out);
  const have = await checkExisting({
    metainfo,
    paths: storage.paths,
    resumePath,
    ...(signal ? { signal } : {}),
    ...(options.onCheck ? { onProgress: options.onCheck } : {}),
  });
  const resumedBytes = verifiedBytesOf(metainfo, have);

  await using listener = listenForPeers(options);
  await using torrent = new Torrent({
    metainfo,
    storage,
    have,
    listener,
    ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
  });

  const progress = (): DownloadProgress => ({
    ...torrent.stats(),
    totalBytes: metainfo.totalLength,
    elapsedMs: performance.now() - started,
    resumedBytes,
    complete: torrent.isDone,
  });

  const announcer = options.useTrackers === false || metainfo.announceList.length === 0
    ? undefined
    : new Announcer({
      announceList: metainfo.announceList,
      infoHash: metainfo.infoHash,
      peerId: torrent.peerId,
      port: listener.port,
      stats: () => {
        const stats = torrent.stats();
        return { uploaded: stats.uploaded, downloaded: stats.downloaded, left: stats.left };
      },
      onPeers: (peers) => torrent.addPeers(peers),
      ...(options.onTrackerError ? { onError: options.onTrackerError } : {}),
      ...(options.minAnnounceIntervalMs !== undefined
        ? { minAnnounceIntervalMs: options.minAnnounceIntervalMs }
        : {}),
    });

  let saving: Promise<void> = Promise.resolve();
  const saveResume = () => {
    // Snapshot first: every piece in it was written before the flush below starts.
    const bitfield = Bitfield.fromBytes(torrent.have.toBytes(), metainfo.pieceCount);
    const save = async () => {
      if (fsync) await storage.flush();
      await saveResumeData(
        resumePath,
        await createResumeData({
          infoHash: metainfo.infoHash,
          bitfield,
          paths: storage.paths,
          synced: fsync,
        }),
      );
    };
    // One save at a time, each after the previous one settles: a save that failed (a full disk)
    // was reported to its own caller and must not doom every later save.
    saving = saving.then(save, save);
    return saving;
  };

  const stopped = Promise.withResolvers<void>();
  const onAbort = () => stopped.resolve();
  signal?.addEventListener("abort", onAbort, { once: true });
  // A failed storage write (disk full, file too large) would otherwise repeat for ever: the
  // piece is fetched again and fails again. Stop instead, keeping what is verified.
  let writeError: unknown;
  const unsubscribe = torrent.subscribe((event) => {
    if (event.type !== "error" || writeError !== undefined) return;
    writeError = event.error;
    stopped.resolve();
  });
  let progressTimer: ReturnType<typeof setInterval> | undefined;
  const resumeTimer = setInterval(() => {
    saveResume().catch((error) => options.onEvent?.({ type: "error", error }));
  }, options.resumeIntervalMs ?? RESUME_INTERVAL_MS);

  const stopSource = new AbortController();
  let sourcing: Promise<void> | undefined;
  try {
    torrent.start();
    // Created after the torrent's own 1 s tick, so each report fires just after the tick that
    // measured the sessions' rates (the first report used to show a rate of 0).
    progressTimer = setInterval(() => {
      const now = progress();
      // Out of peers: ask the trackers again (no sooner than their min interval allows),
      // rather than idling until the regular interval, often 30 minutes away.
      if (!now.complete && now.peersConnected === 0 && now.peersConnecting === 0) {
        announcer?.requestMorePeers();
      }
      options.onProgress?.(now);
    }, PROGRESS_INTERVAL_MS);
    if (options.peers) torrent.addPeers(options.peers);
    if (options.peerSource) {
      sourcing = pumpPeers(
        options.peerSource,
        listener.port,
        torrent,
        stopSource.signal,
        options.onEvent,
      );
    }
    announcer?.start();
    await Promise.race([torrent.done, stopped.promise]);
    if (torrent.isDone) {
      announcer?.completed();
      await saveResume();
      if (options.seed) await stopped.promise;
    }
  } finally {
    clearInterval(progressTimer);
    clearInterval(resumeTimer);
    signal?.removeEventListener("abort", onAbort);
    stopSource.abort();
    await sourcing;
    unsubscribe();
    await torrent.close();
    const saved = saveResume();
    await Promise.all([
      announcer?.stop(),
      // On a full disk the resume file may not fit either; the next run rechecks the data.
      writeError === undefined
        ? saved
        : saved.catch((error) => options.onEvent?.({ type: "error", error })),
    ]);
  }
  if (writeError !== undefined) {
    const detail = writeError instanceof Error ? writeError.message : String(writeError);
    throw new Error(`Cannot write to "${out}": ${detail}`, { cause: writeError });
  }
  const final = progress();
  options.onProgress?.(final);
  return { out, complete: final.complete, progress: final };
}

/** Dials the peers of a download's `peerSource` until `signal` aborts. */
async function pumpPeers(
  source: NonNullable<DownloadOptions["peerSource"]>,
  port: number,
  torrent: Torrent,
  signal: AbortSignal,
  onEvent: DownloadOptions["onEvent"],
): Promise<void> {
  try {
    for await (const batch of source({ port, signal })) torrent.addPeers(batch);
  } catch (error) {
    // A failed source costs only its peers; the trackers and the others carry on.
    if (!signal.aborted) onEvent?.({ type: "error", error });
  }
}

async function openStorage(metainfo: Metainfo, out: string, fsync: boolean): Promise<FsStorage> {
  try {
    // `-o some/new/dir/file.iso` works as it does for a multi-file torrent's top directory.
    if (!metainfo.multiFile) {
      await Deno.mkdir(nodePath.dirname(nodePath.resolve(out)), { recursive: true });
    }
    return await FsStorage.open({
      root: out,
      files: metainfo.files.map((file) => ({ path: file.path, length: file.length })),
      singleFile: !metainfo.multiFile,
      backgroundSync: fsync,
    });
  } catch (cause) {
    throw new Error(
      `Cannot create the output "${out}": ${cause instanceof Error ? cause.message : cause}`,
      { cause },
    );
  }
}

function verifiedBytesOf(metainfo: Metainfo, have: { has(index: number): boolean }): number {
  let bytes = 0;
  for (let index = 0; index < metainfo.pieceCount; index++) {
    if (!have.has(index)) continue;
    bytes += Math.min(metainfo.pieceLength, metainfo.totalLength - index * metainfo.pieceLength);
  }
  return bytes;
}
