import { sleep } from "./_sleep.ts";
import { defaultDhtStatePath, DhtNode, loadDhtState, saveDhtState } from "../dht/mod.ts";
import type { MagnetLink } from "../metainfo/mod.ts";
import { formatPeerAddress, parsePeerAddress, type PeerAddress } from "../peer/address.ts";
import { generatePeerId } from "../peer/handshake.ts";
import { announce } from "../tracker/mod.ts";

/** The public DHT routers contacted when no other bootstrap node is given. */
export const DEFAULT_DHT_BOOTSTRAP: readonly string[] = Object.freeze([
  "router.bittorrent.com:6881",
  "dht.transmissionbt.com:6881",
  "router.utorrent.com:6881",
]);

/** Options for {@linkcode DhtPeerSource.open}. */
export interface DhtPeerSourceOptions {
  /** Nodes to join through (default: {@linkcode DEFAULT_DHT_BOOTSTRAP}). */
  bootstrap?: readonly PeerAddress[];
  /**
   * Where the routing table is loaded from and saved to on close (default
   * `defaultDhtStatePath()`: `$XDG_CACHE_HOME/denotorrent/dht.json`, else
   * `~/.cache/denotorrent/dht.json`; none when neither variable is set), or false to keep
   * nothing between runs.
   */
  statePath?: string | false;
  /** UDP port to bind (default 0: any free port). */
  port?: number;
  /** Address to bind (default `0.0.0.0`). */
  host?: string;
  /** How long to wait for a node's answer, in ms (default 2000). */
  queryTimeoutMs?: number;
  /** Receives errors of background DHT work (bootstrap, state file); default: ignored. */
  onError?: (error: unknown) => void;
}

/** Options for {@linkcode DhtPeerSource.peers}. */
export interface DhtPeersOptions {
  /** Stops the search; the iteration then ends. */
  signal?: AbortSignal;
  /** Also announce this TCP port into the DHT after each lookup (BEP 5 `announce_peer`). */
  announcePort?: number;
  /** Most time between two lookups, in ms (default 300000); the first retries come sooner. */
  intervalMs?: number;
  /** Stop after one lookup instead of repeating (default false). */
  once?: boolean;
}

/**
 * A DHT node (BEP 5) used as a source of peers: it joins the network in the background as soon
 * as it is opened, keeps its routing table in a file between runs, and turns repeated
 * `get_peers` lookups into batches of peers.
 *
 * @example Peers announced by another node
 * ```ts
 * import assert from "node:assert/strict";
 * import { DhtNode } from "../dht/mod.ts";
 * import { DhtPeerSource } from "./peer_sources.ts";
 *
 * await using seeder = await DhtNode.create({ host: "127.0.0.1" });
 * await using source = await DhtPeerSource.open({
 *   host: "127.0.0.1",
 *   bootstrap: [seeder.address],
 *   statePath: false,
 * });
 * const infoHash = new Uint8Array(20).fill(9);
 * await source.ready;
 * await seeder.announcePeer(infoHash, 6881);
 * const found = [];
 * for await (const batch of source.peers(infoHash, { once: true })) found.push(...batch);
 * assert.deepEqual(found, [{ host: "127.0.0.1", port: 6881 }]);
 * ```
 */
export class DhtPeerSource implements AsyncDisposable {
  readonly #node: DhtNode;
  readonly #statePath: string | undefined;
  readonly #onError: (error: unknown) => void;
  readonly #ready: Promise<void>;
  readonly #closing = new AbortController();
  #closed: Promise<void> | undefined;

  private constructor(node: DhtNode, statePath: string | undefined, options: DhtPeerSourceOptions) {
    this.#node = node;
    this.#statePath = statePath;
    this.#onError = options.onError ?? (() => {});
    this.#ready = node.bootstrap({ signal: this.#closing.signal }).then(
      () => {},
      (error) => {
        if (!this.#closing.signal.aborted) this.#onError(error);
      },
    );
  }

