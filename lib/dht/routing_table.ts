/**
 * The k-bucket routing table of the Mainline DHT (BEP 5): pure state, clock injected.
 *
 * @module
 */
import { formatPeerAddress, parsePeerAddress } from "../peer/address.ts";
import type { DhtContact } from "./_compact.ts";
import { commonPrefixLength, compareDistance, idsEqual, idWithPrefix } from "./node_id.ts";

/** Bucket size K of BEP 5. */
export const K = 8;

/** A node is good for 15 minutes after its last sign of life (BEP 5). */
export const GOOD_NODE_MS = 15 * 60 * 1000;

/** The state of a node in the table (BEP 5). */
export type NodeState = "good" | "questionable" | "bad";

/** A snapshot of one node in the table. */
export interface RoutingNode extends DhtContact {
  /** Its state now. */
  state: NodeState;
  /** Consecutive queries it failed to answer. */
  failures: number;
  /** When it last answered one of our queries, if ever (ms, table clock). */
  lastResponse?: number;
  /** When it last sent us a query, if ever. */
  lastQuery?: number;
}

/** What {@linkcode RoutingTable.add} did with a contact. */
export type AddResult =
  | { status: "added" }
  | { status: "updated" }
  /**
   * The bucket is full: the contact waits in the bucket's replacement cache. `questionable` lists
   * the bucket's questionable nodes, least recently seen first: ping them, and report failures
   * with {@linkcode RoutingTable.markFailed} so the contact can take a failed node's place.
   */
  | { status: "cached"; questionable: DhtContact[] }
  /** Our own id, or an address change by a node that did not answer us from there. */
  | { status: "ignored" };

/** A bucket that has not changed for 15 minutes, and a random id in its range to look up. */
export interface BucketRefresh {
  /** Bucket index: the number of leading bits its ids share with the table's own id. */
  index: number;
  /** A random id in the bucket's range. */
  target: Uint8Array;
}

/** The persisted form of a table: JSON with hex ids and `ip:port` addresses. */
export interface RoutingTableState {
  /** Our own id, 40 hex digits. */
  id: string;
  /** Known nodes, closest buckets last. */
  nodes: { id: string; address: string }[];
}

/** Options of {@linkcode RoutingTable}. */
export interface RoutingTableOptions {
  /** Bucket size (default {@linkcode K}). */
  k?: number;
  /** Clock in milliseconds (default `Date.now`). */
  now?: () => number;
  /** Fills a buffer with random bytes (default `crypto.getRandomValues`). */
  random?: (bytes: Uint8Array) => Uint8Array;
  /** Failed queries in a row after which a node is bad (default 2). */
  maxFailures?: number;
  /** Replacement cache size per bucket (default `k`). */
  replacementCacheSize?: number;
}

interface Entry {
  id: Uint8Array;
  host: string;
  port: number;
  failures: number;
  lastResponse: number | undefined;
  lastQuery: number | undefined;
  /** Last time it was heard from or about: orders the least recently seen. */
  lastSeen: number;
}

interface Bucket {
  nodes: Entry[];
  replacements: Entry[];
  lastChanged: number;
}

const MAX_BITS = 160;

/**
 * A k-bucket routing table (BEP 5). The bucket holding our own id splits when full; other
 * buckets keep their K nodes and a replacement cache. Nodes are good while they answer, turn
 * questionable after 15 minutes of silence, and bad after repeated failures.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { RoutingTable } from "./routing_table.ts";
 *
 * const table = new RoutingTable(new Uint8Array(20));
 * const id = new Uint8Array(20).fill(0xff);
 * assert.deepEqual(table.markResponded({ id, host: "127.0.0.1", port: 6881 }), { status: "added" });
 * assert.equal(table.closest(new Uint8Array(20), 8)[0]?.port, 6881);
 * assert.equal(table.get(id)?.state, "good");
 * ```
 */
export class RoutingTable {
  readonly #ownId: Uint8Array;
  readonly #k: number;
  readonly #now: () => number;
  readonly #random: (bytes: Uint8Array) => Uint8Array;
  readonly #maxFailures: number;
  readonly #replacementSize: number;
  readonly #buckets: Bucket[];

