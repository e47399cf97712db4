/**
 * Saving and loading a DHT node's state (its id and routing table) between runs.
 *
 * @module
 */
import type { RoutingTableState } from "./routing_table.ts";

/** What a DHT node persists: its id and the nodes of its routing table (hex ids, `ip:port`). */
export type DhtState = RoutingTableState;

/**
 * The default file for DHT state: `$XDG_CACHE_HOME/denotorrent/dht.json`, else
 * `$HOME/.cache/denotorrent/dht.json`.
 *
 * @returns The path.
 * @throws {TypeError} When neither `XDG_CACHE_HOME` nor `HOME` is set.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultDhtStatePath } from "./state_file.ts";
 *
 * assert.match(defaultDhtStatePath(), /denotorrent\/dht\.json$/);
 * ```
 */
export function defaultDhtStatePath(): string {
  const cache = Deno.env.get("XDG_CACHE_HOME");
  if (cache) return `${cache.replace(/\/+$/, "")}/denotorrent/dht.json`;
  const home = Deno.env.get("HOME");
  if (!home) {
    throw new TypeError("Cannot find DHT state path: neither XDG_CACHE_HOME nor HOME is set");
  }
  return `${home.replace(/\/+$/, "")}/.cache/denotorrent/dht.json`;
}

/**
 * Writes DHT state as JSON, atomically: to a temporary file in the same directory, then renamed
 * over `path`. Creates the directory if needed.
 *
 * @param path Where to write.
 * @param state The state (from `DhtNode.toJSON()`).
 * @returns Once written.
 *
 * @example Round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadDhtState, saveDhtState } from "./state_file.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const state = { id: "ab".repeat(20), nodes: [{ id: "cd".repeat(20), address: "10.0.0.1:6881" }] };
 * await saveDhtState(`${dir}/sub/dht.json`, state);
 * assert.deepEqual(await loadDhtState(`${dir}/sub/dht.json`), state);
 * assert.equal(await loadDhtState(`${dir}/missing.json`), undefined);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveDhtState(path: string, state: DhtState): Promise<void> {
  const slash = path.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  const temp = `${path}.${crypto.getRandomValues(new Uint8Array(6)).toHex()}.tmp`;
  try {
    await Deno.writeTextFile(temp, JSON.stringify(state) + "\n");
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch((cleanup) => {
      if (!(cleanup instanceof Deno.errors.NotFound)) throw new AggregateError([error, cleanup]);
    });
    throw error;
  }
}

/**
 * Reads DHT state written by {@linkcode saveDhtState}.
 *
 * @param path The file.
 * @returns The state, or undefined when the file does not exist.
 * @throws {SyntaxError} When the file is not JSON.
 * @throws {TypeError} When the JSON does not have the shape `{ id, nodes: [{ id, address }] }`.
 *
 * @example A missing file
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadDhtState } from "./state_file.ts";
 *
 * const dir = await Deno.makeTempDir();
 * assert.equal(await loadDhtState(`${dir}/dht.json`), undefined);
 * await Deno.writeTextFile(`${dir}/dht.json`, "[1]");
 * await assert.rejects(loadDhtState(`${dir}/dht.json`), TypeError);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadDhtState(path: string): Promise<DhtState | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const value: unknown = JSON.parse(text);
  if (!isState(value)) {
    throw new TypeError(
      `Cannot load DHT state "${path}": expected { id, nodes: [{ id, address }] }`,
    );
  }
  return value;
}

function isState(value: unknown): value is DhtState {
  if (typeof value !== "object" || value === null) return false;
  const { id, nodes } = value as Record<string, unknown>;
  return typeof id === "string" && Array.isArray(nodes) &&
    nodes.every((node) =>
      typeof node === "object" && node !== null && typeof node.id === "string" &&
      typeof node.address === "string"
    );
}
