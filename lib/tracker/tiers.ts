/** Options for {@linkcode TrackerTiers}. */
export interface TrackerTiersOptions {
  /** Random numbers in [0, 1), for the one-time shuffle of each tier (default `Math.random`). */
  random?: () => number;
}

/**
 * The tracker order of a multitracker torrent (BEP 12): tiers tried in order, the URLs inside
 * each tier shuffled once, and a tracker that answers moved to the front of its tier. A pure
 * state machine: it only decides the order; callers do the announcing.
 *
 * @example Failover and promotion
 * ```ts
 * import assert from "node:assert/strict";
 * import { TrackerTiers } from "./tiers.ts";
 *
 * // random() = 0.99 keeps every tier in its given order.
 * const tiers = new TrackerTiers([["udp://a:1", "udp://b:1"], ["http://c/announce"]], {
 *   random: () => 0.99,
 * });
 * assert.deepEqual(tiers.candidates(), ["udp://a:1", "udp://b:1", "http://c/announce"]);
 * tiers.reportSuccess("udp://b:1");
 * assert.deepEqual(tiers.candidates(), ["udp://b:1", "udp://a:1", "http://c/announce"]);
 * ```
 */
export class TrackerTiers {
  #tiers: string[][];

  /**
   * Builds the tiers from a torrent's `announce-list`, dropping empty tiers and duplicates.
   *
   * @param announceList The tiers, each a list of announce URLs.
   * @param options The RNG for shuffling.
   * @throws {TypeError} When the list is not a list of lists of strings.
   */
  constructor(announceList: readonly (readonly string[])[], options: TrackerTiersOptions = {}) {
    const random = options.random ?? Math.random;
    const seen = new Set<string>();
    this.#tiers = [];
    if (!Array.isArray(announceList)) {
      throw new TypeError("Cannot build tracker tiers: expected a list of lists of URLs");
    }
    for (const tier of announceList) {
      if (!Array.isArray(tier)) {
        throw new TypeError("Cannot build tracker tiers: expected a list of lists of URLs");
      }
      const urls: string[] = [];
      for (const url of tier) {
        if (typeof url !== "string") {
          throw new TypeError(`Cannot build tracker tiers: "${String(url)}" is not a string`);
        }
        if (url === "" || seen.has(url)) continue;
        seen.add(url);
        urls.push(url);
      }
      // Fisher-Yates, once, as BEP 12 asks.
      for (let i = urls.length - 1; i > 0; i--) {
        const j = Math.min(i, Math.floor(random() * (i + 1)));
        [urls[i], urls[j]] = [urls[j]!, urls[i]!];
      }
      if (urls.length > 0) this.#tiers.push(urls);
    }
  }

  /** The current tiers, each in try order (copies). */
  get tiers(): string[][] {
    return this.#tiers.map((tier) => [...tier]);
  }

  /**
   * Yields the URLs in the order to try them: the first tier front to back, then the next tier.
   * The order is fixed when iteration starts, so reporting success while iterating is safe.
   *
   * @returns The URLs in try order.
   */
  *order(): Generator<string, void, undefined> {
    yield* this.candidates();
  }

  /**
   * Returns the URLs in the order to try them.
   *
   * @returns A new array of URLs.
   */
  candidates(): string[] {
    return this.#tiers.flat();
  }

  /**
   * Records that a tracker answered: it moves to the front of its tier (BEP 12).
   *
   * @param url The tracker that answered.
   * @returns True when the URL is known.
   */
  reportSuccess(url: string): boolean {
    for (const tier of this.#tiers) {
      const index = tier.indexOf(url);
      if (index < 0) continue;
      tier.splice(index, 1);
      tier.unshift(url);
      return true;
    }
    return false;
  }
}
