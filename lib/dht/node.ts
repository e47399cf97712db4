/**
 * A Mainline DHT node (BEP 5) on a UDP socket (`node:dgram`): answers other nodes' queries and
 * runs iterative lookups to find and announce peers.
 *
 * @module
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { isIPv4, type PeerAddress } from "../peer/address.ts";
import type { DhtContact } from "./_compact.ts";
import {
  decodeKrpc,
  encodeKrpc,
  KRPC_ERROR_CODES,
  KrpcDecodeError,
  type KrpcMessage,
  type KrpcQuery,
  type KrpcResponse,
} from "./krpc.ts";
import { Lookup, type LookupResult } from "./lookup.ts";
import { idsEqual, randomNodeId } from "./node_id.ts";
import { PeerStore, type PeerStoreOptions } from "./peer_store.ts";
import { RateLimiter, type RateLimiterOptions } from "./rate_limiter.ts";
import { type AddResult, K, RoutingTable } from "./routing_table.ts";
import type { DhtState } from "./state_file.ts";
import { TokenManager } from "./tokens.ts";

/** Our KRPC client version `v`: "DT" and version 0.1. */
const VERSION = Uint8Array.of(0x44, 0x54, 0x00, 0x01);

/** Most peers put in one `get_peers` response, to stay well under a UDP datagram's size. */
const MAX_VALUES = 50;

/** Tokens from a `get_peers` lookup are reused for `announce_peer` for this long. */
const TOKEN_REUSE_MS = 4 * 60 * 1000;

/** Timer functions, injectable for tests. */
export interface DhtTimers {
  /** Schedules `callback` after `ms` milliseconds. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancels a handle from `setTimeout`. */
  clearTimeout(handle: unknown): void;
}

/** Options of {@linkcode DhtNode.create}. */
export interface DhtNodeOptions {
  /** UDP port to bind (default 0: any free port). */
  port?: number;
  /** Address to bind (default `0.0.0.0`). */
  host?: string;
  /** Our 20-byte node id (default: the id in `state`, else random). */
  nodeId?: Uint8Array;
  /** Nodes to contact first (such as `router.bittorrent.com:6881`). */
  bootstrap?: PeerAddress[];
  /** A routing table saved earlier by {@linkcode DhtNode.toJSON}. */
  state?: DhtState;
  /** Per-IP limit of incoming queries, or false for none (default 50/s, bursts of 100). */
  rateLimit?: Pick<RateLimiterOptions, "perSecond" | "burst"> | false;
  /** Clock in milliseconds (default `Date.now`). */
  now?: () => number;
  /** Timer functions (default the global ones). */
  timers?: DhtTimers;
  /** How long to wait for an answer to a query (default 2000 ms). */
  queryTimeoutMs?: number;
  /** Bucket size and lookup width (default 8). */
  k?: number;
  /** Lookup queries in flight (default 3). */
  alpha?: number;
  /** Period of table upkeep (stale bucket refresh, pings), or false for none (default 60 s). */
  maintenanceIntervalMs?: number | false;
  /** Bounds of the announced-peer store. */
  peerStore?: Omit<PeerStoreOptions, "now">;
  /** Receives errors of background work (upkeep, pings, sends); default: counted in `stats`. */
  onError?: (error: Error) => void;
}

/** Options of the lookups of {@linkcode DhtNode}. */
export interface DhtLookupOptions {
  /** Aborts the lookup. */
  signal?: AbortSignal;
}

/** What {@linkcode DhtNode.announcePeer} did. */
export interface AnnounceResult {
  /** Peers found by the `get_peers` lookup that preceded the announce. */
  peers: PeerAddress[];
  /** The nodes that accepted our `announce_peer`. */
  storedAt: DhtContact[];
}

/** Counters of a {@linkcode DhtNode}. */
export interface DhtStats {
  /** Queries we sent. */
  queriesSent: number;
  /** Queries we received and answered (errors included). */
  queriesReceived: number;
  /** Incoming queries dropped by the rate limit. */
  rateLimited: number;
  /** Packets that could not be decoded. */
  malformed: number;
  /** Our queries that got no answer in time. */
  timeouts: number;
  /** Errors of background work. */
  errors: number;
}

