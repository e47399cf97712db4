/**
 * Shared settings for the property-based fuzz tests in `tests/fuzz/`.
 *
 * Two modes, chosen by environment variables:
 *
 * - **CI** (`deno task test`, no variables set): a fixed seed and a small, fixed number of runs
 *   per property, so the suite is deterministic and takes well under a minute.
 * - **Fuzzing** (`deno task fuzz`, which sets `FUZZ_RANDOM=1`): a random seed and a time budget.
 *
 * Variables:
 *
 * - `FUZZ_SEED`: the seed (an integer). A failure prints the seed and the path to replay it.
 * - `FUZZ_PATH`: the counterexample path from a failure report; replays one exact failure
 *   (use with `--filter "<test name>"`).
 * - `FUZZ_RUNS`: runs per property, overriding the built-in counts.
 * - `FUZZ_SECONDS`: total seconds for the whole fuzz suite, split evenly over its
 *   {@linkcode PROPERTY_COUNT} properties (default 60 in fuzzing mode).
 * - `FUZZ_RANDOM`: when set, pick a random seed (unless `FUZZ_SEED` is set) and run by time.
 * - `FUZZ_STATS`: when set, print how many inputs each property tried.
 *
 * ```sh
 * FUZZ_SECONDS=300 deno task fuzz
 * FUZZ_SEED=-1234 FUZZ_PATH="12:0:3" deno task fuzz --filter "fuzz: decode()"
 * ```
 *
 * @module
 */

import fc from "fast-check";

/** The seed CI uses, so `deno task test` is deterministic. */
export const FIXED_SEED = 0x0b17_7e57;

/**
 * How many properties the fuzz suite holds; `FUZZ_SECONDS` is split evenly over them. Keep it
 * roughly in step with the test files (an estimate is fine: it only scales the time budget).
 */
export const PROPERTY_COUNT = 42;

/** The resolved fuzz settings for this process. */
export interface FuzzConfig {
  /** Seed for every property. */
  seed: number;
  /** True in fuzzing mode (random seed or time budget). */
  fuzzing: boolean;
  /** Runs per property when set explicitly (`FUZZ_RUNS`). */
  runs: number | undefined;
  /** Milliseconds per property in fuzzing mode. */
  millisPerProperty: number | undefined;
  /** Replay path (`FUZZ_PATH`). */
  path: string | undefined;
  /** Print run counts. */
  stats: boolean;
}

function env(name: string): string | undefined {
  const value = Deno.env.get(name);
  return value === undefined || value === "" ? undefined : value;
}

function integerEnv(name: string): number | undefined {
  const text = env(name);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value)) {
    throw new TypeError(`Cannot read ${name}: "${text}" is not an integer`);
  }
  return value;
}

function readConfig(): FuzzConfig {
  const random = env("FUZZ_RANDOM") !== undefined;
  const seconds = integerEnv("FUZZ_SECONDS");
  const runs = integerEnv("FUZZ_RUNS");
  const fuzzing = random || seconds !== undefined;
  const seed = integerEnv("FUZZ_SEED") ??
    (random ? crypto.getRandomValues(new Int32Array(1))[0]! : FIXED_SEED);
  const totalSeconds = seconds ?? (fuzzing && runs === undefined ? 60 : undefined);
  return {
    seed,
    fuzzing,
    runs,
    millisPerProperty: totalSeconds === undefined
      ? undefined
      : Math.max(100, Math.floor((totalSeconds * 1000) / PROPERTY_COUNT)),
    path: env("FUZZ_PATH"),
    stats: env("FUZZ_STATS") !== undefined || fuzzing,
  };
}

/** The settings read from the environment once, at load. */
export const FUZZ: FuzzConfig = readConfig();

/**
 * Time limit for one small input (a few KiB at most; real work takes microseconds). Generous so
 * a loaded CI machine does not flake, tight enough to catch runaway or quadratic work.
 */
export const MAX_MS_PER_INPUT = 500;

/** Per-property options for {@linkcode assertProperty}. */
export interface PropertyOptions {
  /** Runs in CI mode (fixed seed). Pick so the property takes well under a second. */
  runs: number;
}

/**
 * Runs a fast-check property with the suite's seed and budget, and fails with a report that
 * says how to replay the failure.
 *
 * @param t The test context (its name goes into the replay hint).
 * @param property The property to check.
 * @param options The CI run count.
 */
export async function assertProperty<Ts extends [unknown, ...unknown[]]>(
  t: Deno.TestContext,
  property: fc.IProperty<Ts> | fc.IAsyncProperty<Ts>,
  options: PropertyOptions,
): Promise<void> {
  const timed = FUZZ.millisPerProperty !== undefined && FUZZ.runs === undefined;
  const parameters: fc.Parameters<Ts> = {
    seed: FUZZ.seed,
    numRuns: FUZZ.runs ?? (timed ? Number.MAX_SAFE_INTEGER : options.runs),
    endOnFailure: false,
  };
  if (timed) {
    parameters.interruptAfterTimeLimit = FUZZ.millisPerProperty!;
    parameters.markInterruptAsFailure = false;
  }
  if (FUZZ.path !== undefined) parameters.path = FUZZ.path;
  const started = performance.now();
  const details = await fc.check(property, parameters);
  if (FUZZ.stats) {
    console.log(
      `${t.name}: ${details.numRuns} inputs in ${Math.round(performance.now() - started)} ms` +
        ` (seed ${details.seed})`,
    );
  }
  if (details.failed) {
    const report = fc.defaultReportMessage(details) ?? "Property failed";
    throw new Error(
      `${report}\n\nReplay with: FUZZ_SEED=${details.seed} FUZZ_PATH="${details.counterexamplePath}"` +
        ` deno task fuzz --filter ${JSON.stringify(t.name)}`,
      { cause: details.errorInstance },
    );
  }
}

/**
 * Runs `fn` and returns what it threw, or `undefined` if it returned.
 *
 * @param fn The code under test.
 * @returns The thrown value, or `undefined`.
 */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error;
  }
}

/**
 * Fails unless `error` is `undefined` or an instance of one of `allowed`, and rethrows anything
 * else unchanged so the report shows its stack.
 *
 * @param error What the code under test threw, if anything.
 * @param allowed The error classes the code documents.
 */
export function expectOnly(
  error: unknown,
  allowed: readonly (abstract new (...args: never[]) => Error)[],
): void {
  if (error === undefined) return;
  if (allowed.some((cls) => error instanceof cls)) return;
  throw new Error(
    `Expected only ${allowed.map((cls) => cls.name).join(" or ")}, got ${
      error instanceof Error ? `${error.name}: ${error.message}` : String(error)
    }`,
    { cause: error },
  );
}

/**
 * Fails if `fn` takes longer than `maxMs` milliseconds (a generous bound that catches
 * quadratic or runaway work on small inputs, not a benchmark).
 *
 * @param fn The code under test.
 * @param maxMs The time limit.
 * @param what A label for the failure message.
 * @returns What `fn` returned.
 */
export function withinTime<T>(fn: () => T, maxMs: number, what: string): T {
  const started = performance.now();
  const check = () => {
    const elapsed = performance.now() - started;
    if (elapsed > maxMs) {
      throw new Error(`${what} took ${Math.round(elapsed)} ms, more than ${maxMs} ms`);
    }
  };
  let result: T;
  try {
    result = fn();
  } catch (error) {
    check();
    throw error;
  }
  check();
  return result;
}
