/**
 * Rounds of the benchmarks: the order of the clients in each round, the pause before each
 * download, medians, and a round-by-round comparison of two clients. Each round runs every
 * client once, minutes apart in the same swarm, so a pair from one round shares its conditions
 * (the seeders' warm-up, the host's memory); the spread of the pairs shows whether a difference
 * of medians is larger than the noise.
 *
 * @module
 */

/**
 * The order of the clients in round `run`: odd rounds take them in the given order, even rounds
 * in reverse, each pair of rounds starting one further along. Six rounds of three clients go
 * through every order once, so each client starts as often as the others and follows each other
 * client as often. (Rotating one order only puts the same client before a given one every
 * time, and a client pays for what the one before it left: libtorrent leaves a GiB of mapped
 * memory to be returned.)
 *
 * @param clients The clients, in their nominal order.
 * @param run The round number, from 1.
 * @returns The clients in the order to run them.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * const clients = ["a", "b", "c"];
 * deepEqual([1, 2, 3].map((run) => roundOrder(clients, run)), [
 *   ["a", "b", "c"],
 *   ["c", "b", "a"],
 *   ["b", "c", "a"],
 * ]);
 * ```
 */
export function roundOrder<T>(clients: readonly T[], run: number): T[] {
  const start = Math.floor((run - 1) / 2) % clients.length;
  const rotated = [...clients.slice(start), ...clients.slice(0, start)];
  return run % 2 === 1 ? rotated : rotated.reverse();
}

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

/**
 * Lets the machine quiesce before a client starts, so that none pays for what the one before
 * it (or the payload's creation) left behind: writes back dirty pages and pending discards
 * (`sync`; the root here is ext4 mounted with `discard`), then waits. Measured here: without
 * the wait, a download right after libtorrent's took 3.2-3.7 s instead of 1.7-2.4 s, with
 * 1.5 s more system time spent copying into the page cache; with 8 s between clients, the
 * difference was gone (the VM's host is still busy with the previous client's memory).
 *
 * @param waitMs Milliseconds to wait after `sync`.
 * @throws {Error} If `sync` fails.
 */
export async function settle(waitMs: number): Promise<void> {
  const { success } = await new Deno.Command("sync").output();
  if (!success) throw new Error("sync failed");
  await new Promise((resolve) => setTimeout(resolve, waitMs));
}

/**
 * The median: the middle value, or the mean of the two middle values of an even count.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * equal(median([3, 1, 2]), 2);
 * equal(median([4, 1, 3, 2]), 2.5);
 * ```
 *
 * @param values At least one number.
 * @returns The median.
 */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
