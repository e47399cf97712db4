/**
 * Keeping a torrent announced to its trackers (BEP 3, BEP 12, BEP 15) for a whole session.
 *
 * @module
 */

import type { PeerAddress } from "../peer/address.ts";
import {
  announce,
  type AnnounceOptions,
  type AnnounceRequest,
  type AnnounceResponse,
  TrackerError,
  TrackerTiers,
} from "../tracker/mod.ts";

/** What the announcer reports to trackers; read fresh for every announce. */
export interface AnnouncerStats {
  /** Bytes uploaded since the session started. */
  uploaded: number;
  /** Bytes downloaded since the session started. */
  downloaded: number;
  /** Bytes still missing. */
  left: number;
}

/** The timer functions the announcer uses; injectable for tests (a fake clock). */
export interface AnnouncerTimers {
  /** Calls `callback` once after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancels a pending `setTimeout`, given its handle. */
  clearTimeout(handle: unknown): void;
}

/** Options for {@linkcode Announcer}. */
export interface AnnouncerOptions {
  /** Tracker tiers (BEP 12), e.g. `Metainfo.announceList`. */
  announceList: readonly (readonly string[])[];
  /** The torrent's 20-byte info hash. */
  infoHash: Uint8Array;
  /** This client's 20-byte peer id. */
  peerId: Uint8Array;
  /** The TCP port this client accepts peers on. */
  port: number;
  /** Current transfer totals, read at every announce. */
  stats: () => AnnouncerStats;
  /** Receives the peers of each successful announce, with the tracker URL as `source`. */
  onPeers: (peers: PeerAddress[], source: string) => void;
  /** Receives every failed announce (the tier then fails over or retries later). */
  onError?: (url: string, error: Error) => void;
  /** Peers to ask for per announce (default 50). */
  numWant?: number;
  /** The `key` sent to trackers (default: random per announcer, i.e. per session). */
  key?: number;
  /** Random numbers in [0, 1) for the BEP 12 shuffle inside each tier (default `Math.random`). */
  random?: () => number;
  /** Clock in milliseconds (default `Date.now`). */
  now?: () => number;
  /** Timer functions (default the global ones). */
  timers?: AnnouncerTimers;
  /** Aborting stops everything at once, in-flight announces included, without `stopped`. */
  signal?: AbortSignal;
  /** Floor for the re-announce interval and for early announces, in ms (default 30000). */
  minAnnounceIntervalMs?: number;
  /** First retry delay after a tier failed completely, doubling per failure (default 15000). */
  retryBaseMs?: number;
  /** Longest retry delay (default 30 minutes). */
  retryMaxMs?: number;
  /** Limit for one announce to one tracker, in ms (default 30000). */
  announceTimeoutMs?: number;
  /**
   * Limit for the whole of {@linkcode Announcer.stop}, in ms (default 2000): a dead tracker must
   * not hold up a client's exit for long (libtorrent waits 1 s).
   */
  stopTimeoutMs?: number;
  /** Passed through to the tracker client (UDP retry schedule, connection id cache, ...). */
  trackerOptions?: Omit<AnnounceOptions, "signal" | "timeoutMs">;
}

/** The state of one tracker, for status output. Times are from the `now` clock, in ms. */
export interface TrackerStatus {
  /** The announce URL. */
  url: string;
  /** Index of its tier in the announce list. */
  tier: number;
  /** `idle`: not contacted yet; `announcing`: request in flight; `ok`/`error`: last outcome. */
  state: "idle" | "announcing" | "ok" | "error";
  /** When the last announce to it was sent. */
  lastAnnounceAt?: number;
  /** When it last answered successfully. */
  lastSuccessAt?: number;
  /** When its tier announces next, if this tracker is the one that will be tried first. */
  nextAnnounceAt?: number;
  /** The message of its last error, until it answers again. */
  lastError?: string;
  /** Consecutive failed announces. */
  failures: number;
  /** Seeders (`complete`) it last reported. */
  seeders?: number;
  /** Leechers (`incomplete`) it last reported. */
  leechers?: number;
  /** Number of peers in its last answer. */
  peersReceived?: number;
  /** Its `interval`, in seconds. */
  interval?: number;
  /** Its `min interval`, in seconds. */
  minInterval?: number;
  /** Its last `warning message`. */
  warning?: string;
}

