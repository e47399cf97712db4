/**
 * Peer exchange (BEP 11, `ut_pex`) for one torrent, wired through the
 * engine's {@linkcode ExtensionHooks}: peers learned from connected peers go
 * to the torrent, and each peer that speaks `ut_pex` is told, at most once
 * per interval, who joined and left our swarm since the last message.
 *
 * @module
 */

import { encode } from "../bencode/mod.ts";
import type { PeerAddress } from "../peer/address.ts";
import type { ExtensionHandshake } from "../peer/extension.ts";
import {
  decodePexMessage,
  DEFAULT_MAX_PEX_PEERS,
  DEFAULT_PEX_INTERVAL_MS,
  encodePexMessage,
  PEX_FLAGS,
  PexState,
} from "../peer/ut_pex.ts";
import type { ExtensionHooks, ExtensionPeer } from "./extensions.ts";

/** The extension name of peer exchange (BEP 11). */
const UT_PEX = "ut_pex";

/** A connected peer as {@linkcode PeerExchange} sees it: a `PeerSession` fits. */
export interface PexSession extends ExtensionPeer {
  /** The peer's address (for an incoming connection, its ephemeral port). */
  readonly address: PeerAddress;
  /** Whether the session has ended. */
  readonly closed: boolean;
  /** Whether the peer has every piece (announced with the `seed` flag). */
  readonly isSeed: boolean;
}

/** The knobs of peer exchange a {@linkcode Torrent} takes as its `pex` option. */
export interface PexSettings {
  /** Minimum time between two messages to one peer, and from one peer; 60 s default (BEP 11). */
  intervalMs?: number;
  /** Most peers sent per message, and learned from one received message; defaults to 50. */
  maxPeers?: number;
}

/** Options for {@linkcode PeerExchange}. */
export interface PeerExchangeOptions<P extends PexSession = PexSession> extends PexSettings {
  /**
   * A private torrent (BEP 27): peers come from its trackers only, so the
   * exchange neither sends nor learns anything.
   */
  private?: boolean;
  /** Our TCP listen port: an added peer at this port on one of our addresses is ignored. */
  listenPort?: number;
  /** Other extension hooks, called first with every event (PEX is chained behind them). */
  hooks?: ExtensionHooks<P>;
  /** The clock, in ms; defaults to `Date.now`. */
  now?: () => number;
  /**
   * Starts a repeating timer and returns a function that stops it; defaults
   * to `setInterval`. The exchange runs it only while it has peers.
   */
  setTimer?: (callback: () => void, ms: number) => () => void;
  /** Ends the exchange (stops its timer) when aborted, e.g. when the torrent closes. */
  signal?: AbortSignal;
}

/** Counters of a {@linkcode PeerExchange}. */
export interface PeerExchangeStats {
  /** Peers tracked now (sent an extension handshake, not closed). */
  peers: number;
  /** `ut_pex` messages sent. */
  messagesSent: number;
  /** `ut_pex` messages received and used. */
  messagesReceived: number;
  /** `ut_pex` messages ignored because the peer sent them too often. */
  messagesIgnored: number;
  /** Addresses received that were new to the torrent (as `addPeers` counted them). */
  peersLearned: number;
}

interface PeerState {
  readonly pex: PexState;
  lastReceived: number | undefined;
}

/** Hosts that are ourselves on any machine. */
const LOCAL_HOSTS: readonly string[] = ["127.0.0.1", "::1", "0.0.0.0", "::"];

/**
 * Peer exchange (BEP 11) for one torrent. Give the engine its
 * {@linkcode PeerExchange.hooks}: every peer whose extension handshake
 * arrives is tracked until its session closes. A peer that announced
 * `ut_pex` gets a first message right away (if we know other peers), then a
 * diff (added and dropped peers, at most `maxPeers` each) no more than once
 * per interval. Its own messages are decoded, capped at `maxPeers` added
 * peers, stripped of our own address and of the sender's, and handed to
 * `addPeers`; messages that come sooner than half the interval after the
 * previous one are ignored. The peers we tell others about are the tracked
 * ones, at the listen port from their extension handshake (`p`), else at the
 * port of the connection. A private torrent (BEP 27) does nothing at all.
 *
 * @example Two peers, one message each way
 * ```ts
 * import { PeerExchange, type PexSession } from "./pex.ts";
 * import { decodePexMessage, encodePexMessage } from "../peer/ut_pex.ts";
 * import type { PeerAddress } from "../peer/address.ts";
 * import assert from "node:assert/strict";
 *
 * const learned: PeerAddress[] = [];
 * const sent: Uint8Array[] = [];
 * const session = (host: string): PexSession => ({
 *   address: { host, port: 6881 },
 *   closed: false,
 *   isSeed: false,
 *   remoteExtensions: { m: { ut_pex: 1 } },
 *   sendExtension: (_name, payload) => sent.push(payload) > 0,
 * });
 * using pex = new PeerExchange((peers) => learned.push(...peers), {
 *   setTimer: () => () => {}, // no timer here: tick() by hand
 * });
 * const a = session("10.0.0.1");
 * const b = session("10.0.0.2");
 * pex.hooks.onHandshake?.(a, { m: { ut_pex: 1 } });
 * pex.hooks.onHandshake?.(b, { m: { ut_pex: 1 } }); // b is told about a
 * assert.deepEqual(decodePexMessage(sent[0]!).added, [{ host: "10.0.0.1", port: 6881, flags: 0 }]);
 *
 * pex.hooks.onMessage?.(a, "ut_pex", encodePexMessage({ added: [{ host: "10.0.0.9", port: 7 }] }));
 * assert.deepEqual(learned, [{ host: "10.0.0.9", port: 7 }]);
 * ```
 */