  /**
   * Opens the DHT node, restores the saved routing table and starts joining the network.
   *
   * @param options Bootstrap nodes, state file, socket address and timeouts.
   * @returns The source; close it (or `await using`) to save the table and free the socket.
   * @throws {Error} When the UDP socket cannot be bound.
   */
  static async open(options: DhtPeerSourceOptions = {}): Promise<DhtPeerSource> {
    const statePath = options.statePath === false
      ? undefined
      : options.statePath ?? defaultStatePath(options.onError);
    let state;
    if (statePath !== undefined) {
      try {
        state = await loadDhtState(statePath);
      } catch (error) {
        // A damaged state file only costs a fresh start; the next close overwrites it.
        options.onError?.(error);
      }
    }
    const bootstrap = options.bootstrap ?? DEFAULT_DHT_BOOTSTRAP.map(parsePeerAddress);
    const node = await DhtNode.create({
      bootstrap: [...bootstrap],
      ...(state ? { state } : {}),
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(options.host !== undefined ? { host: options.host } : {}),
      ...(options.queryTimeoutMs !== undefined ? { queryTimeoutMs: options.queryTimeoutMs } : {}),
      ...(options.onError ? { onError: options.onError } : {}),
    });
    return new DhtPeerSource(node, statePath, options);
  }

  /** The DHT node, for direct queries and announces. */
  get node(): DhtNode {
    return this.#node;
  }

  /** Resolves once the first join of the network has ended (whether or not it found nodes). */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /**
   * Looks a torrent up in the DHT, again and again until `signal` aborts (or once), yielding
   * the peers each lookup finds as they arrive, each peer at most once.
   *
   * @param infoHash The 20-byte info hash.
   * @param options Abort signal, a port to announce, the lookup interval.
   * @returns Batches of new peers.
   * @throws {Error} When no DHT node answers at all, so that callers do not wait in vain.
   */
  async *peers(
    infoHash: Uint8Array,
    options: DhtPeersOptions = {},
  ): AsyncGenerator<PeerAddress[], void, undefined> {
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#closing.signal])
      : this.#closing.signal;
    const maxInterval = options.intervalMs ?? 300_000;
    const seen = new Set<string>();
    let wait = Math.min(5_000, maxInterval);
    await untilSettledOrAborted(this.#ready, signal);
    while (!signal.aborted) {
      const reader = this.#node.lookupPeers(infoHash, { signal }).getReader();
      let ended = false;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) {
            ended = true;
            break;
          }
          const key = formatPeerAddress(value);
          if (seen.has(key)) continue;
          seen.add(key);
          yield [value];
        }
        if (options.announcePort !== undefined) {
          await this.#node.announcePeer(infoHash, options.announcePort, { signal });
        }
      } catch (error) {
        ended = true;
        if (signal.aborted) return;
        this.#onError(error);
      } finally {
        // The consumer stopped early: end the lookup instead of leaving it running.
        if (!ended) await reader.cancel(new DOMException("Peers no longer wanted", "AbortError"));
        reader.releaseLock();
      }
      if (this.#node.nodeCount === 0) {
        // Not even a bootstrap node answered (offline, or a wrong --dht-bootstrap).
        throw new Error("Cannot search the DHT: no node answered, not even the bootstrap nodes");
      }
      if (options.once) return;
      await sleep(wait, signal);
      wait = Math.min(wait * 2, maxInterval);
    }
  }

  /**
   * Stops lookups, saves the routing table (when a state path is set) and closes the socket.
   *
   * @returns Once closed; a failure to save goes to `onError`.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort(new DOMException("DHT peer source is closed", "AbortError"));
      await this.#ready;
      if (this.#statePath !== undefined && this.#node.nodeCount > 0) {
        try {
          await saveDhtState(this.#statePath, this.#node.toJSON());
        } catch (error) {
          this.#onError(error);
        }
      }
      await this.#node.close();
    })();
    return this.#closed;
  }

  /** `await using` closes the source. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Options for {@linkcode magnetPeers}. */
export interface MagnetPeersOptions {
  /** Stops the search; the iteration then ends. */
  signal?: AbortSignal;
  /** More peers to try first, besides the link's `x.pe` hints. */
  peers?: readonly PeerAddress[];
  /** Announce to the link's `tr` trackers (default true). */
  useTrackers?: boolean;
  /** A DHT to search, or undefined for none. */
  dht?: DhtPeerSource;
  /** Our 20-byte peer id for tracker announces (default: a fresh random one). */
  peerId?: Uint8Array;
  /** The TCP port we tell trackers (default 6881). */
  port?: number;
  /** Per-tracker time limit, in ms (default 15000). */
  trackerTimeoutMs?: number;
  /** DHT lookups repeat until `signal` aborts (default false: one lookup). */
  repeatDht?: boolean;
  /** Told when a source fails (`tracker <url>`, `DHT`), which does not end the search. */
  onSourceError?: (source: string, error: unknown) => void;
}