const DEFAULT_NUM_WANT = 50;
const DEFAULT_MIN_INTERVAL_MS = 30_000;
const DEFAULT_RETRY_BASE_MS = 15_000;
const DEFAULT_RETRY_MAX_MS = 30 * 60_000;
const DEFAULT_ANNOUNCE_TIMEOUT_MS = 30_000;
const DEFAULT_STOP_TIMEOUT_MS = 2_000;
/** Longest wait honoured (a day); also keeps timers below the 2^31 ms overflow. */
const MAX_INTERVAL_MS = 24 * 3600_000;

interface TrackerState {
  url: string;
  tier: number;
  /** The tracker acknowledged a `started` from this session. */
  started: boolean;
  trackerId?: string;
  status: TrackerStatus;
}

interface TierState {
  index: number;
  order: TrackerTiers;
  timer: unknown;
  nextAt: number | undefined;
  running: { controller: AbortController; promise: Promise<void> } | undefined;
  /** The tracker being asked right now, and whether it is being sent `started`. */
  asking: { url: string; event: AnnounceRequest["event"] } | undefined;
  /** The tracker that answered last: `stopped` goes there. */
  lastUrl: string | undefined;
  /** A tracker whose `started` was in flight when the session stopped. */
  interruptedStartUrl: string | undefined;
  lastSuccessAt: number | undefined;
  minIntervalMs: number;
  failures: number;
  completedPending: boolean;
}

/**
 * Announces a torrent to its trackers for a session: `started`, periodic re-announces at the
 * tracker's `interval`, `completed`, and `stopped`.
 *
 * Tiers: every tier of the announce list is worked independently and in parallel, each with
 * its own timer. Inside a tier the BEP 12 rules hold: the URLs are shuffled once, tried in
 * order until one answers (failover), and the one that answered moves to the front
 * (promotion). BEP 12 itself asks for one tier at a time, falling back to the next tier only
 * when a whole tier fails; like most clients (libtorrent's `announce_to_all_tiers`, qBittorrent,
 * Transmission) we announce to all tiers, because tiers are usually unrelated trackers and each
 * one brings different peers, and a dead first tier then costs nothing.
 *
 * Timing: the next regular announce comes after the tracker's `interval`, never sooner than its
 * `min interval` nor than `minAnnounceIntervalMs`. A tier whose trackers all failed retries
 * after `retryBaseMs`, doubling up to `retryMaxMs`. {@linkcode Announcer.requestMorePeers}
 * brings the next announce forward as far as `min interval` allows.
 *
 * Every request carries a `key` random per session, `started` goes to each tracker once, and
 * `completed` once per tier. No promise is left unhandled and {@linkcode Announcer.stop} clears
 * every timer.
 *
 * @example Usage
 * ```ts
 * import { Announcer } from "./announcer.ts";
 * import assert from "node:assert/strict";
 *
 * const body = new Uint8Array([
 *   ...new TextEncoder().encode("d8:intervali1800e5:peers6:"),
 *   127, 0, 0, 1, 0x1a, 0xe1, // 127.0.0.1:6881
 *   0x65, // "e"
 * ]);
 * const events: string[] = [];
 * await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
 *   events.push(new URL(req.url).searchParams.get("event") ?? "");
 *   return new Response(body);
 * });
 * const found = Promise.withResolvers<string>();
 * const announcer = new Announcer({
 *   announceList: [[`http://127.0.0.1:${server.addr.port}/announce`]],
 *   infoHash: new Uint8Array(20),
 *   peerId: new Uint8Array(20),
 *   port: 6881,
 *   stats: () => ({ uploaded: 0, downloaded: 0, left: 100 }),
 *   onPeers: (peers) => found.resolve(`${peers[0]!.host}:${peers[0]!.port}`),
 * });
 * announcer.start();
 * assert.equal(await found.promise, "127.0.0.1:6881");
 * await announcer.stop();
 * assert.deepEqual(events, ["started", "stopped"]);
 * ```
 */