/**
 * A query that failed: the remote node answered with a KRPC error (`code` set), sent a
 * malformed answer, or did not answer in time (`timeout`).
 */
export class DhtQueryError extends Error {
  /** The KRPC error code the node sent, if it sent one. */
  readonly code: number | undefined;
  /** True when the node did not answer in time. */
  readonly timeout: boolean;
  /** Whom we asked. */
  readonly address: PeerAddress;

  /**
   * Makes the error.
   *
   * @param message What went wrong.
   * @param address Whom we asked.
   * @param options Remote error code, timeout flag, cause.
   */
  constructor(
    message: string,
    address: PeerAddress,
    options: { code?: number; timeout?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DhtQueryError";
    this.address = { host: address.host, port: address.port };
    this.code = options.code;
    this.timeout = options.timeout ?? false;
  }
}

type QueryArgs =
  | { method: "ping" }
  | { method: "find_node"; target: Uint8Array }
  | { method: "get_peers"; infoHash: Uint8Array }
  | {
    method: "announce_peer";
    infoHash: Uint8Array;
    port: number;
    token: Uint8Array;
    impliedPort: boolean;
  };

interface Pending {
  address: PeerAddress;
  resolve(response: KrpcResponse): void;
  reject(error: Error): void;
}

const DEFAULT_TIMERS: DhtTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/**
 * A Mainline DHT node (BEP 5). It answers `ping`, `find_node`, `get_peers` and `announce_peer`
 * (checking write tokens, limiting each IP's query rate), keeps a k-bucket routing table, and
 * runs iterative lookups: {@linkcode getPeers}, {@linkcode announcePeer},
 * {@linkcode findNode}. Close it with {@linkcode close}.
 *
 * @example Two nodes on loopback
 * ```ts
 * import assert from "node:assert/strict";
 * import { DhtNode } from "./node.ts";
 *
 * const a = await DhtNode.create({ host: "127.0.0.1" });
 * const b = await DhtNode.create({ host: "127.0.0.1", bootstrap: [a.address] });
 * await b.bootstrap();
 * const infoHash = new Uint8Array(20).fill(0xab);
 * await b.announcePeer(infoHash, 6881);
 * assert.deepEqual(await a.getPeers(infoHash), [{ host: "127.0.0.1", port: 6881 }]);
 * await Promise.all([a.close(), b.close()]);
 * ```
 */
export class DhtNode {
  readonly #socket: Socket;
  readonly #id: Uint8Array;
  readonly #table: RoutingTable;
  readonly #tokens: TokenManager;
  readonly #store: PeerStore;
  readonly #limiter: RateLimiter | undefined;
  readonly #now: () => number;
  readonly #timers: DhtTimers;
  readonly #timeoutMs: number;
  readonly #k: number;
  readonly #alpha: number;
  readonly #bootstrap: PeerAddress[];
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #pending = new Map<number, Pending>();
  readonly #announceTokens = new Map<
    string,
    { at: number; results: LookupResult[]; peers: PeerAddress[] }
  >();
  readonly #pinging = new Set<string>();
  readonly #closing = new AbortController();
  readonly #background = new Set<Promise<unknown>>();
  readonly #stats: DhtStats = {
    queriesSent: 0,
    queriesReceived: 0,
    rateLimited: 0,
    malformed: 0,
    timeouts: 0,
    errors: 0,
  };
  #address: PeerAddress;
  #nextTransaction: number;
  #maintenance: unknown;
  #closed: Promise<void> | undefined;

