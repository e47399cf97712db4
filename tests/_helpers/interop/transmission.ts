/**
 * Runs Transmission 3.00 (`transmission-cli`) as a seeder on 127.0.0.1. It never dials
 * loopback peers, so tests dial it; it keeps one peer per IP per torrent, so start a fresh one
 * per test, and it unchokes on a 10 s timer, so expect ~10 s before data flows.
 *
 * @module
 */

import { freePort } from "./free_port.ts";
import { delay, ManagedProcess, markHandled, type ProcessExit, withTimeout } from "./_process.ts";

/** Options for {@linkcode startTransmission}. */
export interface TransmissionOptions {
  /** Only `seed` is supported (Transmission never dials loopback peers). */
  mode: "seed";
  /** The .torrent file (v1; Transmission cannot open hybrid torrents). */
  torrentPath: string;
  /** The parent directory of the payload. */
  dir: string;
  /** TCP listen port (default a free one). */
  port?: number;
  /** Extra settings.json entries. */
  settings?: Record<string, unknown>;
  /** Time allowed to verify and listen (default 30 000 ms). */
  timeoutMs?: number;
  /** Print its output on stderr (debugging). */
  verbose?: boolean;
}

/** A running transmission-cli seeder; `await using` stops it and removes its config dir. */
export interface Transmission extends AsyncDisposable {
  readonly port: number;
  /** `127.0.0.1:PORT` */
  readonly address: string;
  /** Resolved once the data is verified and it listens. */
  readonly ready: Promise<void>;
  readonly exited: Promise<ProcessExit>;
  /** Its config directory (`-g`). */
  readonly configDir: string;
  /** Last lines of its output. */
  readonly tail: string;
  /** Stops it; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts `transmission-cli -g CONFIG -w DIR -p PORT TORRENT` with a settings.json that binds
 * 127.0.0.1 and turns off DHT, LPD, PEX, uTP, port forwarding, speed and ratio limits and
 * encryption preference; waits until it has verified the data and listens.
 *
 * @param options What to seed.
 * @returns The running seeder.
 * @throws {TypeError} For a mode other than `seed`.
 * @throws {Error} When it fails to start (message includes its log).
 * @example Usage
 * ```ts ignore
 * await using seeder = await startTransmission({ mode: "seed", torrentPath, dir: dataParent });
 * // dial seeder.address from the client under test
 * ```
 */
export async function startTransmission(options: TransmissionOptions): Promise<Transmission> {
  if (options.mode !== "seed") {
    throw new TypeError(`Cannot start transmission in mode '${options.mode}': only seed works`);
  }
  const port = options.port ?? await freePort();
  const configDir = await Deno.makeTempDir({ prefix: "transmission_" });
  const settings = {
    "bind-address-ipv4": "127.0.0.1",
    "bind-address-ipv6": "::1",
    "peer-port": port,
    "peer-port-random-on-start": false,
    "dht-enabled": false,
    "lpd-enabled": false,
    "pex-enabled": false,
    "utp-enabled": false,
    "port-forwarding-enabled": false,
    "speed-limit-down-enabled": false,
    "speed-limit-up-enabled": false,
    "alt-speed-enabled": false,
    "ratio-limit-enabled": false,
    "idle-seeding-limit-enabled": false,
    // 0: prefer plaintext, still accept encrypted.
    "encryption": 0,
    // 3 (debug) logs "Verification is done", which tells us it is ready.
    "message-level": 3,
    "download-dir": options.dir,
    "incomplete-dir-enabled": false,
    "rename-partial-files": false,
    "start-added-torrents": true,
    "rpc-enabled": false,
    "blocklist-enabled": false,
    ...options.settings,
  };
  await Deno.writeTextFile(`${configDir}/settings.json`, JSON.stringify(settings, null, 2));

  let verified = false;
  let bound = false;
  const child = new ManagedProcess("transmission-cli", {
    args: ["-g", configDir, "-w", options.dir, "-p", String(port), options.torrentPath],
    label: "transmission seed",
    onLine: (line) => {
      if (options.verbose) console.error(`[transmission] ${line}`);
      if (line.includes("Verification is done")) verified = true;
      if (line.includes(`to port ${port} on 127.0.0.1`)) bound = true;
    },
  });
  const exited = child.exited.then(async (exit) => {
    await Deno.remove(configDir, { recursive: true });
    return exit;
  });
  markHandled(exited);

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      // It sends `stopped` announces on SIGTERM; do not wait long for an absent tracker.
      await child.stop({ graceMs: 1000 });
      await exited;
    })();
    return stopped;
  };

  const ready = (async () => {
    while (!(verified && bound)) {
      if (child.done) throw new Error(`transmission exited before seeding\n${child.tail}`);
      await delay(20);
    }
  })();
  markHandled(ready);
  try {
    await withTimeout(
      ready,
      options.timeoutMs ?? 30_000,
      () => `Timed out waiting for transmission to verify and listen\n${child.tail}`,
    );
  } catch (error) {
    await stop();
    throw new Error("Cannot start transmission seed", { cause: error });
  }

  return {
    port,
    address: `127.0.0.1:${port}`,
    ready: Promise.resolve(),
    exited,
    configDir,
    get tail() {
      return child.tail;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