export class Announcer implements AsyncDisposable {
  readonly #options: AnnouncerOptions;
  readonly #now: () => number;
  readonly #timers: AnnouncerTimers;
  readonly #key: number;
  readonly #numWant: number;
  readonly #minIntervalMs: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #announceTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #tiers: TierState[] = [];
  readonly #trackers = new Map<string, TrackerState>();
  readonly #onAbort = () => this.#shutDown(this.#options.signal?.reason);
  #started = false;
  #closed = false;
  #stopping: Promise<void> | undefined;

  /**
   * Prepares the announcer; nothing is sent before {@linkcode Announcer.start}.
   *
   * @param options Trackers, torrent identity, stats and callbacks, timing knobs.
   * @throws {TypeError} If the info hash or peer id is not 20 bytes, or the list is malformed.
   * @throws {RangeError} If the port or a timing option is out of range.
   */
  constructor(options: AnnouncerOptions) {
    if (!(options.infoHash instanceof Uint8Array) || options.infoHash.length !== 20) {
      throw new TypeError("Cannot create announcer: info hash must be 20 bytes");
    }
    if (!(options.peerId instanceof Uint8Array) || options.peerId.length !== 20) {
      throw new TypeError("Cannot create announcer: peer id must be 20 bytes");
    }
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
      throw new RangeError(`Cannot create announcer: port "${options.port}" is not in 0-65535`);
    }
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? {
      setTimeout: (callback, ms) => setTimeout(callback, ms),
      clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    };
    this.#key = options.key ?? crypto.getRandomValues(new Uint32Array(1))[0]!;
    this.#numWant = options.numWant ?? DEFAULT_NUM_WANT;
    this.#minIntervalMs = checkMs("minAnnounceIntervalMs", options.minAnnounceIntervalMs) ??
      DEFAULT_MIN_INTERVAL_MS;
    this.#retryBaseMs = checkMs("retryBaseMs", options.retryBaseMs) ?? DEFAULT_RETRY_BASE_MS;
    this.#retryMaxMs = checkMs("retryMaxMs", options.retryMaxMs) ?? DEFAULT_RETRY_MAX_MS;
    this.#announceTimeoutMs = checkMs("announceTimeoutMs", options.announceTimeoutMs) ??
      DEFAULT_ANNOUNCE_TIMEOUT_MS;
    this.#stopTimeoutMs = checkMs("stopTimeoutMs", options.stopTimeoutMs) ??
      DEFAULT_STOP_TIMEOUT_MS;

