/**
 * Runs libtorrent-rasterbar 2.0 (`python3-libtorrent`, driven by `lt_session.py`) as a seeder
 * or downloader on 127.0.0.1, and offers its torrent parser and creator as a second opinion.
 *
 * @module
 */

import { ManagedProcess, markHandled, type ProcessExit, withTimeout } from "./_process.ts";
import { PYTHON } from "./tools.ts";

/** Path of the python driver script. */
export const LT_SESSION_SCRIPT: string = decodeURIComponent(
  new URL("./lt_session.py", import.meta.url).pathname,
);

/** Options for {@linkcode startLibtorrent}. */
export interface LibtorrentOptions {
  /** `seed` trusts the data (`seed_mode`) unless `recheck`; `download` exits when done. */
  mode: "seed" | "download";
  /** A .torrent file; or give `magnet`. */
  torrentPath?: string;
  /** A magnet URI (download mode; needs a peer that serves ut_metadata). */
  magnet?: string;
  /** Directory holding the torrent's data (for a seeder: the parent of the file or folder). */
  savePath: string;
  /** TCP listen port on 127.0.0.1 (default 0: the OS picks; see `port` on the handle). */
  port?: number;
  /** A 20-character peer id (default `-LT2080-` plus 12 random characters). */
  peerId?: string;
  /** Peers to dial directly once the torrent is added, as `host:port`. */
  peers?: string[];
  /** Turn DHT on (loopback-friendly: no IP restrictions); off by default. */
  dht?: boolean;
  /** DHT nodes to add, as `host:port`. */
  dhtBootstrap?: string[];
  /** A seeder hashes its data first instead of `seed_mode`. */
  recheck?: boolean;
  /** Download mode: exit after finishing (default true). False keeps seeding. */
  exitOnFinish?: boolean;
  /** Interval of `progress` events in ms (default 1000; 0 for none). */
  progressMs?: number;
  /** Extra libtorrent `settings_pack` entries, applied last. */
  settings?: Record<string, string | number | boolean>;
  /** Time allowed to start listening (default 20 000 ms). */
  timeoutMs?: number;
  /** Called for every event line. */
  onEvent?: (event: LibtorrentEvent) => void;
  /** Print every event line on stderr (debugging). */
  verbose?: boolean;
  /** Run in a session of its own (`inOwnSession` in `_process.ts`; benchmarks). */
  ownSession?: boolean;
}

/**
 * One JSON line from `lt_session.py`. Events: `listening` {port, info_hash, peer_id, state},
 * `progress` {state, progress, total_done, total_wanted, download_rate, upload_rate,
 * total_upload, total_download, num_peers, num_seeds}, `finished` {seconds, total_done},
 * `peer_connected` {host, port}, `peer_disconnected` {host, port, peer_id, message},
 * `tracker_reply` {url, num_peers}, `tracker_error` {url, message}, `metadata_received`,
 * `hash_failed` {piece}, `dht_bootstrap`, `warning` {message}, `error` {message}, `exit` {seconds}.
 */
export interface LibtorrentEvent {
  event: string;
  [field: string]: unknown;
}

/** Result of a finished download. */
export interface LibtorrentFinished {
  /** Seconds from session start to `torrent_finished_alert`, measured inside python. */
  seconds: number;
  /** Bytes of the torrent done. */
  totalDone: number;
}

