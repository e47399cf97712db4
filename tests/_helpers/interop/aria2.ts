/**
 * Runs aria2 1.36 (`aria2c`) as a BitTorrent seeder or downloader on 127.0.0.1.
 *
 * @module
 */

import { freePort } from "./free_port.ts";
import { delay, ManagedProcess, markHandled, type ProcessExit, withTimeout } from "./_process.ts";

/** Options for {@linkcode startAria2}. */
export interface Aria2Options {
  /** `seed` hash-checks then seeds forever; `download` exits when complete. */
  mode: "seed" | "download";
  /** The .torrent file (use v1 torrents: aria2 gets hybrid info hashes wrong). */
  torrentPath: string;
  /** Directory holding (seed) or receiving (download) the data: the parent of the payload. */
  dir: string;
  /** TCP listen port (default a free one). */
  port?: number;
  /** Extra announce URLs (`--bt-tracker`), e.g. an in-test tracker. */
  trackers?: string[];
  /**
   * Turn DHT on (no bootstrap nodes). aria2 speaks UDP trackers only through its DHT socket,
   * so this defaults to true when the torrent or `trackers` mention `udp://`.
   */
  dht?: boolean;
  /** A DHT node to bootstrap from, as `host:port` (aria2 has none by default). */
  dhtEntryPoint?: string;
  /** A 20-character peer id (default `A2-1-36-0-` plus 10 random characters). */
  peerId?: string;
  /** More command-line arguments. */
  extraArgs?: string[];
  /** Time allowed to start listening (default 20 000 ms). */
  timeoutMs?: number;
  /** Print its output on stderr (debugging). */
  verbose?: boolean;
  /** Run in a session of its own (`inOwnSession` in `_process.ts`; benchmarks). */
  ownSession?: boolean;
}

/** A running aria2c; `await using` stops it. */
export interface Aria2 extends AsyncDisposable {
  /** The BitTorrent TCP listen port. */
  readonly port: number;
  /** `127.0.0.1:PORT` */
  readonly address: string;
  /** The peer id it sends. */
  readonly peerId: string;
  /** Resolved once it listens (and, for a seeder, has verified the data). */
  readonly ready: Promise<void>;
  /** Download mode: resolves when aria2 exits 0 (complete); rejects on any other exit. */
  readonly finished: Promise<{ seconds: number }>;
  readonly exited: Promise<ProcessExit>;
  /** Last lines of its output. */
  readonly tail: string;
  /** Stops it; safe to call twice. */
  stop(): Promise<void>;
}

const PEER_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789";

function randomSuffix(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => PEER_ID_CHARS[b % PEER_ID_CHARS.length]).join("");
}

/**
 * Starts `aria2c` with the loopback flags (no LPD/PEX, IPv4 only, no file allocation, DHT only
 * when UDP trackers need it) and waits until it listens; a seeder also finishes its hash check.
 *
 * @param options What to seed or download.
 * @returns The running aria2c.
 * @throws {Error} When it fails to start (message includes its output).
 * @example Usage
 * ```ts ignore
 * await using leecher = await startAria2({ mode: "download", torrentPath, dir: outDir });
 * console.log((await leecher.finished).seconds);
 * ```
 */
export async function startAria2(options: Aria2Options): Promise<Aria2> {
  const port = options.port ?? await freePort();
  const peerId = options.peerId ?? "A2-1-36-0-" + randomSuffix(10);
  if (peerId.length !== 20) {
    throw new TypeError(`Cannot start aria2: peer id '${peerId}' is not 20 characters`);
  }
  let dht = options.dht;
  if (dht === undefined) {
    const torrentText = new TextDecoder("latin1").decode(await Deno.readFile(options.torrentPath));
    dht = torrentText.includes("udp://") ||
      (options.trackers ?? []).some((url) => url.startsWith("udp://"));
  }
  const dhtDir = dht ? await Deno.makeTempDir({ prefix: "aria2_dht_" }) : undefined;
  const args = [
    `--dir=${options.dir}`,
    `--listen-port=${port}`,
    `--peer-id-prefix=${peerId}`,
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--disable-ipv6=true",
    "--file-allocation=none",
    "--allow-overwrite=true",
    "--auto-file-renaming=false",
    "--bt-save-metadata=false",
    "--console-log-level=notice",
    "--enable-color=false",
    "--summary-interval=0",
    "--bt-stop-timeout=0",
    "--seed-ratio=0.0",
    `--enable-dht=${dht}`,
  ];
  if (dhtDir !== undefined) {
    args.push(
      `--dht-listen-port=${await freePort()}`,
      `--dht-file-path=${dhtDir}/dht.dat`,
    );
    if (options.dhtEntryPoint !== undefined) {
      args.push(`--dht-entry-point=${options.dhtEntryPoint}`);
    }
  }
  if (options.mode === "seed") args.push("--check-integrity=true");
  else args.push("--seed-time=0");
  if (options.trackers?.length) args.push(`--bt-tracker=${options.trackers.join(",")}`);
  args.push(...(options.extraArgs ?? []), options.torrentPath);

  const started = performance.now();
  let listening = false;
  let verified = options.mode === "download";
  const child = new ManagedProcess("aria2c", {
    args,
    label: `aria2 ${options.mode}`,
    ownSession: options.ownSession ?? false,
    onLine: (line, stream) => {
      if (options.verbose) console.error(`[aria2 ${options.mode} ${stream}] ${line}`);
      if (line.includes("BitTorrent: listening on TCP port")) listening = true;
      if (line.includes("Verification finished successfully") || line.includes("SEED(")) {
        verified = true;
      }
    },
  });
  const exited = child.exited.then(async (exit) => {
    if (dhtDir !== undefined) await Deno.remove(dhtDir, { recursive: true });
    return exit;
  });
  markHandled(exited);
  const finished = exited.then((exit) => {
    if (exit.code === 0 && !exit.stopped) {
      return { seconds: (performance.now() - started) / 1000 };
    }
    throw new Error(
      `aria2 ${options.mode} exited (code ${exit.code}) before finishing\n${child.tail}`,
    );
  });
  markHandled(finished);

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      await child.stop();
      await exited;
    })();
    return stopped;
  };

  const ready = (async () => {
    while (!(listening && verified)) {
      if (child.done) {
        // A downloader whose data is already complete may exit 0 before we saw "listening".
        if (options.mode === "download" && (await exited).code === 0) return;
        throw new Error(`aria2 ${options.mode} exited before listening\n${child.tail}`);
      }
      await delay(20);
    }
  })();
  markHandled(ready);
  try {
    await withTimeout(
      ready,
      options.timeoutMs ?? 20_000,
      () => `Timed out waiting for aria2 ${options.mode} to listen\n${child.tail}`,
    );
  } catch (error) {
    await stop();
    throw new Error(`Cannot start aria2 ${options.mode}`, { cause: error });
  }

  return {
    port,
    address: `127.0.0.1:${port}`,
    peerId,
    ready: Promise.resolve(),
    finished,
    exited,
    get tail() {
      return child.tail;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
