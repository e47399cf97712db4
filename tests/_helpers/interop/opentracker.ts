/**
 * Runs Debian's opentracker (a whitelist HTTP + UDP tracker) on 127.0.0.1 for a test.
 *
 * @module
 */

import { freePort, waitForTcp } from "./free_port.ts";
import { ManagedProcess } from "./_process.ts";

/** Options for {@linkcode startOpentracker}. */
export interface OpentrackerOptions {
  /** 40-hex info hashes to whitelist from the start. */
  infoHashes?: string[];
  /** Port for both HTTP (TCP) and UDP; default a free one. */
  port?: number;
  /** Time allowed to start (default 10 000 ms). */
  timeoutMs?: number;
}

/** A running opentracker; `await using` stops it and removes its directory. */
export interface Opentracker extends AsyncDisposable {
  /** The TCP and UDP port. */
  readonly port: number;
  /** `http://127.0.0.1:PORT/announce` */
  readonly httpUrl: string;
  /** `udp://127.0.0.1:PORT/announce` */
  readonly udpUrl: string;
  /** Working directory (holds the `whitelist` file). */
  readonly dir: string;
  /** The whitelisted info hashes (lowercase hex). */
  readonly infoHashes: readonly string[];
  /** Adds info hashes to the whitelist, reloads it (SIGHUP) and waits until it is in effect. */
  whitelist(infoHashes: string[]): Promise<void>;
  /** Stops the tracker and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

const HEX40 = /^[0-9a-f]{40}$/;

function checkHashes(hexes: string[]): string[] {
  return hexes.map((hex) => {
    const lower = hex.toLowerCase();
    if (!HEX40.test(lower)) throw new TypeError(`Cannot whitelist info hash '${hex}': not 40 hex`);
    return lower;
  });
}

function percentEncode(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => "%" + b.toString(16).padStart(2, "0")).join("");
}

// A probe peer that announces and immediately leaves, so it never shows up in peer lists.
const PROBE_PEER_ID = percentEncode(new TextEncoder().encode("-HARNESS-PROBE-00000"));

async function authorized(port: number, hex: string): Promise<boolean> {
  const base = `http://127.0.0.1:${port}/announce?info_hash=${
    percentEncode(Uint8Array.fromHex(hex))
  }&peer_id=${PROBE_PEER_ID}&port=1&uploaded=0&downloaded=0&left=0&compact=1&numwant=0`;
  const body = await (await fetch(base)).text();
  if (body.includes("failure reason")) return false;
  await (await fetch(base + "&event=stopped")).body?.cancel();
  return true;
}

async function waitAuthorized(port: number, hexes: string[], isDead: () => boolean) {
  const deadline = Date.now() + 5000;
  for (const hex of hexes) {
    while (!(await authorized(port, hex))) {
      if (isDead()) throw new Error(`Cannot whitelist '${hex}': opentracker exited`);
      if (Date.now() > deadline) throw new Error(`Cannot whitelist '${hex}': reload timed out`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/**
 * Starts `opentracker -i 127.0.0.1 -p PORT -P PORT -d DIR -w whitelist` in a fresh temporary
 * directory (as root it chroots there, so the whitelist path is relative) and waits until it
 * accepts connections and the given hashes are authorized.
 *
 * @param options Info hashes, port, timeout.
 * @returns The running tracker.
 * @throws {TypeError} For an info hash that is not 40 hex digits.
 * @throws {Error} When it does not start (after 3 ports tried).
 * @example Usage
 * ```ts ignore
 * await using tracker = await startOpentracker({ infoHashes: [torrentHex] });
 * console.log(tracker.httpUrl, tracker.udpUrl);
 * ```
 */
export async function startOpentracker(options: OpentrackerOptions = {}): Promise<Opentracker> {
  const hashes = checkHashes(options.infoHashes ?? []);
  const dir = await Deno.makeTempDir({ prefix: "opentracker_" });
  // Started as root it drops to `nobody` after chroot: it must still read the whitelist.
  await Deno.chmod(dir, 0o755);
  const whitelistPath = `${dir}/whitelist`;
  await Deno.writeTextFile(whitelistPath, hashes.map((h) => h + "\n").join(""), { mode: 0o644 });
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = options.port ?? await freePort();
    const child = new ManagedProcess("opentracker", {
      args: [
        "-i",
        "127.0.0.1",
        "-p",
        String(port),
        "-P",
        String(port),
        "-d",
        dir,
        "-w",
        "whitelist",
      ],
      cwd: dir,
      label: `opentracker on port ${port}`,
    });
    try {
      await waitForTcp(port, {
        timeoutMs: options.timeoutMs ?? 10_000,
        isDead: () => child.done,
        what: child.label,
      });
      await waitAuthorized(port, hashes, () => child.done);
    } catch (error) {
      await child.stop();
      lastError = new Error(`${(error as Error).message}\n${child.tail}`, { cause: error });
      if (options.port !== undefined) break;
      continue;
    }
    return makeHandle(child, port, dir, hashes);
  }
  await Deno.remove(dir, { recursive: true });
  throw new Error("Cannot start opentracker", { cause: lastError });
}

function makeHandle(
  child: ManagedProcess,
  port: number,
  dir: string,
  hashes: string[],
): Opentracker {
  const all = [...hashes];
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      await child.stop();
      await Deno.remove(dir, { recursive: true });
    })();
    return stopped;
  };
  return {
    port,
    httpUrl: `http://127.0.0.1:${port}/announce`,
    udpUrl: `udp://127.0.0.1:${port}/announce`,
    dir,
    get infoHashes() {
      return all;
    },
    async whitelist(infoHashes: string[]) {
      const added = checkHashes(infoHashes);
      all.push(...added);
      await Deno.writeTextFile(`${dir}/whitelist`, all.map((h) => h + "\n").join(""));
      child.signal("SIGHUP");
      await waitAuthorized(port, added, () => child.done);
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
