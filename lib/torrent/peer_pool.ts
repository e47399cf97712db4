/**
 * The set of peer addresses a torrent knows about and what it is doing with
 * each, as a pure state machine: no sockets, the clock is injected.
 *
 * @module
 */

import { formatPeerAddress, type PeerAddress } from "../peer/address.ts";

/** What the pool is doing with one address. */
export type PeerAddressState = "idle" | "connecting" | "connected" | "banned";

/** Options for {@linkcode PeerPool}. */
export interface PeerPoolOptions {
  /** Most connections (dialling plus connected); defaults to 50. */
  maxConnections?: number;
  /** First retry delay after a failure, in ms; doubles per failure. Defaults to 5000. */
  retryBaseMs?: number;
  /** Largest retry delay, in ms; defaults to 300000 (5 minutes). */
  retryMaxMs?: number;
  /** An address that failed this many times in a row is forgotten; defaults to 8. */
  maxFailures?: number;
  /** Clock in ms; defaults to `Date.now`. */
  now?: () => number;
}

/** Counts of addresses per state, from {@linkcode PeerPool.counts}. */
export interface PeerPoolCounts {
  /** Every address the pool holds, banned ones included. */
  known: number;
  /** Addresses being dialled. */
  connecting: number;
  /** Live connections, incoming ones included. */
  connected: number;
  /** Banned addresses. */
  banned: number;
}

interface Entry {
  address: PeerAddress;
  state: PeerAddressState;
  /** Consecutive failures. */
  failures: number;
  /** Not dialled before this time. */
  retryAt: number;
  /** Learned from an incoming connection: its port is ephemeral, never dial it. */
  incoming: boolean;
}

/**
 * Tracks known peer addresses (deduplicated), which are being dialled,
 * connected, failed (with exponential retry backoff) or banned, and decides
 * which address to dial next within a connection limit.
 *
 * @example Usage
 * ```ts
 * import { PeerPool } from "./peer_pool.ts";
 * import assert from "node:assert/strict";
 *
 * let now = 0;
 * const pool = new PeerPool({ maxConnections: 1, retryBaseMs: 1000, now: () => now });
 * assert.equal(pool.add([{ host: "127.0.0.1", port: 6881 }, { host: "127.0.0.1", port: 6881 }]), 1);
 * const address = pool.nextToDial();
 * assert.deepEqual(address, { host: "127.0.0.1", port: 6881 });
 * pool.failed(address!);
 * assert.equal(pool.nextToDial(), undefined); // backing off
 * now = 1000;
 * assert.deepEqual(pool.nextToDial(), address);
 * ```
 */
export class PeerPool {
  readonly #entries = new Map<string, Entry>();
  readonly #maxConnections: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #maxFailures: number;
  readonly #now: () => number;
  #connecting = 0;
  #connected = 0;

  /**
   * Creates an empty pool.
   *
   * @param options Limits, retry policy and clock.
   * @throws {RangeError} If a limit is not a positive integer.
   */
  constructor(options: PeerPoolOptions = {}) {
    this.#maxConnections = options.maxConnections ?? 50;
    this.#retryBaseMs = options.retryBaseMs ?? 5_000;
    this.#retryMaxMs = options.retryMaxMs ?? 300_000;
    this.#maxFailures = options.maxFailures ?? 8;
    this.#now = options.now ?? Date.now;
    for (
      const [name, value] of [
        ["maxConnections", this.#maxConnections],
        ["maxFailures", this.#maxFailures],
      ] as const
    ) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(
          `Cannot create peer pool: ${name} "${value}" is not a positive integer`,
        );
      }
    }
  }

  /** Most connections allowed. */
  get maxConnections(): number {
    return this.#maxConnections;
  }

