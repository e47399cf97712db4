/**
 * Round-by-round comparison of two clients in the download benchmark. Each round runs every
 * client once, minutes apart in the same swarm, so a pair from one round shares its conditions
 * (the seeders' warm-up, the host's memory); the spread of the pairs shows whether a difference
 * of medians is larger than the noise.
 *
 * @module
 */

/** One client's download in one round. */
export interface RoundResult {
  /** Client name. */
  client: string;
  /** Round number, from 1. */
  run: number;
  /** Whole-process wall time. */
  wallSeconds: number;
}

/** How one client fared against another over the rounds both ran in. */
export interface RoundComparison {
  /** Rounds in which both clients ran. */
  rounds: number;
  /** Rounds in which the first client was faster. */
  faster: number;
  /** Smallest throughput ratio (the other's wall time over the first's) of one round. */
  minRatio: number;
  /** Largest throughput ratio of one round. */
  maxRatio: number;
}

/**
 * Pairs `client`'s results with `other`'s by round.
 *
 * @param results Every download of the benchmark.
 * @param client The client compared, usually ours.
 * @param other The client it is compared with.
 * @returns The comparison, or `undefined` if no round ran both.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * const results = [
 *   { client: "ours", run: 1, wallSeconds: 2 },
 *   { client: "lt", run: 1, wallSeconds: 3 },
 *   { client: "ours", run: 2, wallSeconds: 2.5 },
 *   { client: "lt", run: 2, wallSeconds: 2 },
 * ];
 * deepEqual(compareRounds(results, "ours", "lt"), {
 *   rounds: 2, faster: 1, minRatio: 0.8, maxRatio: 1.5,
 * });
 * ```
 */
export function compareRounds(
  results: readonly RoundResult[],
  client: string,
  other: string,
): RoundComparison | undefined {
  const otherWall = new Map<number, number>();
  for (const r of results) if (r.client === other) otherWall.set(r.run, r.wallSeconds);
  const ratios: number[] = [];
  for (const r of results) {
    const wall = otherWall.get(r.run);
    if (r.client === client && wall !== undefined) ratios.push(wall / r.wallSeconds);
  }
  if (ratios.length === 0) return undefined;
  return {
    rounds: ratios.length,
    faster: ratios.filter((ratio) => ratio > 1).length,
    minRatio: Math.min(...ratios),
    maxRatio: Math.max(...ratios),
  };
}
