/**
 * Peers announced to this DHT node (BEP 5 `announce_peer`), per info hash, with expiry and
 * bounds. Pure state, clock injected.
 *
 * @module
 */
import { formatPeerAddress, type PeerAddress } from "../peer/address.ts";

/** Announced peers expire after 30 minutes unless re-announced. */
export const PEER_TTL_MS = 30 * 60 * 1000;

/** Options of {@linkcode PeerStore}. */
export interface PeerStoreOptions {
  /** Clock in milliseconds (default `Date.now`). */
  now?: () => number;
  /** Lifetime of an announcement (default {@linkcode PEER_TTL_MS}). */
  ttlMs?: number;
  /** Peers kept per info hash; the oldest go first (default 500). */
  maxPeersPerHash?: number;
  /** Info hashes kept; the least recently announced go first (default 5000). */
  maxInfoHashes?: number;
}

/**
 * Stores announced peers by info hash, each for a limited time, within fixed bounds.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { PeerStore } from "./peer_store.ts";
 *
 * let now = 0;
 * const store = new PeerStore({ now: () => now });
 * const infoHash = new Uint8Array(20).fill(1);
 * store.add(infoHash, { host: "10.0.0.1", port: 6881 });
 * assert.deepEqual(store.get(infoHash), [{ host: "10.0.0.1", port: 6881 }]);
 * now += 31 * 60 * 1000;
 * assert.deepEqual(store.get(infoHash), []);
 * ```
 */
export class PeerStore {
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #maxPeers: number;
  readonly #maxHashes: number;
  /** info hash hex -> (ip:port -> { peer, expires }), both in insertion (= age) order. */
  readonly #hashes = new Map<string, Map<string, { peer: PeerAddress; expires: number }>>();

  /**
   * Makes an empty store.
   *
   * @param options Clock, lifetime and bounds.
   */
  constructor(options: PeerStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#ttlMs = options.ttlMs ?? PEER_TTL_MS;
    this.#maxPeers = options.maxPeersPerHash ?? 500;
    this.#maxHashes = options.maxInfoHashes ?? 5000;
  }

  /** Number of info hashes with peers stored. */
  get size(): number {
    return this.#hashes.size;
  }

  /**
   * Stores (or refreshes) a peer for an info hash.
   *
   * @param infoHash The 20-byte info hash.
   * @param peer The peer's address.
   */
  add(infoHash: Uint8Array, peer: PeerAddress): void {
    const key = infoHash.toHex();
    let peers = this.#hashes.get(key);
    if (peers) {
      this.#hashes.delete(key);
    } else {
      peers = new Map();
      if (this.#hashes.size >= this.#maxHashes) this.prune();
      if (this.#hashes.size >= this.#maxHashes) {
        this.#hashes.delete(this.#hashes.keys().next().value!);
      }
    }
    this.#hashes.set(key, peers);
    const address = formatPeerAddress(peer);
    peers.delete(address);
    peers.set(address, {
      peer: { host: peer.host, port: peer.port },
      expires: this.#now() + this.#ttlMs,
    });
    if (peers.size > this.#maxPeers) peers.delete(peers.keys().next().value!);
  }

  /**
   * Lists the live peers of an info hash.
   *
   * @param infoHash The 20-byte info hash.
   * @param options `limit`: how many at most, the most recent first (default all).
   * @returns The peers.
   */
  get(infoHash: Uint8Array, options: { limit?: number } = {}): PeerAddress[] {
    const key = infoHash.toHex();
    const peers = this.#hashes.get(key);
    if (!peers) return [];
    const now = this.#now();
    const out: PeerAddress[] = [];
    for (const [address, record] of peers) {
      if (record.expires <= now) peers.delete(address);
    }
    if (peers.size === 0) {
      this.#hashes.delete(key);
      return out;
    }
    const limit = options.limit ?? Infinity;
    for (const { peer } of [...peers.values()].reverse()) {
      if (out.length >= limit) break;
      out.push({ host: peer.host, port: peer.port });
    }
    return out;
  }

  /** Drops every expired announcement. */
  prune(): void {
    const now = this.#now();
    for (const [key, peers] of this.#hashes) {
      for (const [address, record] of peers) {
        if (record.expires <= now) peers.delete(address);
      }
      if (peers.size === 0) this.#hashes.delete(key);
    }
  }
}
