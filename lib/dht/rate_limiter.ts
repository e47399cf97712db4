/**
 * Per-IP token buckets that cap how many queries each address may make (DHT abuse control).
 * Pure state, clock injected.
 *
 * @module
 */

/** Options of {@linkcode RateLimiter}. */
export interface RateLimiterOptions {
  /** Tokens added per second per address (default 50). */
  perSecond?: number;
  /** Bucket capacity: the largest burst allowed (default 100). */
  burst?: number;
  /** Addresses tracked at most; idle ones are forgotten first (default 10000). */
  maxAddresses?: number;
  /** Clock in milliseconds (default `Date.now`). */
  now?: () => number;
}

/**
 * A token bucket per address: each query takes one token; tokens refill at a steady rate up to
 * the burst size.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { RateLimiter } from "./rate_limiter.ts";
 *
 * let now = 0;
 * const limiter = new RateLimiter({ perSecond: 1, burst: 2, now: () => now });
 * assert.deepEqual([1, 2, 3].map(() => limiter.take("10.0.0.1")), [true, true, false]);
 * assert.equal(limiter.take("10.0.0.2"), true);
 * now += 1000;
 * assert.equal(limiter.take("10.0.0.1"), true);
 * ```
 */
export class RateLimiter {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #maxAddresses: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  /**
   * Makes a limiter with no addresses tracked yet.
   *
   * @param options Rate, burst, bound and clock.
   * @throws {RangeError} When the rate or burst is not positive.
   */
  constructor(options: RateLimiterOptions = {}) {
    const perSecond = options.perSecond ?? 50;
    this.#burst = options.burst ?? 100;
    if (!(perSecond > 0) || !(this.#burst >= 1)) {
      throw new RangeError(
        `Cannot create rate limiter: rate ${perSecond} and burst ${this.#burst} must be positive`,
      );
    }
    this.#perMs = perSecond / 1000;
    this.#maxAddresses = options.maxAddresses ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Takes one token for an address.
   *
   * @param host The address.
   * @returns True when allowed, false when over the limit.
   */
  take(host: string): boolean {
    const now = this.#now();
    let bucket = this.#buckets.get(host);
    if (bucket) {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
      bucket.at = now;
      // Re-insert so that Map order stays least recently used first.
      this.#buckets.delete(host);
    } else {
      bucket = { tokens: this.#burst, at: now };
      if (this.#buckets.size >= this.#maxAddresses) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
    }
    this.#buckets.set(host, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
