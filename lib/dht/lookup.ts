/**
 * The iterative lookup of the Mainline DHT (BEP 5, Kademlia): a pure state machine that says
 * whom to query next and when the search is over. The caller sends the queries, applies its own
 * timeouts and reports answers and failures.
 *
 * @module
 */
import { formatPeerAddress, type PeerAddress } from "../peer/address.ts";
import type { DhtContact } from "./_compact.ts";
import { K } from "./routing_table.ts";
import { compareDistance, idsEqual } from "./node_id.ts";

/** Queries in flight at once (Kademlia alpha). */
export const ALPHA = 3;

/** Options of {@linkcode Lookup}. */
export interface LookupOptions {
  /** How many closest nodes must answer before the lookup ends (default {@linkcode K}). */
  k?: number;
  /** Queries in flight at once (default {@linkcode ALPHA}). */
  alpha?: number;
  /** Candidates remembered at most; the farthest are dropped (default `k * 8`). */
  maxCandidates?: number;
  /** An id never to query (our own). */
  ownId?: Uint8Array;
}

/** What a queried node answered, as far as the lookup cares. */
export interface LookupAnswer {
  /** Closer nodes it knows (`nodes`). */
  nodes?: readonly DhtContact[];
  /** Peers of the info hash (`values`, `get_peers` only). */
  values?: readonly PeerAddress[];
  /** Its write token (`get_peers` only). */
  token?: Uint8Array;
}

/** A node that answered, with the token it gave (for `announce_peer`). */
export interface LookupResult {
  /** The node. */
  contact: DhtContact;
  /** Its token, if it gave one. */
  token?: Uint8Array;
}

type State = "pending" | "querying" | "responded" | "failed";

interface Candidate {
  contact: DhtContact;
  state: State;
  token: Uint8Array | undefined;
}

/**
 * An iterative lookup towards a target id (BEP 5): up to `alpha` queries in flight, always to
 * the closest nodes not yet asked; it ends when the `k` closest nodes that did not fail have all
 * answered, which is also when no closer nodes turn up. `get_peers` values and tokens are
 * collected along the way.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Lookup } from "./lookup.ts";
 *
 * const node = (byte: number) => ({ id: new Uint8Array(20).fill(byte), host: "10.0.0.1", port: byte });
 * const lookup = new Lookup(new Uint8Array(20), [node(9)]);
 * assert.deepEqual(lookup.next().map((c) => c.port), [9]);
 * lookup.respond(node(9).id, { nodes: [node(1)], values: [{ host: "10.0.0.2", port: 6881 }] });
 * assert.deepEqual(lookup.next().map((c) => c.port), [1]);
 * lookup.fail(node(1).id);
 * assert.equal(lookup.done, true);
 * assert.deepEqual(lookup.peers, [{ host: "10.0.0.2", port: 6881 }]);
 * ```
 */
export class Lookup {
  readonly #target: Uint8Array;
  readonly #k: number;
  readonly #alpha: number;
  readonly #maxCandidates: number;
  readonly #ownId: Uint8Array | undefined;
  /** Sorted by distance to the target, closest first. */
  #candidates: Candidate[] = [];
  readonly #byId = new Map<string, Candidate>();
  readonly #addresses = new Set<string>();
  readonly #peers = new Map<string, PeerAddress>();
  #querying = 0;

  /**
   * Starts a lookup; nothing is sent until {@linkcode next} is called.
   *
   * @param target The id or info hash searched for.
   * @param seeds The nodes to start from (typically the routing table's closest).
   * @param options Sizes and our own id.
   */
  constructor(target: Uint8Array, seeds: readonly DhtContact[], options: LookupOptions = {}) {
    this.#target = target.slice();
    this.#k = options.k ?? K;
    this.#alpha = options.alpha ?? ALPHA;
    this.#maxCandidates = options.maxCandidates ?? this.#k * 8;
    this.#ownId = options.ownId;
    this.#addAll(seeds);
  }

  /** The target searched for. */
  get target(): Uint8Array {
    return this.#target.slice();
  }