export class PeerExchange<P extends PexSession = PexSession> implements Disposable {
  readonly #addPeers: (addresses: PeerAddress[]) => number;
  readonly #private: boolean;
  readonly #listenPort: number | undefined;
  readonly #inner: ExtensionHooks<P> | undefined;
  readonly #now: () => number;
  readonly #setTimer: (callback: () => void, ms: number) => () => void;
  readonly #intervalMs: number;
  readonly #maxPeers: number;
  readonly #signal: AbortSignal | undefined;
  readonly #peers = new Map<P, PeerState>();
  /** Hosts peers told us we have (`yourip`), beside the local ones. */
  readonly #ownHosts = new Set<string>(LOCAL_HOSTS);
  readonly #hooks: ExtensionHooks<P>;
  #stopTimer: (() => void) | undefined;
  #closed = false;
  #messagesSent = 0;
  #messagesReceived = 0;
  #messagesIgnored = 0;
  #peersLearned = 0;
  #onAbort = () => this.close();

  /**
   * Creates the exchange of one torrent; it does nothing until its hooks are called.
   *
   * @param addPeers Takes learned addresses (e.g. `Torrent.addPeers`); returns how many were new.
   * @param options Private flag, listen port, interval, caps, chained hooks, clock, timer, signal.
   * @throws {RangeError} If `intervalMs` is negative or `maxPeers` not a positive integer.
   */
  constructor(
    addPeers: (addresses: PeerAddress[]) => number,
    options: PeerExchangeOptions<P> = {},
  ) {
    this.#addPeers = addPeers;
    this.#private = options.private ?? false;
    this.#listenPort = options.listenPort;
    this.#inner = options.hooks;
    this.#now = options.now ?? Date.now;
    this.#setTimer = options.setTimer ?? startInterval;
    this.#intervalMs = options.intervalMs ?? DEFAULT_PEX_INTERVAL_MS;
    this.#maxPeers = options.maxPeers ?? DEFAULT_MAX_PEX_PEERS;
    if (!(this.#intervalMs >= 0) || !Number.isFinite(this.#intervalMs)) {
      throw new RangeError(
        `Cannot create peer exchange: intervalMs ${this.#intervalMs} is not a finite non-negative number`,
      );
    }
    if (!Number.isInteger(this.#maxPeers) || this.#maxPeers < 1) {
      throw new RangeError(
        `Cannot create peer exchange: maxPeers ${this.#maxPeers} is not a positive integer`,
      );
    }
    const inner = this.#inner;
    this.#hooks = {
      onHandshake: (peer, handshake) => {
        inner?.onHandshake?.(peer, handshake);
        this.#handshake(peer, handshake);
      },
      onMessage: (peer, name, payload) => {
        inner?.onMessage?.(peer, name, payload);
        if (name === UT_PEX) this.#receive(peer, payload);
      },
    };
    this.#signal = options.signal;
    if (this.#signal?.aborted) this.#closed = true;
    else this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** The hooks to give the engine (`extensionHooks`); they call the chained hooks first. */
  get hooks(): ExtensionHooks<P> {
    return this.#hooks;
  }

  /** Whether the exchange is on: not closed, and not for a private torrent. */
  get active(): boolean {
    return !this.#closed && !this.#private;
  }

  /**
   * A snapshot of the counters.
   *
   * @returns The counters.
   */
  stats(): PeerExchangeStats {
    return {
      peers: this.#peers.size,
      messagesSent: this.#messagesSent,
      messagesReceived: this.#messagesReceived,
      messagesIgnored: this.#messagesIgnored,
      peersLearned: this.#peersLearned,
    };
  }

  /**
   * Forgets closed sessions and sends each remaining `ut_pex` peer whose
   * interval has passed what changed since its last message. The timer calls
   * this; call it by hand with an injected timer.
   */
  tick(): void {
    if (!this.active) return;
    for (const peer of this.#peers.keys()) {
      if (peer.closed) this.#peers.delete(peer);
    }
    if (this.#peers.size === 0) {
      this.#stopTimer?.();
      this.#stopTimer = undefined;
      return;
    }
    for (const [peer, state] of this.#peers) this.#sendTo(peer, state);
  }

  /** Stops the timer and forgets every peer; later events are ignored. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#stopTimer?.();
    this.#stopTimer = undefined;
    this.#peers.clear();
  }

  /**
   * Stops tracking a session that closed, at once rather than at the next round, so a busy
   * torrent does not hold on to closed sessions (and their buffers) for up to an interval.
   *
   * @param peer The closed session.
   */
  forget(peer: P): void {
    this.#peers.delete(peer);
  }

  /** Same as {@linkcode PeerExchange.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #handshake(peer: P, handshake: ExtensionHandshake): void {
    if (!this.active || peer.closed) return;
    if (handshake.yourIp !== undefined) {
      const host = hostOfIp(handshake.yourIp);
      if (host !== undefined) this.#ownHosts.add(host);
    }
    let state = this.#peers.get(peer);
    if (state === undefined) {
      state = { pex: this.#newState(), lastReceived: undefined };
      this.#peers.set(peer, state);
    }
    // A newcomer hears about the swarm at once; the others learn of it on their next turn.
    this.#sendTo(peer, state);
    this.#startTimer();
  }

  #receive(peer: P, payload: Uint8Array): void {
    if (!this.active || peer.closed) return;
    let state = this.#peers.get(peer);
    if (state === undefined) {
      // Hooks given to the engine after this peer's handshake: track it from now on.
      state = { pex: this.#newState(), lastReceived: undefined };
      this.#peers.set(peer, state);
      this.#startTimer();
    }
    const now = this.#now();
    // BEP 11: one message a minute. Half the interval leaves room for timer jitter.
    if (state.lastReceived !== undefined && now - state.lastReceived < this.#intervalMs / 2) {
      this.#messagesIgnored++;
      return;
    }
    // A malformed message throws PeerProtocolError: the engine closes that session.
    const message = decodePexMessage(payload, { maxAdded: this.#maxPeers });
    state.lastReceived = now;
    this.#messagesReceived++;
    const sender = peerKey(peer.address.host, listenPortOf(peer));
    const fresh: PeerAddress[] = [];
    const seen = new Set<string>();
    for (const added of message.added) {
      const key = peerKey(added.host, added.port);
      if (key === sender || seen.has(key) || this.#isOurs(added)) continue;
      seen.add(key);
      fresh.push({ host: added.host, port: added.port });
    }
    // Dropped peers are not removed: the peer pool forgets addresses that fail on its own.
    if (fresh.length > 0) this.#peersLearned += this.#addPeers(fresh);
  }

  #sendTo(peer: P, state: PeerState): void {
    if (peer.closed || !((peer.remoteExtensions?.m[UT_PEX] ?? 0) > 0)) return;
    const others: (PeerAddress & { flags: number })[] = [];
    for (const other of this.#peers.keys()) {
      if (other === peer || other.closed) continue;
      others.push({
        host: other.address.host,
        port: listenPortOf(other),
        flags: other.isSeed ? PEX_FLAGS.seed : 0,
      });
    }
    const message = state.pex.next(others);
    if (message === undefined) return;
    const payload = encodePexMessage(message, {
      maxAdded: this.#maxPeers,
      maxDropped: this.#maxPeers,
    });
    if (peer.sendExtension(UT_PEX, payload)) this.#messagesSent++;
  }

  #newState(): PexState {
    return new PexState({
      now: this.#now,
      intervalMs: this.#intervalMs,
      maxAdded: this.#maxPeers,
      maxDropped: this.#maxPeers,
    });
  }

  #startTimer(): void {
    if (this.#stopTimer !== undefined || !this.active || this.#peers.size === 0) return;
    // Check a few times per interval, so a peer waits at most a quarter interval past its turn.
    const period = Math.max(10, Math.min(this.#intervalMs / 4, 15_000));
    this.#stopTimer = this.#setTimer(() => this.tick(), period);
  }

  #isOurs(address: PeerAddress): boolean {
    return address.port === this.#listenPort && this.#ownHosts.has(address.host);
  }
}

function startInterval(callback: () => void, ms: number): () => void {
  const id = setInterval(callback, ms);
  return () => clearInterval(id);
}

/** The port a peer accepts connections on: `p` from its extension handshake, else the connection's. */
function listenPortOf(peer: PexSession): number {
  const p = peer.remoteExtensions?.p;
  return p !== undefined && p > 0 ? p : peer.address.port;
}

function peerKey(host: string, port: number): string {
  return `${host.toLowerCase()} ${port}`;
}

/**
 * The text form of a `yourip` address, spelled as {@linkcode decodePexMessage}
 * spells hosts (so the two compare equal), or `undefined` if malformed.
 */
function hostOfIp(ip: Uint8Array): string | undefined {
  if (ip.length !== 4 && ip.length !== 16) return undefined;
  const compact = new Uint8Array(ip.length + 2);
  compact.set(ip);
  compact[ip.length + 1] = 1; // any non-zero port
  const payload = encode({ [ip.length === 4 ? "added" : "added6"]: compact });
  return decodePexMessage(payload).added[0]?.host;
}
