/**
 * Which peers we upload to (BEP 3 choking), as a pure state machine: the
 * clock and the RNG are injected.
 *
 * @module
 */

/** What the choker needs to know about one connected peer. */
export interface ChokerPeer<K> {
  /** A stable identity for the peer, e.g. its session object. */
  id: K;
  /** The peer is interested in our pieces. */
  interested: boolean;
  /** Bytes per second we receive from the peer. */
  downloadRate: number;
  /** Bytes per second we send to the peer. */
  uploadRate: number;
  /** The peer has sent us nothing for a long time while we wanted data (anti-snubbing). */
  snubbed: boolean;
}

/** Options for {@linkcode Choker}. */
export interface ChokerOptions {
  /** Upload slots, the optimistic one included; defaults to 4. */
  slots?: number;
  /** Regular rechoke period in ms; defaults to 10000. */
  rechokeIntervalMs?: number;
  /** Optimistic unchoke rotation period in ms; defaults to 30000. */
  optimisticIntervalMs?: number;
  /** Clock in ms; defaults to `Date.now`. */
  now?: () => number;
  /** Random source in `[0, 1)`; defaults to `Math.random`. */
  random?: () => number;
  /**
   * How slots are given while seeding: `"round-robin"` (the default) passes
   * them on every rechoke to the interested peers that waited longest since
   * their last turn, without an optimistic slot (every peer gets a turn
   * anyway); `"fastest"` gives them to the peers we upload to fastest.
   */
  seedChoking?: "round-robin" | "fastest";
}

/**
 * Decides which peers to unchoke (BEP 3 tit-for-tat): every 10 s the
 * interested peers that give us the most (by download rate while we
 * download, by upload rate while we seed) take the regular slots, and one
 * optimistic slot rotates to a random interested peer every 30 s so new
 * peers get a chance. Peers that snub us lose their regular slot while we
 * download. While seeding, slots go round-robin by default (each rechoke
 * they pass to the peers that waited longest), which spreads different
 * pieces to different peers so that they can trade among themselves.
 * Between rechokes, free slots are filled at once, so a new interested
 * peer does not wait 10 s.
 *
 * @example Usage
 * ```ts
 * import { Choker } from "./choker.ts";
 * import assert from "node:assert/strict";
 *
 * const choker = new Choker({ slots: 2, now: () => 0, random: () => 0 });
 * const peer = (id: string, downloadRate: number) => ({
 *   id, interested: true, downloadRate, uploadRate: 0, snubbed: false,
 * });
 * const unchoked = choker.update([peer("a", 10), peer("b", 30), peer("c", 20)], {
 *   seeding: false,
 * });
 * // One regular slot for the fastest peer, one optimistic slot for another.
 * assert.equal(unchoked.size, 2);
 * assert.ok(unchoked.has("b"));
 * ```
 */
export class Choker<K> {
  readonly #slots: number;
  readonly #rechokeIntervalMs: number;
  readonly #optimisticIntervalMs: number;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #roundRobin: boolean;
  /** When each peer last held a regular slot, for round-robin seeding. */
  #servedAt = new Map<K, number>();
  #regular = new Set<K>();
  #optimistic: K | undefined;
  #lastRechoke = -Infinity;
  #lastOptimistic = -Infinity;

  /**
   * Creates a choker.
   *
   * @param options Slots, periods, clock and RNG.
   * @throws {RangeError} If `slots` is not a positive integer.
   */
  constructor(options: ChokerOptions = {}) {
    this.#slots = options.slots ?? 4;
    if (!Number.isSafeInteger(this.#slots) || this.#slots < 1) {
      throw new RangeError(
        `Cannot create choker: slots "${this.#slots}" is not a positive integer`,
      );
    }
    this.#rechokeIntervalMs = options.rechokeIntervalMs ?? 10_000;
    this.#optimisticIntervalMs = options.optimisticIntervalMs ?? 30_000;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    const seedChoking = options.seedChoking ?? "round-robin";
    if (seedChoking !== "round-robin" && seedChoking !== "fastest") {
      throw new RangeError(`Cannot create choker: unknown seedChoking "${seedChoking}"`);
    }
    this.#roundRobin = seedChoking === "round-robin";
  }

  /** The peer holding the optimistic slot, if any. */
  get optimistic(): K | undefined {
    return this.#optimistic;
  }

  /**
   * Computes the set of peers to unchoke now. Call it on a timer and
   * whenever a peer connects, leaves, or changes its interest; full
   * re-ranking only happens once per rechoke period.
   *
   * @param peers Every connected peer.
   * @param options `seeding`: rank by upload rate instead of download rate.
   * @returns The peers to unchoke; every other peer should be choked.
   */
  update(peers: readonly ChokerPeer<K>[], options: { seeding: boolean }): Set<K> {
    const now = this.#now();
    const byId = new Map<K, ChokerPeer<K>>();
    for (const peer of peers) byId.set(peer.id, peer);
    const rate = options.seeding
      ? (p: ChokerPeer<K>) => p.uploadRate
      : (p: ChokerPeer<K>) => p.downloadRate;
    // Snubbing peers rank last while we download, so they only get slots nobody else wants.
    const snubbed = (p: ChokerPeer<K>) => !options.seeding && p.snubbed ? 1 : 0;
    const roundRobin = options.seeding && this.#roundRobin;
    const servedAt = (p: ChokerPeer<K>) => this.#servedAt.get(p.id) ?? -Infinity;
    const ranked = peers.filter((p) => p.interested).sort((a, b) =>
      roundRobin
        ? servedAt(a) - servedAt(b) || rate(b) - rate(a)
        : snubbed(a) - snubbed(b) || rate(b) - rate(a)
    );

    // Keep one slot optimistic only when there are more candidates than slots
    // (and never in round-robin, where every peer gets its turn anyway).
    const regularSlots = ranked.length > this.#slots && !roundRobin ? this.#slots - 1 : this.#slots;

    if (now - this.#lastRechoke >= this.#rechokeIntervalMs) {
      this.#lastRechoke = now;
      this.#regular = new Set(ranked.slice(0, regularSlots).map((p) => p.id));
    } else {
      for (const id of this.#regular) {
        const peer = byId.get(id);
        if (!peer?.interested) this.#regular.delete(id);
      }
      if (this.#regular.size > regularSlots) {
        const keep = ranked.filter((p) => this.#regular.has(p.id)).slice(0, regularSlots);
        this.#regular = new Set(keep.map((p) => p.id));
      }
      for (const peer of ranked) {
        if (this.#regular.size >= regularSlots) break;
        this.#regular.add(peer.id);
      }
    }

    const current = this.#optimistic === undefined ? undefined : byId.get(this.#optimistic);
    const rotate = now - this.#lastOptimistic >= this.#optimisticIntervalMs;
    if (
      rotate || !current || !current.interested || this.#regular.has(current.id)
    ) {
      const candidates = peers.filter((p) => p.interested && !this.#regular.has(p.id));
      if (regularSlots < this.#slots && candidates.length > 0) {
        const pick = candidates[Math.floor(this.#random() * candidates.length)]!;
        if (pick.id !== this.#optimistic || rotate) this.#lastOptimistic = now;
        this.#optimistic = pick.id;
      } else {
        this.#optimistic = undefined;
      }
    }
    const served = new Map<K, number>();
    for (const [id, at] of this.#servedAt) if (byId.has(id)) served.set(id, at);
    for (const id of this.#regular) served.set(id, now);
    this.#servedAt = served;
    const unchoked = new Set(this.#regular);
    if (this.#optimistic !== undefined) unchoked.add(this.#optimistic);
    return unchoked;
  }
}