  /** True once the `k` closest live candidates have answered (or none are left). */
  get done(): boolean {
    let seen = 0;
    for (const candidate of this.#candidates) {
      if (candidate.state === "failed") continue;
      if (candidate.state !== "responded") return false;
      if (++seen >= this.#k) break;
    }
    return true;
  }

  /** Queries in flight. */
  get inflight(): number {
    return this.#querying;
  }

  /** The distinct peers collected from `values` so far. */
  get peers(): PeerAddress[] {
    return [...this.#peers.values()].map((peer) => ({ ...peer }));
  }

  /**
   * Picks the next nodes to query (and marks them in flight): the closest not yet asked among
   * the `k` closest live candidates, as long as fewer than `alpha` queries are in flight.
   *
   * @returns The contacts to query now; empty when the caller should wait or the lookup is done.
   */
  next(): DhtContact[] {
    const out: DhtContact[] = [];
    let seen = 0;
    for (const candidate of this.#candidates) {
      if (this.#querying >= this.#alpha || seen >= this.#k) break;
      if (candidate.state === "failed") continue;
      seen++;
      if (candidate.state !== "pending") continue;
      candidate.state = "querying";
      this.#querying++;
      out.push({ ...candidate.contact });
    }
    return out;
  }

  /**
   * Records a node's answer: its closer nodes become candidates, values and token are kept.
   *
   * @param id The id of the node queried.
   * @param answer What it answered.
   * @returns The peers among `values` not seen before.
   */
  respond(id: Uint8Array, answer: LookupAnswer = {}): PeerAddress[] {
    const candidate = this.#byId.get(id.toHex());
    if (candidate && candidate.state !== "responded") {
      if (candidate.state === "querying") this.#querying--;
      candidate.state = "responded";
      candidate.token = answer.token;
    }
    const fresh: PeerAddress[] = [];
    for (const peer of answer.values ?? []) {
      const key = formatPeerAddress(peer);
      if (this.#peers.has(key)) continue;
      this.#peers.set(key, { host: peer.host, port: peer.port });
      fresh.push({ host: peer.host, port: peer.port });
    }
    if (answer.nodes) this.#addAll(answer.nodes);
    return fresh;
  }

  /**
   * Records that a node did not answer (timeout or error): it is skipped from now on.
   *
   * @param id The id of the node queried.
   */
  fail(id: Uint8Array): void {
    const candidate = this.#byId.get(id.toHex());
    if (!candidate || candidate.state === "failed" || candidate.state === "responded") return;
    if (candidate.state === "querying") this.#querying--;
    candidate.state = "failed";
  }

  /**
   * Lists the nodes that answered, closest first, with their tokens.
   *
   * @param count How many at most (default `k`).
   * @returns The closest answering nodes.
   */
  closest(count: number = this.#k): LookupResult[] {
    const out: LookupResult[] = [];
    for (const candidate of this.#candidates) {
      if (out.length >= count) break;
      if (candidate.state !== "responded") continue;
      const result: LookupResult = { contact: { ...candidate.contact } };
      if (candidate.token) result.token = candidate.token;
      out.push(result);
    }
    return out;
  }

  #addAll(contacts: readonly DhtContact[]): void {
    let added = false;
    for (const contact of contacts) {
      if (contact.id.length !== 20 || contact.port === 0) continue;
      if (this.#ownId && idsEqual(contact.id, this.#ownId)) continue;
      const key = contact.id.toHex();
      const address = formatPeerAddress(contact);
      // One candidate per id and per address: a node cannot pose as many.
      if (this.#byId.has(key) || this.#addresses.has(address)) continue;
      const candidate: Candidate = {
        contact: { id: contact.id.slice(), host: contact.host, port: contact.port },
        state: "pending",
        token: undefined,
      };
      this.#byId.set(key, candidate);
      this.#addresses.add(address);
      this.#candidates.push(candidate);
      added = true;
    }
    if (!added) return;
    this.#candidates.sort((a, b) => compareDistance(this.#target, a.contact.id, b.contact.id));
    if (this.#candidates.length > this.#maxCandidates) {
      // Drop the farthest pending ones; keep those in flight or answered (they are accounted).
      const kept: Candidate[] = [];
      for (const candidate of this.#candidates) {
        if (kept.length < this.#maxCandidates || candidate.state !== "pending") {
          kept.push(candidate);
        } else {
          this.#byId.delete(candidate.contact.id.toHex());
        }
      }
      this.#candidates = kept;
    }
  }
}