/**
 * Finds peers for a magnet link (BEP 9) from every source at once: the `x.pe` hints, the `tr`
 * trackers (all announced to in parallel) and the DHT. Each peer is yielded once, as soon as a
 * source names it; the iteration ends when every source is done or `signal` aborts.
 *
 * @param link The parsed magnet link.
 * @param options Extra peers, DHT, tracker settings and abort signal.
 * @returns Batches of new peers.
 *
 * @example Only `x.pe` hints
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMagnet } from "../metainfo/mod.ts";
 * import { magnetPeers } from "./peer_sources.ts";
 *
 * const link = parseMagnet(`magnet:?xt=urn:btih:${"ab".repeat(20)}&x.pe=127.0.0.1:6881`);
 * const found = [];
 * for await (const batch of magnetPeers(link)) found.push(...batch);
 * assert.deepEqual(found, [{ host: "127.0.0.1", port: 6881 }]);
 * ```
 */
export async function* magnetPeers(
  link: MagnetLink,
  options: MagnetPeersOptions = {},
): AsyncGenerator<PeerAddress[], void, undefined> {
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const channel = new PeerChannel();
  const report = (source: string, error: unknown) => {
    if (!signal.aborted) options.onSourceError?.(source, error);
  };
  channel.push([...(options.peers ?? []), ...link.peers]);
  const tasks: Promise<void>[] = [];
  if (options.useTrackers !== false && link.trackers.length > 0) {
    const peerId = options.peerId ?? generatePeerId();
    for (const url of link.trackers) {
      tasks.push(channel.produce(async () => {
        try {
          const response = await announce(url, {
            infoHash: link.infoHash,
            peerId,
            port: options.port ?? 6881,
            uploaded: 0,
            downloaded: 0,
            // Not 0: some trackers hold seeds back from a peer that says it is a seed.
            left: link.exactLength || 16_384,
            numWant: 50,
          }, { signal, timeoutMs: options.trackerTimeoutMs ?? 15_000 });
          channel.push(response.peers);
        } catch (error) {
          report(`tracker ${url}`, error);
        }
      }));
    }
  }
  const dht = options.dht;
  if (dht !== undefined) {
    tasks.push(channel.produce(async () => {
      try {
        for await (
          const batch of dht.peers(link.infoHash, { signal, once: !options.repeatDht })
        ) {
          channel.push(batch);
        }
      } catch (error) {
        report("DHT", error);
      }
    }));
  }
  try {
    for (;;) {
      const batch = await channel.next(signal);
      if (batch === undefined) return;
      yield batch;
    }
  } finally {
    stop.abort(new DOMException("Peer search finished", "AbortError"));
    await Promise.all(tasks);
  }
}

/** Batches of distinct peers from several producers, read by one consumer. */
class PeerChannel {
  readonly #seen = new Set<string>();
  #queue: PeerAddress[] = [];
  #producers = 0;
  #wake: (() => void) | undefined;

  push(peers: readonly PeerAddress[]): void {
    for (const peer of peers) {
      const key = formatPeerAddress(peer);
      if (this.#seen.has(key)) continue;
      this.#seen.add(key);
      this.#queue.push({ host: peer.host, port: peer.port });
    }
    if (this.#queue.length > 0) this.#notify();
  }

  /** Runs a producer; the channel ends once no producer runs and the queue is empty. */
  async produce(task: () => Promise<void>): Promise<void> {
    this.#producers++;
    try {
      await task();
    } finally {
      this.#producers--;
      this.#notify();
    }
  }

  /** The next batch, or undefined when every producer is done or `signal` aborted. */
  async next(signal: AbortSignal): Promise<PeerAddress[] | undefined> {
    while (!signal.aborted) {
      if (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        return batch;
      }
      if (this.#producers === 0) return undefined;
      const woken = Promise.withResolvers<void>();
      this.#wake = woken.resolve;
      const onAbort = () => woken.resolve();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        await woken.promise;
      } finally {
        signal.removeEventListener("abort", onAbort);
        this.#wake = undefined;
      }
    }
    return undefined;
  }

  #notify(): void {
    this.#wake?.();
  }
}

function defaultStatePath(onError: ((error: unknown) => void) | undefined): string | undefined {
  try {
    return defaultDhtStatePath();
  } catch (error) {
    // Neither XDG_CACHE_HOME nor HOME: the DHT works, it just starts afresh each run.
    onError?.(error);
    return undefined;
  }
}

/** Waits for `promise` (which never rejects), or less when `signal` aborts. */
async function untilSettledOrAborted(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  const aborted = Promise.withResolvers<void>();
  const onAbort = () => aborted.resolve();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    await Promise.race([promise, aborted.promise]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