  /**
   * Makes an empty table of one bucket.
   *
   * @param ownId Our 20-byte node id.
   * @param options Bucket size, clock, RNG, failure threshold.
   * @throws {TypeError} When `ownId` is not 20 bytes.
   */
  constructor(ownId: Uint8Array, options: RoutingTableOptions = {}) {
    if (ownId.length !== 20) {
      throw new TypeError(`Cannot create routing table: id has ${ownId.length} bytes, expected 20`);
    }
    this.#ownId = ownId.slice();
    this.#k = options.k ?? K;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? ((bytes) => crypto.getRandomValues(bytes));
    this.#maxFailures = options.maxFailures ?? 2;
    this.#replacementSize = options.replacementCacheSize ?? this.#k;
    this.#buckets = [{ nodes: [], replacements: [], lastChanged: this.#now() }];
  }

  /** Our own node id. */
  get ownId(): Uint8Array {
    return this.#ownId.slice();
  }

  /** Number of nodes in the buckets (replacement caches not counted). */
  get size(): number {
    let size = 0;
    for (const bucket of this.#buckets) size += bucket.nodes.length;
    return size;
  }

  /** Number of buckets. */
  get bucketCount(): number {
    return this.#buckets.length;
  }

  /**
   * Records that we heard from or about a node: it sent us a query (`queried`), answered ours
   * (`responded`, see also {@linkcode markResponded}), or was loaded or learned second-hand.
   *
   * @param contact The node's id and address.
   * @param options What we heard.
   * @returns What happened to the contact.
   * @throws {TypeError} When the id is not 20 bytes.
   */
  add(contact: DhtContact, options: { responded?: boolean; queried?: boolean } = {}): AddResult {
    if (contact.id.length !== 20) {
      throw new TypeError(`Cannot add node: id has ${contact.id.length} bytes, expected 20`);
    }
    if (idsEqual(contact.id, this.#ownId)) return { status: "ignored" };
    const now = this.#now();
    const responded = options.responded ?? false;
    let carried: Entry | undefined;
    for (;;) {
      const index = this.#indexOf(contact.id);
      const bucket = this.#buckets[index]!;
      const existing = bucket.nodes.find((entry) => idsEqual(entry.id, contact.id));
      if (existing) {
        const moved = existing.host !== contact.host || existing.port !== contact.port;
        // Only an answer from the new address proves the node moved (no spoofed takeovers).
        if (moved && !responded) return { status: "ignored" };
        this.#touch(existing, contact, now, options);
        if (responded) bucket.lastChanged = now;
        return { status: "updated" };
      }
      const cachedAt = bucket.replacements.findIndex((entry) => idsEqual(entry.id, contact.id));
      const entry: Entry = carried ??
        (cachedAt >= 0 ? bucket.replacements.splice(cachedAt, 1)[0]! : {
          id: contact.id.slice(),
          host: contact.host,
          port: contact.port,
          failures: 0,
          lastResponse: undefined,
          lastQuery: undefined,
          lastSeen: now,
        });
      this.#touch(entry, contact, now, options);
      if (bucket.nodes.length < this.#k) {
        bucket.nodes.push(entry);
        bucket.lastChanged = now;
        return { status: "added" };
      }
      const badAt = bucket.nodes.findIndex((node) => this.#stateOf(node, now) === "bad");
      if (badAt >= 0) {
        bucket.nodes[badAt] = entry;
        bucket.lastChanged = now;
        return { status: "added" };
      }
      if (index === this.#buckets.length - 1 && this.#buckets.length < MAX_BITS) {
        this.#split();
        carried = entry;
        continue;
      }
      this.#cache(bucket, entry);
      const questionable = bucket.nodes
        .filter((node) => this.#stateOf(node, now) === "questionable")
        .sort((a, b) => a.lastSeen - b.lastSeen)
        .map(toContact);
      return { status: "cached", questionable };
    }
  }

  /**
   * Records that a node answered one of our queries: it becomes good, and is added if new.
   *
   * @param contact The node's id and the address it answered from.
   * @returns What happened to the contact.
   * @throws {TypeError} When the id is not 20 bytes.
   */
  markResponded(contact: DhtContact): AddResult {
    return this.add(contact, { responded: true });
  }

  /**
   * Records that a node failed to answer a query. Once bad, it is replaced by the most recent
   * contact of its bucket's replacement cache, if any.
   *
   * @param id The node's id.
   * @returns The node's state now, or undefined when it is not in the table.
   */
  markFailed(id: Uint8Array): NodeState | undefined {
    if (id.length !== 20) return undefined;
    const now = this.#now();
    const bucket = this.#buckets[this.#indexOf(id)]!;
    const cachedAt = bucket.replacements.findIndex((entry) => idsEqual(entry.id, id));
    if (cachedAt >= 0) {
      const cached = bucket.replacements[cachedAt]!;
      cached.failures++;
      const state = this.#stateOf(cached, now);
      if (state === "bad") bucket.replacements.splice(cachedAt, 1);
      return state;
    }
    const at = bucket.nodes.findIndex((entry) => idsEqual(entry.id, id));
    if (at < 0) return undefined;
    const entry = bucket.nodes[at]!;
    entry.failures++;
    const state = this.#stateOf(entry, now);
    if (state === "bad" && bucket.replacements.length > 0) {
      // Prefer a replacement that has answered us; else the most recently seen.
      let pick = bucket.replacements.length - 1;
      for (let i = bucket.replacements.length - 1; i >= 0; i--) {
        if (bucket.replacements[i]!.lastResponse !== undefined) {
          pick = i;
          break;
        }
      }
      bucket.nodes[at] = bucket.replacements.splice(pick, 1)[0]!;
      bucket.lastChanged = now;
    }
    return state;
  }

  /**
   * Removes a node from the table (and from the replacement caches).
   *
   * @param id The node's id.
   * @returns True when it was there.
   */
  remove(id: Uint8Array): boolean {
    if (id.length !== 20) return false;
    const bucket = this.#buckets[this.#indexOf(id)]!;
    for (const list of [bucket.nodes, bucket.replacements]) {
      const at = list.findIndex((entry) => idsEqual(entry.id, id));
      if (at >= 0) {
        list.splice(at, 1);
        return true;
      }
    }
    return false;
  }

  /**
   * Looks a node up by id.
   *
   * @param id The node's id.
   * @returns A snapshot of the node, or undefined.
   */
  get(id: Uint8Array): RoutingNode | undefined {
    if (id.length !== 20) return undefined;
    const entry = this.#buckets[this.#indexOf(id)]!.nodes.find((node) => idsEqual(node.id, id));
    return entry && this.#snapshot(entry, this.#now());
  }

  /**
   * Lists the nodes closest to a target by XOR distance, bad nodes left out.
   *
   * @param target A 20-byte id or info hash.
   * @param count How many at most (default K).
   * @returns The contacts, closest first.
   */
  closest(target: Uint8Array, count: number = this.#k): DhtContact[] {
    const now = this.#now();
    const all: Entry[] = [];
    for (const bucket of this.#buckets) {
      for (const entry of bucket.nodes) {
        if (this.#stateOf(entry, now) !== "bad") all.push(entry);
      }
    }
    all.sort((a, b) => compareDistance(target, a.id, b.id));
    return all.slice(0, count).map(toContact);
  }

  /**
   * Lists every node in the table with its state.
   *
   * @returns Snapshots, farthest buckets first.
   */
  nodes(): RoutingNode[] {
    const now = this.#now();
    return this.#buckets.flatMap((bucket) => bucket.nodes.map((e) => this.#snapshot(e, now)));
  }

  /**
   * Lists the questionable nodes, least recently seen first: candidates for a ping.
   *
   * @param limit How many at most.
   * @returns Their contacts.
   */
  questionable(limit: number = Infinity): DhtContact[] {
    const now = this.#now();
    return this.#buckets
      .flatMap((bucket) => bucket.nodes)
      .filter((entry) => this.#stateOf(entry, now) === "questionable")
      .sort((a, b) => a.lastSeen - b.lastSeen)
      .slice(0, limit)
      .map(toContact);
  }

  /**
   * Lists the buckets that have not changed for 15 minutes (BEP 5), each with a random id in
   * its range: a `find_node` lookup of that id refreshes the bucket. Call
   * {@linkcode touchBucket} once the lookup is started, so it is not picked again at once.
   *
   * @param now The time (default the table clock).
   * @returns The buckets to refresh.
   */
  bucketsNeedingRefresh(now: number = this.#now()): BucketRefresh[] {
    const stale: BucketRefresh[] = [];
    const last = this.#buckets.length - 1;
    this.#buckets.forEach((bucket, index) => {
      if (now - bucket.lastChanged < GOOD_NODE_MS) return;
      const target = idWithPrefix(this.#ownId, index, {
        exact: index !== last,
        random: this.#random,
      });
      stale.push({ index, target });
    });
    return stale;
  }

  /**
   * Marks the bucket whose range holds `id` as changed now.
   *
   * @param id An id in the bucket's range (such as a refresh target).
   */
  touchBucket(id: Uint8Array): void {
    if (id.length === 20) this.#buckets[this.#indexOf(id)]!.lastChanged = this.#now();
  }

  /**
   * Exports the table for persistence: our id and the nodes that are not bad.
   *
   * @returns JSON-ready state.
   */
  toJSON(): RoutingTableState {
    const now = this.#now();
    const nodes: RoutingTableState["nodes"] = [];
    for (const bucket of this.#buckets) {
      for (const entry of bucket.nodes) {
        if (this.#stateOf(entry, now) === "bad") continue;
        nodes.push({ id: entry.id.toHex(), address: formatPeerAddress(entry) });
      }
    }
    return { id: this.#ownId.toHex(), nodes };
  }

  /**
   * Rebuilds a table from {@linkcode toJSON} output. Loaded nodes are questionable until they
   * answer us.
   *
   * @param state The persisted state.
   * @param options Table options.
   * @returns The table.
   * @throws {TypeError} When the state is not well-formed.
   *
   * @example Round trip
   * ```ts
   * import assert from "node:assert/strict";
   * import { RoutingTable } from "./routing_table.ts";
   *
   * const table = new RoutingTable(new Uint8Array(20));
   * table.add({ id: new Uint8Array(20).fill(1), host: "10.0.0.1", port: 6881 });
   * const copy = RoutingTable.fromJSON(JSON.parse(JSON.stringify(table)));
   * assert.deepEqual(copy.toJSON(), table.toJSON());
   * assert.equal(copy.nodes()[0]?.state, "questionable");
   * ```
   */
  static fromJSON(state: RoutingTableState, options: RoutingTableOptions = {}): RoutingTable {
    if (typeof state !== "object" || state === null || !Array.isArray(state.nodes)) {
      throw new TypeError("Cannot load routing table: expected { id, nodes }");
    }
    const table = new RoutingTable(parseHexId(state.id, "id"), options);
    for (const [i, node] of state.nodes.entries()) {
      if (typeof node !== "object" || node === null || typeof node.address !== "string") {
        throw new TypeError(`Cannot load routing table: node ${i} is not { id, address }`);
      }
      const { host, port } = parsePeerAddress(node.address);
      table.add({ id: parseHexId(node.id, `nodes[${i}].id`), host, port });
    }
    return table;
  }

  #indexOf(id: Uint8Array): number {
    return Math.min(commonPrefixLength(this.#ownId, id), this.#buckets.length - 1);
  }

  #touch(
    entry: Entry,
    contact: DhtContact,
    now: number,
    options: { responded?: boolean; queried?: boolean },
  ): void {
    entry.lastSeen = now;
    if (options.responded) {
      entry.host = contact.host;
      entry.port = contact.port;
      entry.lastResponse = now;
      entry.failures = 0;
    }
    if (options.queried) entry.lastQuery = now;
  }

  #cache(bucket: Bucket, entry: Entry): void {
    bucket.replacements.push(entry);
    if (bucket.replacements.length > this.#replacementSize) bucket.replacements.shift();
  }

  #split(): void {
    const last = this.#buckets.length - 1;
    const old = this.#buckets[last]!;
    const next: Bucket = { nodes: [], replacements: [], lastChanged: old.lastChanged };
    const stays = (entry: Entry) => commonPrefixLength(this.#ownId, entry.id) === last;
    next.nodes = old.nodes.filter((entry) => !stays(entry));
    next.replacements = old.replacements.filter((entry) => !stays(entry));
    old.nodes = old.nodes.filter(stays);
    old.replacements = old.replacements.filter(stays);
    this.#buckets.push(next);
  }

  #stateOf(entry: Entry, now: number): NodeState {
    if (entry.failures >= this.#maxFailures) return "bad";
    if (entry.lastResponse === undefined) return "questionable";
    if (now - entry.lastResponse < GOOD_NODE_MS) return "good";
    if (entry.lastQuery !== undefined && now - entry.lastQuery < GOOD_NODE_MS) return "good";
    return "questionable";
  }

  #snapshot(entry: Entry, now: number): RoutingNode {
    const node: RoutingNode = {
      id: entry.id.slice(),
      host: entry.host,
      port: entry.port,
      state: this.#stateOf(entry, now),
      failures: entry.failures,
    };
    if (entry.lastResponse !== undefined) node.lastResponse = entry.lastResponse;
    if (entry.lastQuery !== undefined) node.lastQuery = entry.lastQuery;
    return node;
  }
}

function toContact(entry: Entry): DhtContact {
  return { id: entry.id.slice(), host: entry.host, port: entry.port };
}

function parseHexId(value: unknown, what: string): Uint8Array {
  if (typeof value !== "string" || !/^[0-9a-fA-F]{40}$/.test(value)) {
    throw new TypeError(`Cannot load routing table: ${what} is not 40 hex digits`);
  }
  return Uint8Array.fromHex(value);
}