  private constructor(socket: Socket, table: RoutingTable, options: DhtNodeOptions) {
    this.#socket = socket;
    this.#table = table;
    this.#id = table.ownId;
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? DEFAULT_TIMERS;
    this.#tokens = new TokenManager({ now: this.#now });
    this.#store = new PeerStore({ ...options.peerStore, now: this.#now });
    this.#limiter = options.rateLimit === false
      ? undefined
      : new RateLimiter({ ...options.rateLimit, now: this.#now });
    this.#timeoutMs = options.queryTimeoutMs ?? 2000;
    this.#k = options.k ?? K;
    this.#alpha = options.alpha ?? 3;
    this.#bootstrap = (options.bootstrap ?? []).map(({ host, port }) => ({ host, port }));
    this.#onError = options.onError;
    const bound = socket.address();
    this.#address = { host: bound.address, port: bound.port };
    this.#nextTransaction = crypto.getRandomValues(new Uint16Array(1))[0]!;
    socket.on("message", (message: Uint8Array, remote: RemoteInfo) => {
      const bytes = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
      try {
        this.#onPacket(bytes, { host: remote.address, port: remote.port });
      } catch (error) {
        this.#report(error);
      }
    });
    socket.on("error", (error: Error) => this.#report(error));
    const interval = options.maintenanceIntervalMs ?? 60_000;
    if (interval !== false) this.#scheduleMaintenance(interval);
  }

  /**
   * Opens a DHT node: binds the UDP socket and restores a saved routing table. Call
   * {@linkcode bootstrap} next to join the network.
   *
   * @param options Address, id, bootstrap nodes, saved state, limits, clock and timers.
   * @returns The node.
   * @throws {TypeError} When `nodeId` is not 20 bytes or `state` is malformed.
   */
  static async create(options: DhtNodeOptions = {}): Promise<DhtNode> {
    const now = options.now ?? Date.now;
    const tableOptions = { k: options.k ?? K, now };
    let table: RoutingTable;
    if (options.state && (!options.nodeId || options.state.id === options.nodeId.toHex())) {
      table = RoutingTable.fromJSON(options.state, tableOptions);
    } else {
      const id = options.nodeId ?? randomNodeId();
      if (id.length !== 20) {
        throw new TypeError(`Cannot create DHT node: id has ${id.length} bytes, expected 20`);
      }
      table = new RoutingTable(id, tableOptions);
      // Another id: keep the saved nodes, not their placement.
      for (const node of options.state ? RoutingTable.fromJSON(options.state).nodes() : []) {
        table.add(node);
      }
    }
    const socket = createSocket("udp4");
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        socket.bind(options.port ?? 0, options.host ?? "0.0.0.0", () => {
          socket.off("error", reject);
          resolve();
        });
      });
    } catch (error) {
      await new Promise<void>((resolve) => socket.close(() => resolve()));
      throw error;
    }
    return new DhtNode(socket, table, options);
  }

  /** Our 20-byte node id. */
  get id(): Uint8Array {
    return this.#id.slice();
  }