/** A running libtorrent session with one torrent; `await using` stops it. */
export interface LibtorrentSession extends AsyncDisposable {
  /** Resolved once listening (already resolved when `startLibtorrent` returns). */
  readonly ready: Promise<void>;
  /** The TCP listen port. */
  readonly port: number;
  /** `127.0.0.1:PORT` */
  readonly address: string;
  /** v1 info hash, 40 lowercase hex. */
  readonly infoHash: string;
  /** The 20-character peer id it uses in handshakes. */
  readonly peerId: string;
  /** Resolves on `finished` (download mode); rejects if the process ends first. */
  readonly finished: Promise<LibtorrentFinished>;
  /** Every event so far. */
  readonly events: readonly LibtorrentEvent[];
  /** Resolves when the process has ended. */
  readonly exited: Promise<ProcessExit>;
  /** Last lines of its output, for error messages. */
  readonly tail: string;
  /**
   * Resolves with the first event (already seen, unless `fresh`) matching `match`.
   * Rejects on timeout (default 20 000 ms) or when the process ends.
   */
  waitForEvent(
    match: string | ((event: LibtorrentEvent) => boolean),
    options?: { timeoutMs?: number; fresh?: boolean },
  ): Promise<LibtorrentEvent>;
  /** Dials a peer (`connect_peer`). */
  connectPeer(host: string, port: number): Promise<void>;
  /** Forces a tracker announce now, ignoring the min interval. */
  reannounce(): Promise<void>;
  /** Forces a DHT announce. */
  dhtAnnounce(): Promise<void>;
  /** Adds a DHT node. */
  addDhtNode(host: string, port: number): Promise<void>;
  /** Asks for a `progress` event now and returns it. */
  status(): Promise<LibtorrentEvent>;
  /** Quits (stdin closed, then signals) and waits for the exit; safe to call twice. */
  stop(): Promise<void>;
}

interface Waiter {
  match: (event: LibtorrentEvent) => boolean;
  resolve: (event: LibtorrentEvent) => void;
  reject: (error: Error) => void;
}

function toMatcher(match: string | ((event: LibtorrentEvent) => boolean)) {
  return typeof match === "string" ? (event: LibtorrentEvent) => event.event === match : match;
}

/**
 * Starts `lt_session.py session` with the loopback settings (multiple connections per IP,
 * TCP only, no DHT/LSD/UPnP/NAT-PMP unless asked) and waits until it listens. It forces a
 * tracker announce at start and dials `peers`.
 *
 * @param options What to seed or download and how.
 * @returns The running session.
 * @throws {TypeError} Without `torrentPath` or `magnet`, or with a bad `peerId`.
 * @throws {Error} When it fails to start (message includes its output).
 * @example Usage
 * ```ts ignore
 * await using seeder = await startLibtorrent({ mode: "seed", torrentPath, savePath: dataParent });
 * await using leecher = await startLibtorrent({
 *   mode: "download", torrentPath, savePath: outDir, peers: [seeder.address],
 * });
 * console.log((await leecher.finished).seconds);
 * ```
 */