    const random = options.random === undefined ? {} : { random: options.random };
    // Shuffle every tier once (BEP 12), then give each tier its own TrackerTiers for failover
    // and promotion, so that tiers stay independent of each other.
    const all = new TrackerTiers(options.announceList, random);
    all.tiers.forEach((urls, index) => {
      this.#tiers.push({
        index,
        order: new TrackerTiers([urls], { random: keepOrder }),
        timer: undefined,
        nextAt: undefined,
        running: undefined,
        asking: undefined,
        lastUrl: undefined,
        interruptedStartUrl: undefined,
        lastSuccessAt: undefined,
        minIntervalMs: 0,
        failures: 0,
        completedPending: false,
      });
      for (const url of urls) {
        this.#trackers.set(url, {
          url,
          tier: index,
          started: false,
          status: { url, tier: index, state: "idle", failures: 0 },
        });
      }
    });
  }

  /** The `key` sent with every announce of this session. */
  get key(): number {
    return this.#key;
  }

  /** Whether {@linkcode Announcer.stop} was called or the signal aborted. */
  get stopped(): boolean {
    return this.#closed;
  }

  /**
   * Sends `started` to every tier (failing over inside each), then keeps re-announcing.
   * Calling it again does nothing.
   *
   * @throws {Error} If the announcer was already stopped.
   */
  start(): void {
    if (this.#closed) throw new Error("Cannot start announcer: it was stopped");
    if (this.#started) return;
    this.#started = true;
    this.#options.signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (this.#options.signal?.aborted) return this.#shutDown(this.#options.signal.reason);
    for (const tier of this.#tiers) this.#run(tier);
  }

  /**
   * Tells the trackers the download completed: `completed` is sent once to each tier, right
   * away (or as soon as an announce in flight finishes).
   */
  completed(): void {
    if (this.#closed) return;
    for (const tier of this.#tiers) {
      if (tier.completedPending) continue;
      tier.completedPending = true;
      // Before start() the flag just rides along with `started`'s left=0.
      if (this.#started && tier.lastUrl !== undefined) this.#run(tier);
    }
  }

  /**
   * Asks for peers early because the engine is short of them: each tier that is healthy
   * announces now if its `min interval` (or `minAnnounceIntervalMs`) has passed since its last
   * answer, else as soon as it has. Tiers in failure backoff keep their schedule.
   */
  requestMorePeers(): void {
    if (this.#closed || !this.#started) return;
    const now = this.#now();
    for (const tier of this.#tiers) {
      if (tier.running || tier.failures > 0 || tier.lastSuccessAt === undefined) continue;
      const earliest = tier.lastSuccessAt + Math.max(tier.minIntervalMs, this.#minIntervalMs);
      if (earliest <= now) this.#run(tier);
      else if (tier.nextAt === undefined || earliest < tier.nextAt) {
        this.#schedule(tier, earliest - now);
      }
    }
  }

  /**
   * Stops: cancels timers and announces in flight, then sends `stopped` to the tracker of each
   * tier that knows us, all within `stopTimeoutMs`. Never rejects; failures go to `onError`.
   * Calling it again returns the same promise.
   *
   * @returns A promise that settles once everything is cleaned up.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /** Same as {@linkcode Announcer.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /**
   * Returns the state of every tracker, in announce-list order, for status output.
   *
   * @returns One record per tracker (copies).
   */
  status(): TrackerStatus[] {
    return [...this.#trackers.values()].map((tracker) => {
      const status: TrackerStatus = { ...tracker.status };
      const tier = this.#tiers[tracker.tier]!;
      if (tier.nextAt !== undefined && tier.order.candidates()[0] === tracker.url) {
        status.nextAnnounceAt = tier.nextAt;
      }
      return status;
    });
  }

  /** Starts an announce round for `tier` now, unless one is running. */
  #run(tier: TierState): void {
    if (this.#closed || tier.running) return;
    this.#clearTimer(tier);
    const controller = new AbortController();
    const promise = this.#announceTier(tier, controller.signal).then(
      () => {
        tier.running = undefined;
        // `completed()` arrived while a plain announce was in flight: send it now.
        if (tier.completedPending && tier.failures === 0 && !this.#closed) this.#run(tier);
      },
      (error) => {
        tier.running = undefined;
        // #announceTier handles every tracker error; anything here is a bug to surface.
        reportError(error);
      },
    );
    tier.running = { controller, promise };
  }

  /** Tries the tier's trackers in order until one answers, then schedules the next round. */
  async #announceTier(tier: TierState, signal: AbortSignal): Promise<void> {
    const wantCompleted = tier.completedPending;
    for (const url of tier.order.order()) {
      if (signal.aborted) return;
      const tracker = this.#trackers.get(url)!;
      const event = !tracker.started ? "started" : wantCompleted ? "completed" : undefined;
      const request = this.#request(event, tracker);
      tier.asking = { url, event };
      tracker.status.state = "announcing";
      tracker.status.lastAnnounceAt = this.#now();
      let response: AnnounceResponse;
      try {
        response = await announce(url, request, this.#announceOptions(signal));
      } catch (error) {
        if (signal.aborted) {
          // Stopped meanwhile: the tracker may have seen `started`, so it may get `stopped`.
          if (event === "started") tier.interruptedStartUrl ??= url;
          tracker.status.state = tracker.status.lastError === undefined ? "ok" : "error";
          return;
        }
        this.#recordFailure(tracker, error);
        continue;
      } finally {
        tier.asking = undefined;
      }
      this.#recordSuccess(tier, tracker, response, wantCompleted);
      return;
    }
    if (signal.aborted) return;
    // Every tracker of the tier failed: back off, doubling.
    tier.failures++;
    const delay = Math.min(
      this.#retryBaseMs * 2 ** Math.min(tier.failures - 1, 30),
      this.#retryMaxMs,
    );
    this.#schedule(tier, delay);
  }

  #recordSuccess(
    tier: TierState,
    tracker: TrackerState,
    response: AnnounceResponse,
    wantCompleted: boolean,
  ): void {
    const now = this.#now();
    tracker.started = true;
    if (response.trackerId !== undefined) tracker.trackerId = response.trackerId;
    const status = tracker.status;
    status.state = "ok";
    status.lastSuccessAt = now;
    status.failures = 0;
    delete status.lastError;
    status.peersReceived = response.peers.length;
    status.interval = response.interval;
    setOrDelete(status, "minInterval", response.minInterval);
    setOrDelete(status, "seeders", response.complete);
    setOrDelete(status, "leechers", response.incomplete);
    setOrDelete(status, "warning", response.warning);

    tier.order.reportSuccess(tracker.url);
    tier.lastUrl = tracker.url;
    tier.lastSuccessAt = now;
    tier.failures = 0;
    if (wantCompleted) tier.completedPending = false;
    tier.minIntervalMs = secondsToMs(response.minInterval ?? 0);
    const interval = Math.max(
      secondsToMs(response.interval),
      tier.minIntervalMs,
      this.#minIntervalMs,
    );
    this.#schedule(tier, Math.min(interval, MAX_INTERVAL_MS));

    if (response.peers.length > 0) {
      try {
        this.#options.onPeers(response.peers, tracker.url);
      } catch (error) {
        this.#reportError(tracker.url, error);
      }
    }
  }

  #recordFailure(tracker: TrackerState, error: unknown): void {
    const status = tracker.status;
    status.state = "error";
    status.failures++;
    status.lastError = error instanceof Error ? error.message : String(error);
    this.#reportError(tracker.url, error);
  }

  #reportError(url: string, error: unknown): void {
    const onError = this.#options.onError;
    if (onError === undefined) return;
    const wrapped = error instanceof Error
      ? error
      : new TrackerError(`Cannot announce to "${url}": ${String(error)}`, { cause: error });
    try {
      onError(url, wrapped);
    } catch (callbackError) {
      // The engine's own callback threw: that is its bug, surface it as uncaught.
      reportError(callbackError);
    }
  }

  #request(event: AnnounceRequest["event"], tracker: TrackerState): AnnounceRequest {
    const stats = this.#options.stats();
    const request: AnnounceRequest = {
      infoHash: this.#options.infoHash,
      peerId: this.#options.peerId,
      port: this.#options.port,
      uploaded: toCount(stats.uploaded),
      downloaded: toCount(stats.downloaded),
      left: toCount(stats.left),
      numWant: event === "stopped" ? 0 : this.#numWant,
      key: this.#key,
    };
    if (event !== undefined) request.event = event;
    if (tracker.trackerId !== undefined) request.trackerId = tracker.trackerId;
    return request;
  }

  #announceOptions(signal: AbortSignal, timeoutMs = this.#announceTimeoutMs): AnnounceOptions {
    return { ...this.#options.trackerOptions, signal, timeoutMs };
  }

  #schedule(tier: TierState, delayMs: number): void {
    this.#clearTimer(tier);
    if (this.#closed) return;
    const delay = Math.max(0, Math.ceil(delayMs));
    tier.nextAt = this.#now() + delay;
    tier.timer = this.#timers.setTimeout(() => {
      tier.timer = undefined;
      tier.nextAt = undefined;
      this.#run(tier);
    }, delay);
  }

  #clearTimer(tier: TierState): void {
    if (tier.timer !== undefined) this.#timers.clearTimeout(tier.timer);
    tier.timer = undefined;
    tier.nextAt = undefined;
  }

  /** Cancels everything without telling the trackers. */
  #shutDown(reason: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    for (const tier of this.#tiers) {
      this.#clearTimer(tier);
      tier.running?.controller.abort(reason);
    }
  }

  async #stop(): Promise<void> {
    const wasStarted = this.#started && !this.#closed;
    this.#shutDown(new DOMException("Announcer stopped", "AbortError"));
    if (!this.#started) return;
    let deadlineTimer: unknown;
    const deadline = new Promise<"timeout">((resolve) => {
      deadlineTimer = this.#timers.setTimeout(() => resolve("timeout"), this.#stopTimeoutMs);
    });
    const controller = new AbortController();
    const pending: Promise<unknown>[] = [];
    try {
      const running = this.#tiers.flatMap((tier) => tier.running ? [tier.running.promise] : []);
      pending.push(...running);
      await Promise.race([Promise.allSettled(running), deadline]);
      if (!wasStarted) return;
      const stops = this.#tiers.flatMap((tier) => {
        const url = tier.lastUrl ?? tier.interruptedStartUrl;
        return url === undefined
          ? []
          : [this.#sendStopped(this.#trackers.get(url)!, controller.signal)];
      });
      pending.push(...stops);
      const outcome = await Promise.race([Promise.allSettled(stops), deadline]);
      if (outcome === "timeout") {
        controller.abort(
          new TrackerError(`Cannot send "stopped": timed out after ${this.#stopTimeoutMs} ms`),
        );
      }
    } finally {
      if (deadlineTimer !== undefined) this.#timers.clearTimeout(deadlineTimer);
      controller.abort();
      // Aborted requests settle promptly; waiting lets their sockets close before we return.
      await settleWithin(pending, 250);
    }
  }

  async #sendStopped(tracker: TrackerState, signal: AbortSignal): Promise<void> {
    tracker.status.state = "announcing";
    tracker.status.lastAnnounceAt = this.#now();
    try {
      await announce(
        tracker.url,
        this.#request("stopped", tracker),
        this.#announceOptions(signal, this.#stopTimeoutMs),
      );
      tracker.status.state = "ok";
      tracker.status.lastSuccessAt = this.#now();
      tracker.started = false;
    } catch (error) {
      this.#recordFailure(tracker, signal.aborted ? signal.reason ?? error : error);
    }
  }
}

/** A `random` for TrackerTiers that makes its Fisher-Yates shuffle keep the given order. */
function keepOrder(): number {
  return 1 - Number.EPSILON;
}

/** Waits for `promises` to settle, but at most `ms` milliseconds (with a real timer). */
async function settleWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  try {
    await Promise.race([Promise.allSettled(promises), grace]);
  } finally {
    clearTimeout(timer);
  }
}

function checkMs(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(
      `Cannot create announcer: ${name} "${value}" is not a non-negative number`,
    );
  }
  return value;
}

function secondsToMs(seconds: number): number {
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}

/** Stats come from live counters: clamp them to what trackers accept. */
function toCount(value: number): number {
  return Number.isFinite(value) && value > 0
    ? Math.min(Math.floor(value), Number.MAX_SAFE_INTEGER)
    : 0;
}

function setOrDelete<K extends "minInterval" | "seeders" | "leechers" | "warning">(
  status: TrackerStatus,
  key: K,
  value: TrackerStatus[K] | undefined,
): void {
  if (value === undefined) delete status[key];
  else status[key] = value;
}