  /** The bound UDP address (host and port). */
  get address(): PeerAddress {
    return { ...this.#address };
  }

  /** Number of nodes in the routing table. */
  get nodeCount(): number {
    return this.#table.size;
  }

  /** A snapshot of the counters. */
  get stats(): DhtStats {
    return { ...this.#stats };
  }

  /**
   * Joins the network: asks each bootstrap node (and saved node) for the nodes closest to our
   * id, then runs a `find_node` lookup of our own id to fill the routing table.
   *
   * @param options `signal` aborts.
   * @returns The number of nodes in the routing table afterwards.
   */
  async bootstrap(options: DhtLookupOptions = {}): Promise<number> {
    await this.#contactBootstrap(this.#id, options.signal);
    await this.findNode(this.#id, options);
    return this.#table.size;
  }

  /**
   * Pings a node, adding it to the routing table when it answers.
   *
   * @param address The node's UDP address.
   * @param options `signal` aborts.
   * @returns The node's id.
   * @throws {DhtQueryError} When it does not answer properly.
   */
  async ping(address: PeerAddress, options: DhtLookupOptions = {}): Promise<Uint8Array> {
    const response = await this.#query(address, { method: "ping" }, options.signal);
    return response.id.slice();
  }

  /**
   * Runs an iterative `find_node` lookup (BEP 5).
   *
   * @param target The id searched for.
   * @param options `signal` aborts.
   * @returns The closest nodes that answered, closest first (at most K).
   * @throws {TypeError} When `target` is not 20 bytes.
   */
  async findNode(target: Uint8Array, options: DhtLookupOptions = {}): Promise<DhtContact[]> {
    checkHash(target, "target");
    const lookup = await this.#lookup(target, "find_node", options.signal);
    return lookup.closest().map((result) => result.contact);
  }

  /**
   * Finds peers of a torrent with an iterative `get_peers` lookup (BEP 5). The tokens collected
   * are kept for a following {@linkcode announcePeer}.
   *
   * @param infoHash The torrent's 20-byte info hash.
   * @param options `signal` aborts.
   * @returns The distinct peers found.
   * @throws {TypeError} When `infoHash` is not 20 bytes.
   */
  async getPeers(infoHash: Uint8Array, options: DhtLookupOptions = {}): Promise<PeerAddress[]> {
    checkHash(infoHash, "info hash");
    const lookup = await this.#lookup(infoHash, "get_peers", options.signal);
    return lookup.peers;
  }

  /**
   * Finds peers like {@linkcode getPeers}, streaming each as soon as a node returns it.
   *
   * @param infoHash The torrent's 20-byte info hash.
   * @param options `signal` aborts (the stream errors with its reason).
   * @returns A stream of distinct peers that closes when the lookup ends.
   * @throws {TypeError} When `infoHash` is not 20 bytes.
   */
  lookupPeers(infoHash: Uint8Array, options: DhtLookupOptions = {}): ReadableStream<PeerAddress> {
    checkHash(infoHash, "info hash");
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    return new ReadableStream<PeerAddress>({
      start: (controller) => {
        this.#lookup(infoHash, "get_peers", signal, (peers) => {
          if (stop.signal.aborted) return; // cancelled: the stream takes no more
          for (const peer of peers) controller.enqueue(peer);
        }).then(
          () => stop.signal.aborted || controller.close(),
          (error) => controller.error(error),
        );
      },
      cancel: (reason) => stop.abort(reason),
    });
  }

  /**
   * Announces that we have a peer for a torrent (BEP 5): a `get_peers` lookup, then
   * `announce_peer` to the closest nodes that gave a token. The tokens of a `getPeers` call
   * made less than 4 minutes before are used instead of a new lookup.
   *
   * @param infoHash The torrent's 20-byte info hash.
   * @param port Our peer's TCP port.
   * @param options `impliedPort`: ask nodes to use our UDP source port instead; `signal`.
   * @returns The peers found and the nodes that stored our announce.
   * @throws {TypeError} When `infoHash` is not 20 bytes.
   * @throws {RangeError} When `port` is not 1 to 65535.
   */
  async announcePeer(
    infoHash: Uint8Array,
    port: number,
    options: DhtLookupOptions & { impliedPort?: boolean } = {},
  ): Promise<AnnounceResult> {
    checkHash(infoHash, "info hash");
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`Cannot announce peer: port ${port} is out of range`);
    }
    this.#forgetOldTokens();
    let remembered = this.#announceTokens.get(infoHash.toHex());
    if (!remembered?.results.some((result) => result.token)) {
      await this.#lookup(infoHash, "get_peers", options.signal);
      remembered = this.#announceTokens.get(infoHash.toHex())!;
    }
    const peers = remembered.peers.map((peer) => ({ ...peer }));
    const targets = remembered.results.filter((result) => result.token).slice(0, this.#k);
    const storedAt: DhtContact[] = [];
    await Promise.all(targets.map(async ({ contact, token }) => {
      try {
        await this.#query(contact, {
          method: "announce_peer",
          infoHash,
          port,
          token: token!,
          impliedPort: options.impliedPort ?? false,
        }, options.signal);
        storedAt.push(contact);
      } catch (error) {
        // A node that refuses or misses one announce stays usable; the others carry it.
        if (!(error instanceof DhtQueryError)) throw error;
      }
    }));
    options.signal?.throwIfAborted();
    return { peers, storedAt };
  }

  /**
   * Exports the routing table for persistence (see `saveDhtState`).
   *
   * @returns Our id and the known nodes, as JSON-ready data.
   */
  toJSON(): DhtState {
    return this.#table.toJSON();
  }

  /**
   * Closes the node: stops lookups and timers, fails queries in flight, closes the socket.
   *
   * @returns Once the socket is closed.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort(new DOMException("DHT node is closed", "AbortError"));
      if (this.#maintenance !== undefined) this.#timers.clearTimeout(this.#maintenance);
      this.#maintenance = undefined;
      await Promise.allSettled(this.#background);
      await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
    })();
    return this.#closed;
  }

  /** `Symbol.asyncDispose` calls {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- Lookups ----

  async #lookup(
    target: Uint8Array,
    method: "find_node" | "get_peers",
    userSignal: AbortSignal | undefined,
    onPeers?: (peers: PeerAddress[]) => void,
  ): Promise<Lookup> {
    const signal = userSignal
      ? AbortSignal.any([userSignal, this.#closing.signal])
      : this.#closing.signal;
    signal.throwIfAborted();
    let bootstrapped = this.#table.size === 0;
    if (bootstrapped) await this.#contactBootstrap(target, signal);
    for (;;) {
      const lookup = await this.#iterate(target, method, signal, onPeers);
      // Every known node failed: start over from the bootstrap nodes, once.
      if (lookup.closest().length > 0 || bootstrapped || this.#bootstrap.length === 0) {
        return lookup;
      }
      bootstrapped = true;
      await this.#contactBootstrap(target, signal);
    }
  }

  async #iterate(
    target: Uint8Array,
    method: "find_node" | "get_peers",
    signal: AbortSignal,
    onPeers: ((peers: PeerAddress[]) => void) | undefined,
  ): Promise<Lookup> {
    const lookup = new Lookup(target, this.#table.closest(target, this.#k * 2), {
      k: this.#k,
      alpha: this.#alpha,
      ownId: this.#id,
    });
    const args: QueryArgs = method === "find_node"
      ? { method, target }
      : { method, infoHash: target };
    if (method === "get_peers") {
      // Peers announced to this very node count too.
      const local = lookup.respond(this.#id, { values: this.#store.get(target) });
      if (local.length > 0) onPeers?.(local);
    }
    const inflight = new Set<Promise<void>>();
    while (!lookup.done) {
      for (const contact of lookup.next()) {
        const promise: Promise<void> = this.#query(contact, args, signal).then(
          (response) => {
            const peers = lookup.respond(contact.id, response);
            if (peers.length > 0) onPeers?.(peers);
          },
          (error) => {
            lookup.fail(contact.id);
            if (error instanceof DhtQueryError && error.timeout) this.#table.markFailed(contact.id);
            if (!(error instanceof DhtQueryError) && !signal.aborted) this.#report(error);
          },
        ).finally(() => inflight.delete(promise));
        inflight.add(promise);
      }
      if (inflight.size === 0) break;
      await Promise.race(inflight);
      signal.throwIfAborted();
    }
    signal.throwIfAborted();
    if (method === "get_peers") {
      this.#announceTokens.set(target.toHex(), {
        at: this.#now(),
        results: lookup.closest(),
        peers: lookup.peers,
      });
      this.#forgetOldTokens();
    }
    return lookup;
  }

  /** Asks every bootstrap node for the nodes closest to `target`; answers fill the table. */
  async #contactBootstrap(target: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
    const results = await Promise.allSettled(
      this.#bootstrap.map((address) =>
        this.#query(address, { method: "find_node", target }, signal)
      ),
    );
    for (const result of results) {
      if (result.status === "fulfilled") {
        for (const node of result.value.nodes ?? []) this.#learn(node);
      } else if (!(result.reason instanceof DhtQueryError)) {
        signal?.throwIfAborted();
        throw result.reason;
      }
    }
  }

  #forgetOldTokens(): void {
    const now = this.#now();
    for (const [key, { at }] of this.#announceTokens) {
      if (now - at > TOKEN_REUSE_MS) this.#announceTokens.delete(key);
    }
  }

  // ---- Queries ----

  #query(address: PeerAddress, args: QueryArgs, signal?: AbortSignal): Promise<KrpcResponse> {
    return new Promise<KrpcResponse>((resolve, reject) => {
      const abortSignal = signal ?? this.#closing.signal;
      if (this.#closing.signal.aborted) return reject(this.#closing.signal.reason);
      if (abortSignal.aborted) return reject(abortSignal.reason);
      if (!isIPv4(address.host) && address.host.includes(":")) {
        return reject(
          new DhtQueryError(`Cannot query "${address.host}": IPv6 is not supported`, address),
        );
      }
      const transaction = this.#allocateTransaction();
      const onAbort = () =>
        settle(() => reject((signal?.aborted ? signal : this.#closing.signal).reason));
      const timer = this.#timers.setTimeout(() => {
        this.#stats.timeouts++;
        settle(() =>
          reject(new DhtQueryError(`Query "${args.method}" timed out`, address, { timeout: true }))
        );
      }, this.#timeoutMs);
      const settle = (then: () => void) => {
        if (!this.#pending.delete(transaction)) return;
        this.#timers.clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#closing.signal.removeEventListener("abort", onAbort);
        then();
      };
      this.#pending.set(transaction, {
        address: { host: address.host, port: address.port },
        resolve: (response) => settle(() => resolve(response)),
        reject: (error) => settle(() => reject(error)),
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#closing.signal.addEventListener("abort", onAbort, { once: true });
      const transactionId = Uint8Array.of(transaction >> 8, transaction & 0xff);
      const query = { type: "query", transactionId, id: this.#id, version: VERSION, ...args };
      this.#stats.queriesSent++;
      this.#send(encodeKrpc(query as KrpcQuery), address, (error) => {
        const pending = this.#pending.get(transaction);
        pending?.reject(
          new DhtQueryError(`Cannot send "${args.method}" query`, address, { cause: error }),
        );
      });
    });
  }

  #allocateTransaction(): number {
    for (;;) {
      const transaction = this.#nextTransaction;
      this.#nextTransaction = (this.#nextTransaction + 1) & 0xffff;
      if (!this.#pending.has(transaction)) return transaction;
    }
  }

  #send(bytes: Uint8Array, address: PeerAddress, onError?: (error: Error) => void): void {
    if (this.#closing.signal.aborted) return;
    const fail = (error: Error) => onError ? onError(error) : this.#report(error);
    try {
      this.#socket.send(bytes, address.port, address.host, (error: Error | null) => {
        if (error) fail(error);
      });
    } catch (error) {
      // node:dgram throws synchronously for a bad port or address.
      fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  // ---- Incoming packets ----

  #onPacket(bytes: Uint8Array, from: PeerAddress): void {
    let message: KrpcMessage;
    try {
      message = decodeKrpc(bytes);
    } catch (error) {
      if (!(error instanceof KrpcDecodeError)) throw error;
      this.#stats.malformed++;
      this.#onMalformed(error, from);
      return;
    }
    if (message.type === "query") {
      if (this.#limiter && !this.#limiter.take(from.host)) {
        this.#stats.rateLimited++;
        return;
      }
      this.#stats.queriesReceived++;
      this.#onQuery(message, from);
      return;
    }
    const pending = this.#takePending(message.transactionId, from);
    if (!pending) return;
    if (message.type === "response") {
      this.#learn({ id: message.id, host: from.host, port: from.port }, { responded: true });
      pending.resolve(message);
    } else {
      pending.reject(
        new DhtQueryError(`Query failed: error ${message.code} "${message.message}"`, from, {
          code: message.code,
        }),
      );
    }
  }

  #onMalformed(error: KrpcDecodeError, from: PeerAddress): void {
    const { transactionId, kind } = error;
    if (transactionId === undefined) return; // Nothing to answer to: dropped.
    if (kind === "r" || kind === "e") {
      const pending = this.#takePending(transactionId, from);
      pending?.reject(new DhtQueryError("Query failed: malformed answer", from, { cause: error }));
      return;
    }
    if (this.#limiter && !this.#limiter.take(from.host)) {
      this.#stats.rateLimited++;
      return;
    }
    this.#reply({ type: "error", transactionId, code: error.code, message: error.message }, from);
  }

  #takePending(transactionId: Uint8Array, from: PeerAddress): Pending | undefined {
    if (transactionId.length !== 2) return undefined;
    const pending = this.#pending.get((transactionId[0]! << 8) | transactionId[1]!);
    if (!pending) return undefined;
    // An answer must come from where the query went (a hostname matches by port only).
    if (isIPv4(pending.address.host) && pending.address.host !== from.host) return undefined;
    if (pending.address.port !== from.port) return undefined;
    return pending;
  }

  #onQuery(query: KrpcQuery, from: PeerAddress): void {
    if (!query.readOnly) {
      this.#learn({ id: query.id, host: from.host, port: from.port }, { queried: true });
    }
    const base = {
      type: "response" as const,
      transactionId: query.transactionId,
      id: this.#id,
      version: VERSION,
      ip: from, // BEP 42: tells the querier its address as seen from here
    };
    switch (query.method) {
      case "ping":
        return this.#reply(base, from);
      case "find_node":
        return this.#reply({ ...base, nodes: this.#closestFor(query.target, query.id) }, from);
      case "get_peers": {
        const response: KrpcResponse = {
          ...base,
          token: this.#tokens.issue(from.host),
          nodes: this.#closestFor(query.infoHash, query.id),
        };
        const values = this.#store.get(query.infoHash, { limit: MAX_VALUES });
        if (values.length > 0) response.values = values;
        return this.#reply(response, from);
      }
      case "announce_peer": {
        if (!this.#tokens.verify(from.host, query.token)) {
          return this.#reply({
            type: "error",
            transactionId: query.transactionId,
            code: KRPC_ERROR_CODES.protocol,
            message: "Bad token",
          }, from);
        }
        const port = query.impliedPort ? from.port : query.port;
        this.#store.add(query.infoHash, { host: from.host, port });
        return this.#reply(base, from);
      }
    }
  }

  #closestFor(target: Uint8Array, asker: Uint8Array): DhtContact[] {
    return this.#table.closest(target, this.#k + 1)
      .filter((node) => !idsEqual(node.id, asker) && isIPv4(node.host))
      .slice(0, this.#k);
  }

  #reply(message: KrpcMessage, to: PeerAddress): void {
    this.#send(encodeKrpc(message), to);
  }

  // ---- Routing table upkeep ----

  /** Adds a contact to the table; when its bucket is full, pings a questionable node there. */
  #learn(contact: DhtContact, options: { responded?: boolean; queried?: boolean } = {}): void {
    if (!isIPv4(contact.host) || contact.port === 0) return;
    const result: AddResult = this.#table.add(contact, options);
    if (result.status !== "cached") return;
    const stale = result.questionable.find((node) => !this.#pinging.has(node.id.toHex()));
    if (stale) this.#pingInBackground(stale);
  }

  #pingInBackground(contact: DhtContact): void {
    const key = contact.id.toHex();
    if (this.#pinging.has(key) || this.#closing.signal.aborted) return;
    this.#pinging.add(key);
    this.#spawn(
      this.#query(contact, { method: "ping" }).catch((error) => {
        if (error instanceof DhtQueryError) {
          if (error.timeout) this.#table.markFailed(contact.id);
        } else if (!this.#closing.signal.aborted) throw error;
      }).finally(() => this.#pinging.delete(key)),
    );
  }

  #scheduleMaintenance(interval: number): void {
    this.#maintenance = this.#timers.setTimeout(() => {
      this.#maintenance = undefined;
      if (this.#closing.signal.aborted) return;
      this.#store.prune();
      this.#forgetOldTokens();
      for (const contact of this.#table.questionable(2)) this.#pingInBackground(contact);
      const refresh = this.#table.bucketsNeedingRefresh()[0];
      if (refresh) {
        this.#table.touchBucket(refresh.target);
        this.#spawn(
          this.findNode(refresh.target).catch((error) => {
            if (!this.#closing.signal.aborted) throw error;
          }),
        );
      }
      this.#scheduleMaintenance(interval);
    }, interval);
  }

  #spawn(task: Promise<unknown>): void {
    const tracked = task.catch((error) => this.#report(error)).finally(() => {
      this.#background.delete(tracked);
    });
    this.#background.add(tracked);
  }

  #report(error: unknown): void {
    this.#stats.errors++;
    const wrapped = error instanceof Error ? error : new Error(String(error));
    this.#onError?.(wrapped);
  }
}

function checkHash(bytes: Uint8Array, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 20) {
    throw new TypeError(`Cannot look up ${what}: expected 20 bytes`);
  }
}
