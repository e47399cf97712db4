/**
 * Which independent BitTorrent tools are installed, so interop tests can `ignore:` cleanly.
 *
 * @module
 */

/** The Debian interpreter that has `python3-libtorrent` (not whatever `python3` is on `PATH`). */
export const PYTHON = "/usr/bin/python3";

/** The tools the interop harness can drive. `libtorrent` means `python3-libtorrent`. */
export type InteropTool =
  | "opentracker"
  | "libtorrent"
  | "aria2c"
  | "transmission-cli"
  | "mktorrent";

/** Every tool in {@linkcode InteropTool}. */
export const ALL_TOOLS: readonly InteropTool[] = [
  "opentracker",
  "libtorrent",
  "aria2c",
  "transmission-cli",
  "mktorrent",
];

const cache = new Map<InteropTool, boolean>();
const warned = new Set<string>();

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return false;
    }
    throw error;
  }
}

function onPath(name: string): boolean {
  const dirs = (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":");
  return dirs.some((dir) => dir !== "" && isExecutable(`${dir}/${name}`));
}

function probe(name: InteropTool): boolean {
  if (name === "libtorrent") {
    if (!isExecutable(PYTHON)) return false;
    const output = new Deno.Command(PYTHON, {
      args: ["-c", "import libtorrent"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return output.success;
  }
  return onPath(name);
}

/**
 * Reports whether an interop tool is installed (cached; spawns python once for `libtorrent`).
 *
 * @param name The tool.
 * @returns True when the tool can be run.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasTool } from "./tools.ts";
 * assert.equal(typeof hasTool("mktorrent"), "boolean");
 * ```
 */
export function hasTool(name: InteropTool): boolean {
  let present = cache.get(name);
  if (present === undefined) {
    present = probe(name);
    cache.set(name, present);
  }
  return present;
}

/**
 * Lists the tools from `names` that are not installed.
 *
 * @param names The tools a test needs (default: all).
 * @returns The missing ones, in the given order.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { missingTools } from "./tools.ts";
 * assert.ok(Array.isArray(missingTools(["aria2c"])));
 * ```
 */
export function missingTools(names: readonly InteropTool[] = ALL_TOOLS): InteropTool[] {
  return names.filter((name) => !hasTool(name));
}

/**
 * Reports whether all `names` are installed, and otherwise prints once on stderr which are
 * missing. Meant for `Deno.test({ ignore: !interopAvailable(["aria2c"]), ... })`.
 *
 * @param names The tools a test needs (default: all).
 * @returns True when every tool is installed.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { interopAvailable, missingTools } from "./tools.ts";
 * assert.equal(interopAvailable(["mktorrent"]), missingTools(["mktorrent"]).length === 0);
 * ```
 */
export function interopAvailable(names: readonly InteropTool[] = ALL_TOOLS): boolean {
  const missing = missingTools(names);
  if (missing.length === 0) return true;
  const key = missing.join(",");
  if (!warned.has(key)) {
    warned.add(key);
    console.error(`interop: skipping tests that need missing tool(s): ${missing.join(", ")}`);
  }
  return false;
}
