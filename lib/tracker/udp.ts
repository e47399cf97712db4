import dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import {
  encodeAnnounceRequest,
  encodeConnectRequest,
  parseConnectResponse,
  parseUdpAnnounceResponse,
  readHeader,
} from "./_udp_codec.ts";
import {
  type AnnounceRequest,
  type AnnounceResponse,
  TrackerError,
  TrackerFailureError,
} from "./announce.ts";
import { checkRequest } from "./http_codec.ts";

/** How long a connection id stays usable by a client (BEP 15: one minute). */
const CONNECTION_ID_TTL_MS = 60_000;

/**
 * Remembers UDP tracker connection ids (BEP 15) for one minute, keyed by `address:port`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConnectionIdCache } from "./udp.ts";
 *
 * let now = 0;
 * const cache = new ConnectionIdCache({ now: () => now });
 * cache.set("127.0.0.1:6969", 42n);
 * assert.equal(cache.get("127.0.0.1:6969"), 42n);
 * now = 60_000;
 * assert.equal(cache.get("127.0.0.1:6969"), undefined);
 * ```
 */
export class ConnectionIdCache {
  #entries = new Map<string, { id: bigint; expires: number }>();
  #now: () => number;

  /**
   * Makes an empty cache.
   *
   * @param options `now`: the clock in milliseconds (default `Date.now`).
   */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /**
   * Returns the connection id for a tracker if it is still fresh.
   *
   * @param key The tracker's `address:port`.
   * @returns The id, or undefined.
   */
  get(key: string): bigint | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (this.#now() >= entry.expires) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.id;
  }

  /**
   * Stores a fresh connection id.
   *
   * @param key The tracker's `address:port`.
   * @param id The connection id.
   */
  set(key: string, id: bigint): void {
    this.#entries.set(key, { id, expires: this.#now() + CONNECTION_ID_TTL_MS });
  }

  /**
   * Forgets a tracker's connection id.
   *
   * @param key The tracker's `address:port`.
   */
  delete(key: string): void {
    this.#entries.delete(key);
  }
}

const defaultCache = new ConnectionIdCache();

/** Options for {@linkcode announceUdp}. */
export interface AnnounceUdpOptions {
  /** Aborts the announce; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Overall limit in milliseconds across all retries (default: only the retry schedule). */
  timeoutMs?: number;
  /** The first wait for a reply; attempt n waits `retryBaseMs * 2^n` (default 15000, BEP 15). */
  retryBaseMs?: number;
  /** How many requests to send before giving up (default 8). */
  maxAttempts?: number;
  /** Where connection ids are kept (default: one cache shared by the module). */
  connectionCache?: ConnectionIdCache;
}

/**
 * Announces to a UDP tracker (BEP 15): connect (reusing a connection id younger than a minute),
 * then announce, retransmitting after `retryBaseMs * 2^n` without a reply. The socket is closed
 * whatever happens.
 *
 * @param url The tracker URL, `udp://host:port[/path]`.
 * @param request What to announce.
 * @param options Timeouts, retry schedule, abort signal, connection id cache.
 * @returns The tracker's response.
 * @throws {TypeError} When the URL is not a `udp://` URL with a port.
 * @throws {TrackerFailureError} When the tracker answers with an error (action 3).
 * @throws {TrackerError} On timeout, bad packets or an unresolvable host.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { announceUdp } from "./udp.ts";
 * import { TrackerError } from "./announce.ts";
 *
 * // Nobody answers on this port: two quick attempts, then a TrackerError.
 * await assert.rejects(
 *   announceUdp("udp://127.0.0.1:9/announce", {
 *     infoHash: new Uint8Array(20), peerId: new Uint8Array(20),
 *     port: 6881, uploaded: 0, downloaded: 0, left: 0,
 *   }, { retryBaseMs: 20, maxAttempts: 2 }),
 *   TrackerError,
 * );
 * ```
 */