export async function startLibtorrent(options: LibtorrentOptions): Promise<LibtorrentSession> {
  if (options.torrentPath === undefined && options.magnet === undefined) {
    throw new TypeError("Cannot start libtorrent: torrentPath or magnet is required");
  }
  if (options.peerId !== undefined && options.peerId.length !== 20) {
    throw new TypeError(
      `Cannot start libtorrent: peer id '${options.peerId}' is not 20 characters`,
    );
  }
  const config: Record<string, unknown> = {
    mode: options.mode,
    save_path: options.savePath,
    port: options.port ?? 0,
    peers: options.peers ?? [],
    dht: options.dht ?? false,
    dht_bootstrap: options.dhtBootstrap ?? [],
    recheck: options.recheck ?? false,
    exit_on_finish: options.exitOnFinish ?? true,
    progress_ms: options.progressMs ?? 1000,
    settings: options.settings ?? {},
  };
  if (options.torrentPath !== undefined) config.torrent = options.torrentPath;
  if (options.magnet !== undefined) config.magnet = options.magnet;
  if (options.peerId !== undefined) config.peer_id = options.peerId;

  const events: LibtorrentEvent[] = [];
  let waiters: Waiter[] = [];
  let listening: LibtorrentEvent | undefined;
  let resolveFinished!: (value: LibtorrentFinished) => void;
  let rejectFinished!: (error: Error) => void;
  const finished = new Promise<LibtorrentFinished>((resolve, reject) => {
    resolveFinished = resolve;
    rejectFinished = reject;
  });
  markHandled(finished);

  const onEvent = (event: LibtorrentEvent) => {
    events.push(event);
    if (options.verbose) console.error(`[libtorrent ${options.mode}] ${JSON.stringify(event)}`);
    options.onEvent?.(event);
    if (event.event === "listening") listening = event;
    if (event.event === "finished") {
      resolveFinished({ seconds: Number(event.seconds), totalDone: Number(event.total_done) });
    }
    const pending = waiters;
    waiters = [];
    for (const waiter of pending) {
      if (waiter.match(event)) waiter.resolve(event);
      else waiters.push(waiter);
    }
  };

  const child = new ManagedProcess(PYTHON, {
    args: [LT_SESSION_SCRIPT, "session", JSON.stringify(config)],
    stdin: true,
    ownSession: options.ownSession ?? false,
    label: `libtorrent ${options.mode}`,
    onLine: (line, stream) => {
      if (stream !== "stdout" || !line.startsWith("{")) return; // Not an event (e.g. a python warning): kept in the tail.
      let event: LibtorrentEvent;
      try {
        event = JSON.parse(line);
      } catch (error) {
        if (error instanceof SyntaxError) return; // Kept in the tail for error messages.
        throw error;
      }
      onEvent(event);
    },
  });

  const exited = child.exited.then((exit) => {
    const error = new Error(
      `libtorrent ${options.mode} exited (code ${exit.code}${
        exit.signal ? `, ${exit.signal}` : ""
      })\n${child.tail}`,
    );
    rejectFinished(error);
    for (const waiter of waiters) waiter.reject(error);
    waiters = [];
    return exit;
  });
  markHandled(exited);

  const waitForEvent = (
    match: string | ((event: LibtorrentEvent) => boolean),
    waitOptions: { timeoutMs?: number; fresh?: boolean } = {},
  ): Promise<LibtorrentEvent> => {
    const matcher = toMatcher(match);
    if (!waitOptions.fresh) {
      const seen = events.find(matcher);
      if (seen) return Promise.resolve(seen);
    }
    if (child.done) {
      return Promise.reject(new Error(`libtorrent ${options.mode} has exited\n${child.tail}`));
    }
    const promise = new Promise<LibtorrentEvent>((resolve, reject) => {
      waiters.push({ match: matcher, resolve, reject });
    });
    const what = typeof match === "string" ? `'${match}'` : "a matching event";
    return withTimeout(
      promise,
      waitOptions.timeoutMs ?? 20_000,
      () => `Timed out waiting for ${what} from libtorrent ${options.mode}\n${child.tail}`,
    );
  };

  const send = (command: Record<string, unknown>) => child.writeLine(JSON.stringify(command));

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      await child.stop();
      await exited;
    })();
    return stopped;
  };

  try {
    await waitForEvent("listening", { timeoutMs: options.timeoutMs ?? 20_000 });
  } catch (error) {
    await stop();
    throw new Error(`Cannot start libtorrent ${options.mode}`, { cause: error });
  }
  const ready = listening!;

  return {
    ready: Promise.resolve(),
    port: Number(ready.port),
    address: `127.0.0.1:${ready.port}`,
    infoHash: String(ready.info_hash),
    peerId: String(ready.peer_id),
    finished,
    events,
    exited,
    get tail() {
      return child.tail;
    },
    waitForEvent,
    connectPeer: (host, port) => send({ cmd: "connect", host, port }),
    reannounce: () => send({ cmd: "reannounce" }),
    dhtAnnounce: () => send({ cmd: "dht_announce" }),
    addDhtNode: (host, port) => send({ cmd: "add_dht_node", host, port }),
    async status() {
      const next = waitForEvent("progress", { fresh: true, timeoutMs: 5000 });
      await send({ cmd: "status" });
      return await next;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

async function runOneShot(args: string[]): Promise<LibtorrentEvent> {
  const output = await new Deno.Command(PYTHON, {
    args: [LT_SESSION_SCRIPT, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout).trim();
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim();
    throw new Error(`libtorrent ${args[0]} failed (code ${output.code}): ${stderr || stdout}`);
  }
  return JSON.parse(stdout.split("\n").at(-1) ?? "");
}

/**
 * A generous limit for a seeder started with `recheck` to hash `bytes` of data before it seeds:
 * 10 s plus 5 s per GiB (it hashes at about 0.5 s per GiB on this machine kind).
 *
 * @param bytes Size of the torrent's data.
 * @returns Milliseconds.
 */
export function recheckTimeoutMs(bytes: number): number {
  return 10_000 + bytes / 1024 ** 3 * 5_000;
}

/** What libtorrent reads from a .torrent file. */
export interface LibtorrentTorrentInfo {
  infoHash: string;
  name: string;
  totalSize: number;
  pieceLength: number;
  numPieces: number;
  /** Paths include the torrent name for multi-file torrents, with `/` separators. */
  files: { path: string; size: number }[];
}

/**
 * Parses a .torrent with libtorrent (`torrent_info`).
 *
 * @param torrentPath The .torrent file.
 * @returns Info hash (v1, hex), name, sizes and files.
 * @throws {Error} When libtorrent rejects the file (message has its error).
 * @example Usage
 * ```ts ignore
 * const info = await libtorrentTorrentInfo("x.torrent");
 * ```
 */
export async function libtorrentTorrentInfo(torrentPath: string): Promise<LibtorrentTorrentInfo> {
  const info = await runOneShot(["info-hash", torrentPath]);
  return {
    infoHash: String(info.info_hash),
    name: String(info.name),
    totalSize: Number(info.total_size),
    pieceLength: Number(info.piece_length),
    numPieces: Number(info.num_pieces),
    files: info.files as { path: string; size: number }[],
  };
}

/**
 * Computes a .torrent file's v1 info hash with libtorrent, as an independent check.
 *
 * @param torrentPath The .torrent file.
 * @returns 40 lowercase hex digits.
 * @throws {Error} When libtorrent rejects the file.
 * @example Usage
 * ```ts ignore
 * assert.equal(await libtorrentInfoHash("x.torrent"), ourInfoHashHex);
 * ```
 */
export async function libtorrentInfoHash(torrentPath: string): Promise<string> {
  return (await libtorrentTorrentInfo(torrentPath)).infoHash;
}

/** Options for {@linkcode libtorrentCreateTorrent}. */
export interface LibtorrentCreateOptions {
  /** Where to write the .torrent. */
  output: string;
  /** Piece length in bytes (default 0: libtorrent picks). */
  pieceLength?: number;
  /** Announce URLs, one tier each. */
  trackers?: string[];
  private?: boolean;
  comment?: string;
  /** `created by` (default `libtorrent`). */
  creator?: string;
  /** Keep `creation date` (default false, so output is reproducible). */
  creationDate?: boolean;
}

/**
 * Creates a v1-only torrent without pad files with libtorrent (`create_torrent`), for
 * comparing against our creator.
 *
 * @param source File or directory to include.
 * @param options Output path and metadata.
 * @returns The output path and the v1 info hash (hex).
 * @throws {Error} When libtorrent fails.
 * @example Usage
 * ```ts ignore
 * const { infoHash } = await libtorrentCreateTorrent(dataDir, { output: "x.torrent", pieceLength: 16384 });
 * ```
 */
export async function libtorrentCreateTorrent(
  source: string,
  options: LibtorrentCreateOptions,
): Promise<{ path: string; infoHash: string }> {
  const config: Record<string, unknown> = {
    source,
    output: options.output,
    piece_length: options.pieceLength ?? 0,
    trackers: options.trackers ?? [],
    private: options.private ?? false,
    creation_date: options.creationDate ?? false,
  };
  if (options.comment !== undefined) config.comment = options.comment;
  if (options.creator !== undefined) config.creator = options.creator;
  const created = await runOneShot(["create", JSON.stringify(config)]);
  return { path: String(created.path), infoHash: String(created.info_hash) };
}