  /**
   * Adds addresses to dial later; duplicates and banned addresses are ignored.
   *
   * @param addresses Addresses from a tracker, the DHT or the user.
   * @returns How many were new.
   */
  add(addresses: Iterable<PeerAddress>): number {
    let added = 0;
    for (const address of addresses) {
      const key = formatPeerAddress(address);
      const entry = this.#entries.get(key);
      if (entry) {
        // Someone now vouches for it as a listening address.
        if (entry.incoming && entry.state !== "banned") entry.incoming = false;
        continue;
      }
      this.#entries.set(key, {
        address: { host: address.host, port: address.port },
        state: "idle",
        failures: 0,
        retryAt: 0,
        incoming: false,
      });
      added++;
    }
    return added;
  }

  /**
   * Chooses an idle address whose retry time has come and marks it
   * `connecting`, if the connection limit allows.
   *
   * @returns The address to dial, or `undefined` if none is due.
   */
  nextToDial(): PeerAddress | undefined {
    if (this.#connecting + this.#connected >= this.#maxConnections) return undefined;
    const now = this.#now();
    let best: Entry | undefined;
    for (const entry of this.#entries.values()) {
      if (entry.state !== "idle" || entry.incoming || entry.retryAt > now) continue;
      // Fewest failures first, so fresh addresses go before flaky ones.
      if (!best || entry.failures < best.failures) best = entry;
      if (best.failures === 0) break;
    }
    if (!best) return undefined;
    best.state = "connecting";
    this.#connecting++;
    return best.address;
  }

  /**
   * Returns when the next idle address becomes due, to schedule a timer.
   *
   * @returns A time on the pool's clock, or `undefined` if nothing is waiting.
   */
  nextRetryAt(): number | undefined {
    let at: number | undefined;
    for (const entry of this.#entries.values()) {
      if (entry.state !== "idle" || entry.incoming) continue;
      if (at === undefined || entry.retryAt < at) at = entry.retryAt;
    }
    return at;
  }

  /**
   * Records that a dialled address completed its handshake.
   *
   * @param address The address from {@linkcode PeerPool.nextToDial}.
   */
  connected(address: PeerAddress): void {
    const entry = this.#entries.get(formatPeerAddress(address));
    if (!entry || entry.state !== "connecting") return;
    entry.state = "connected";
    entry.failures = 0;
    this.#connecting--;
    this.#connected++;
  }

  /**
   * Admits an incoming connection, if it is not banned, not already connected
   * and the limit allows.
   *
   * @param address The remote address of the incoming connection.
   * @returns `true` if the connection may stay.
   */
  accept(address: PeerAddress): boolean {
    if (this.#connecting + this.#connected >= this.#maxConnections) return false;
    const key = formatPeerAddress(address);
    const entry = this.#entries.get(key);
    if (entry) {
      if (entry.state !== "idle") return false;
      entry.state = "connected";
      this.#connected++;
      return true;
    }
    this.#entries.set(key, {
      address: { host: address.host, port: address.port },
      state: "connected",
      failures: 0,
      retryAt: 0,
      incoming: true,
    });
    this.#connected++;
    return true;
  }

  /**
   * Records that dialling failed or a connection ended badly: the address is
   * retried after an exponential backoff, and forgotten after too many
   * failures in a row.
   *
   * @param address The address.
   */
  failed(address: PeerAddress): void {
    const key = formatPeerAddress(address);
    const entry = this.#entries.get(key);
    if (!entry || entry.state === "banned") return;
    this.#leave(entry);
    entry.failures++;
    if (entry.incoming || entry.failures >= this.#maxFailures) {
      this.#entries.delete(key);
      return;
    }
    const delay = Math.min(this.#retryBaseMs * 2 ** (entry.failures - 1), this.#retryMaxMs);
    entry.retryAt = this.#now() + delay;
  }

  /**
   * Records that a connection ended without fault (e.g. both sides are
   * seeds): the address may be dialled again after the base delay.
   *
   * @param address The address.
   */
  disconnected(address: PeerAddress): void {
    const key = formatPeerAddress(address);
    const entry = this.#entries.get(key);
    if (!entry || entry.state === "banned") return;
    this.#leave(entry);
    if (entry.incoming) {
      this.#entries.delete(key);
      return;
    }
    entry.retryAt = this.#now() + this.#retryBaseMs;
  }

  /**
   * Bans an address for good: it is never dialled or accepted again.
   *
   * @param address The address.
   */
  ban(address: PeerAddress): void {
    const key = formatPeerAddress(address);
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = {
        address: { host: address.host, port: address.port },
        state: "idle",
        failures: 0,
        retryAt: 0,
        incoming: false,
      };
      this.#entries.set(key, entry);
    }
    this.#leave(entry);
    entry.state = "banned";
  }

  /**
   * Tells whether an address is banned.
   *
   * @param address The address.
   * @returns `true` if {@linkcode PeerPool.ban} was called for it.
   */
  isBanned(address: PeerAddress): boolean {
    return this.#entries.get(formatPeerAddress(address))?.state === "banned";
  }

  /**
   * Returns the state of one address.
   *
   * @param address The address.
   * @returns Its state, or `undefined` if unknown.
   */
  stateOf(address: PeerAddress): PeerAddressState | undefined {
    return this.#entries.get(formatPeerAddress(address))?.state;
  }

  /**
   * Counts addresses per state.
   *
   * @returns The counts.
   */
  counts(): PeerPoolCounts {
    let banned = 0;
    for (const entry of this.#entries.values()) if (entry.state === "banned") banned++;
    return {
      known: this.#entries.size,
      connecting: this.#connecting,
      connected: this.#connected,
      banned,
    };
  }

  #leave(entry: Entry): void {
    if (entry.state === "connecting") this.#connecting--;
    else if (entry.state === "connected") this.#connected--;
    entry.state = "idle";
  }
}