export async function announceUdp(
  url: string,
  request: AnnounceRequest,
  options: AnnounceUdpOptions = {},
): Promise<AnnounceResponse> {
  checkRequest(request);
  const { hostname, port } = parseUdpUrl(url);
  const retryBaseMs = options.retryBaseMs ?? 15_000;
  const maxAttempts = options.maxAttempts ?? 8;
  const cache = options.connectionCache ?? defaultCache;
  const signals = [options.signal, timeoutSignal(options.timeoutMs)].filter((s) => s !== undefined);
  const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
  const fail = (detail: string, cause?: unknown) =>
    new TrackerError(
      `Cannot announce to "${url}": ${detail}`,
      cause === undefined ? undefined : { cause },
    );
  const rethrow = (cause: unknown): never => {
    if (options.signal?.aborted) throw options.signal.reason;
    if (signal?.aborted) throw fail(`timed out after ${options.timeoutMs} ms`, cause);
    if (cause instanceof TrackerError && !cause.message.startsWith("Cannot announce to")) {
      throw fail(cause.message, cause);
    }
    throw cause;
  };

  let address: { address: string; family: number };
  try {
    signal?.throwIfAborted();
    address = await lookup(hostname);
  } catch (cause) {
    if (signal?.aborted) return rethrow(cause);
    throw fail(`cannot resolve "${hostname}": ${(cause as Error).message}`, cause);
  }
  const ipv6 = address.family === 6;
  const key = `${ipv6 ? `[${address.address}]` : address.address}:${port}`;
  const socket = new UdpExchange(ipv6 ? "udp6" : "udp4", address.address, port);
  try {
    await socket.open();
    let attempt = 0;
    const nextWait = () => {
      if (attempt >= maxAttempts) {
        throw fail(`no response after ${maxAttempts} attempt${maxAttempts === 1 ? "" : "s"}`);
      }
      return retryBaseMs * 2 ** Math.min(attempt++, 8);
    };
    while (true) {
      let connectionId = cache.get(key);
      if (connectionId === undefined) {
        const transactionId = randomTransactionId();
        const reply = await socket.request(
          encodeConnectRequest(transactionId),
          transactionId,
          nextWait(),
          signal,
        );
        if (reply === undefined) continue;
        connectionId = parseConnectResponse(reply, transactionId);
        cache.set(key, connectionId);
      }
      const transactionId = randomTransactionId();
      const reply = await socket.request(
        encodeAnnounceRequest(connectionId, transactionId, request),
        transactionId,
        nextWait(),
        signal,
      );
      if (reply === undefined) continue;
      try {
        return parseUdpAnnounceResponse(reply, transactionId, { ipv6 });
      } catch (error) {
        // Most error replies to an announce mean a stale connection id: forget it.
        if (error instanceof TrackerFailureError) cache.delete(key);
        throw error;
      }
    }
  } catch (cause) {
    return rethrow(cause);
  } finally {
    await socket.close();
  }
}

function timeoutSignal(timeoutMs: number | undefined): AbortSignal | undefined {
  return timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
}

function parseUdpUrl(url: string): { hostname: string; port: number } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new TypeError(`Cannot parse tracker URL "${url}"`, { cause });
  }
  const port = Number(parsed.port);
  if (parsed.protocol !== "udp:" || !parsed.hostname || !(port >= 1 && port <= 65535)) {
    throw new TypeError(`Cannot parse tracker URL "${url}": expected udp://host:port`);
  }
  return { hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"), port };
}

function randomTransactionId(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}

/** One UDP socket talking to one tracker: send a packet, wait for the reply to it. */
class UdpExchange {
  #socket: dgram.Socket;
  #host: string;
  #port: number;
  #waiter: ((packet: Uint8Array) => void) | undefined;
  #error: Error | undefined;
  #onError: ((error: Error) => void) | undefined;
  #bound = false;

  constructor(type: "udp4" | "udp6", host: string, port: number) {
    this.#host = host;
    this.#port = port;
    this.#socket = dgram.createSocket(type);
    this.#socket.on("message", (message: Uint8Array) => this.#waiter?.(message));
    this.#socket.on("error", (error: Error) => {
      this.#error = error;
      this.#onError?.(error);
    });
  }

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.once("error", reject);
      this.#socket.bind(0, () => {
        this.#bound = true;
        this.#socket.off("error", reject);
        resolve();
      });
    });
  }

  /** Sends a packet and resolves with the first reply carrying its transaction id, or undefined on timeout. */
  request(
    packet: Uint8Array,
    transactionId: number,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array | undefined> {
    return new Promise((resolve, reject) => {
      if (this.#error) return reject(this.#error);
      if (signal?.aborted) return reject(signal.reason);
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#waiter = undefined;
        this.#onError = undefined;
      };
      const onAbort = () => {
        done();
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        done();
        resolve(undefined);
      }, waitMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#onError = (error) => {
        done();
        reject(error);
      };
      // Replies to earlier (timed-out) attempts carry other transaction ids: ignore them.
      this.#waiter = (message) => {
        if (readHeader(message)?.transactionId !== transactionId >>> 0) return;
        done();
        resolve(message);
      };
      this.#socket.send(packet, this.#port, this.#host, (error) => {
        if (error) this.#onError?.(error);
      });
    });
  }

  close(): Promise<void> {
    // A socket whose bind failed was never started, and closing it would throw.
    if (!this.#bound) return Promise.resolve();
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}
