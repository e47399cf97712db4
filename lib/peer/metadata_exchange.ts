/**
 * Fetching a torrent's info dictionary from peers for magnet links (BEP 9
 * over BEP 10), the BEP 10 handshake probe behind `magnet_handshake`, and
 * {@linkcode metadataResponder}, the serving side of `ut_metadata`.
 *
 * @module
 */

import { formatPeerAddress, type PeerAddress } from "./address.ts";
import { PeerConnection } from "./connection.ts";
import { PeerProtocolError } from "./errors.ts";
import {
  decodeExtensionHandshake,
  encodeExtensionHandshake,
  EXTENSION_HANDSHAKE_ID,
  type ExtensionHandshake,
  ExtensionRegistry,
} from "./extension.ts";
import { generatePeerId, supportsExtensionProtocol } from "./handshake.ts";
import type { PeerMessage } from "./message.ts";
import {
  decodeMetadataMessage,
  DEFAULT_MAX_METADATA_SIZE,
  encodeMetadataMessage,
  METADATA_PIECE_LENGTH,
  MetadataAssembler,
  type MetadataMessage,
  metadataPieceCount,
  type MetadataReceiveResult,
} from "./ut_metadata.ts";

/** Default time allowed for a whole {@linkcode fetchMetadata}: 60 s. */
export const DEFAULT_FETCH_METADATA_TIMEOUT_MS = 60_000;

/** Default number of peers {@linkcode fetchMetadata} talks to at once. */
export const DEFAULT_METADATA_CONNECTIONS = 8;

/** Default time allowed per peer for connecting plus both handshakes: 10 s. */
export const DEFAULT_EXTENSION_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Default time a peer has to answer one metadata request: 10 s. */
export const DEFAULT_METADATA_REQUEST_TIMEOUT_MS = 10_000;

/** Metadata requests kept in flight per peer. */
const REQUESTS_PER_PEER = 4;

/** Our `ut_metadata` id in the extension handshakes we send. */
const LOCAL_EXTENSIONS = Object.freeze({ ut_metadata: 1 });

/** Why one peer did not help {@linkcode fetchMetadata}. */
export interface MetadataPeerFailure {
  /** The peer. */
  address: PeerAddress;
  /** The error or reason it was dropped for. */
  reason: unknown;
}

/**
 * Thrown by {@linkcode fetchMetadata} when no verified metadata could be
 * had: every peer failed, or the time ran out. `failures` says why each
 * peer was dropped.
 *
 * @example Usage
 * ```ts
 * import { MetadataFetchError } from "./metadata_exchange.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new MetadataFetchError("Cannot fetch metadata: no peers", []);
 * assert.equal(error.name, "MetadataFetchError");
 * assert.deepEqual(error.failures, []);
 * ```
 */
export class MetadataFetchError extends Error {
  /** Per-peer reasons, in the order the peers were dropped. */
  failures: MetadataPeerFailure[];

  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param failures Why each peer was dropped.
   * @param options Standard error options, e.g. `{ cause }`.
   */
  constructor(message: string, failures: MetadataPeerFailure[], options?: ErrorOptions) {
    super(message, options);
    this.name = "MetadataFetchError";
    this.failures = failures;
  }
}

/** Options for {@linkcode fetchMetadata}. */
export interface FetchMetadataOptions {
  /** Our 20-byte peer id. Defaults to a fresh {@linkcode generatePeerId}. */
  peerId?: Uint8Array;
  /** Aborts the fetch; it then rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Time allowed for the whole fetch, in ms. Defaults to 60 s. */
  timeoutMs?: number;
  /** Largest metadata accepted, in bytes. Defaults to 16 MiB. */
  maxMetadataSize?: number;
  /** How many peers to talk to at once. Defaults to 8. */
  maxConnections?: number;
  /** Time per peer for connecting and both handshakes, in ms. Defaults to 10 s. */
  handshakeTimeoutMs?: number;
  /** Time a peer has to answer one request before another peer is asked, in ms. Defaults to 10 s. */
  requestTimeoutMs?: number;
  /** Extra fields of our extension handshake (`v`, `p`, ...). */
  localHandshake?: Omit<ExtensionHandshake, "m">;
}

/**
 * Fetches a torrent's info dictionary (the metadata) from peers with the
 * `ut_metadata` extension (BEP 9 over BEP 10) and checks it against the
 * info hash.
 *
 * Dials up to `maxConnections` peers at once with the extension protocol
 * bit set; our extension handshake is the first message we send. Pieces are
 * asked from several peers concurrently. A `reject` sends the piece to
 * another peer; a peer that rejects every piece still needed is dropped. If
 * the assembled metadata does not hash to the info hash, a single
 * contributor is dropped as a liar; with several contributors the fetch
 * starts over asking one peer at a time, dropping each peer whose copy
 * fails. Other extended messages and BEP 3 messages are ignored; metadata
 * requests from peers are rejected.
 *
 * @param peers Peers to ask, in order of preference; duplicates are ignored.
 * @param infoHash The 20-byte info hash.
 * @param options Peer id, timeouts, caps and abort signal.
 * @returns The raw bencoded info dictionary, whose SHA-1 is `infoHash`.
 * @throws {MetadataFetchError} If no peer served metadata matching the info
 * hash within `timeoutMs`; `failures` says why each peer was dropped.
 * @throws {TypeError} If the info hash is not 20 bytes.
 * @throws {RangeError} If a timeout, cap or connection count is not positive.
 * Aborting `signal` rejects with `signal.reason`.
 *
 * @example Nobody to ask
 * ```ts
 * import { fetchMetadata, MetadataFetchError } from "./metadata_exchange.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(fetchMetadata([], new Uint8Array(20)), MetadataFetchError);
 * ```
 */
export async function fetchMetadata(
  peers: readonly PeerAddress[],
  infoHash: Uint8Array,
  options: FetchMetadataOptions = {},
): Promise<Uint8Array> {
  const fetch = new MetadataFetch(peers, infoHash, options);
  return await fetch.run();
}

/** Options for {@linkcode extensionHandshake}. */
export interface ExtensionHandshakeOptions {
  /** Our 20-byte peer id. Defaults to a fresh {@linkcode generatePeerId}. */
  peerId?: Uint8Array;
  /** Aborts; the call then rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Time allowed for connecting and both handshakes, in ms. Defaults to 10 s. */
  timeoutMs?: number;
  /** Our extension handshake. Defaults to `{ m: { ut_metadata: 1 } }`. */
  localHandshake?: ExtensionHandshake;
}

/** What {@linkcode extensionHandshake} learnt about a peer. */
export interface ExtensionHandshakeResult {
  /** The peer's 20-byte peer id. */
  peerId: Uint8Array;
  /** The peer's 8 reserved handshake bytes. */
  reserved: Uint8Array;
  /** The peer's extension handshake (BEP 10). */
  handshake: ExtensionHandshake;
}

/**
 * Connects to a peer, exchanges the BitTorrent handshake (BEP 3) and the
 * extension handshakes (BEP 10), and hangs up. Our extension handshake is
 * the first message we send; messages the peer sends before its own
 * extension handshake (bitfield, have, ...) are ignored.
 *
 * @param address Where the peer listens.
 * @param infoHash The 20-byte info hash.
 * @param options Peer id, timeout, abort signal, our handshake.
 * @returns The peer's id, reserved bytes and extension handshake.
 * @throws {PeerProtocolError} If the peer does not announce the extension
 * protocol, sends a malformed extension handshake, or hangs up before it.
 * @throws {HandshakeError} If the BitTorrent handshake fails or the peer
 * does not send its extension handshake within `timeoutMs`.
 * Aborting `signal` rejects with `signal.reason`.
 *
 * @example Usage
 * ```ts
 * import { extensionHandshake } from "./metadata_exchange.ts";
 * import { PeerConnection } from "./connection.ts";
 * import { encodeExtensionHandshake } from "./extension.ts";
 * import assert from "node:assert/strict";
 *
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const peer = listener.accept().then(async (conn) => {
 *   await using peer = await PeerConnection.accept(conn, {
 *     peerId: new Uint8Array(20).fill(1),
 *     lookup: () => true,
 *   });
 *   const payload = encodeExtensionHandshake({ m: { ut_metadata: 7 }, metadataSize: 100 });
 *   await peer.send({ type: "extended", id: 0, payload });
 *   for await (const _ of peer.messages); // until the other side hangs up
 * });
 *
 * const result = await extensionHandshake(
 *   { host: "127.0.0.1", port: listener.addr.port },
 *   new Uint8Array(20),
 * );
 * assert.equal(result.handshake.m.ut_metadata, 7);
 * assert.equal(result.handshake.metadataSize, 100);
 * await peer;
 * ```
 */
export async function extensionHandshake(
  address: PeerAddress,
  infoHash: Uint8Array,
  options: ExtensionHandshakeOptions = {},
): Promise<ExtensionHandshakeResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_EXTENSION_HANDSHAKE_TIMEOUT_MS;
  checkPositive(timeoutMs, "timeoutMs");
  const where = formatPeerAddress(address);
  const started = performance.now();
  const conn = await PeerConnection.connect(address, {
    infoHash,
    peerId: options.peerId ?? generatePeerId(),
    timeoutMs,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  let stopped: unknown;
  const stop = (reason: unknown) => {
    stopped ??= reason;
    conn.close(reason);
  };
  const remaining = Math.max(1, timeoutMs - (performance.now() - started));
  const timer = setTimeout(
    () =>
      stop(
        new PeerProtocolError(
          `Cannot complete extension handshake with ${where}: no answer within ${timeoutMs} ms`,
        ),
      ),
    remaining,
  );
  const onAbort = () => stop(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (!supportsExtensionProtocol(conn.remoteReserved)) {
      throw new PeerProtocolError(
        `Cannot complete extension handshake with ${where}: peer does not support the extension protocol (BEP 10)`,
      );
    }
    const ours = options.localHandshake ?? { m: { ...LOCAL_EXTENSIONS } };
    await conn.send(extensionHandshakeMessage(ours));
    for await (const message of conn.messages) {
      if (message.type !== "extended" || message.id !== EXTENSION_HANDSHAKE_ID) continue;
      return {
        peerId: conn.remotePeerId,
        reserved: conn.remoteReserved,
        handshake: decodeExtensionHandshake(message.payload),
      };
    }
    if (stopped !== undefined) throw stopped;
    throw new PeerProtocolError(
      `Cannot complete extension handshake with ${where}: peer closed the connection first`,
    );
  } catch (error) {
    // A send or read interrupted by the timer or the signal reports that, not the socket error.
    throw stopped ?? error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    conn.close();
    await conn.closed;
  }
}

/**
 * Builds the serving side of `ut_metadata` (BEP 9): a function that answers
 * a peer's decoded message. A request for a piece we have gets a `data`
 * message (a view into `info`); a request past the end, or any request
 * while we have no metadata yet, gets a `reject`. Messages other than
 * requests need no answer.
 *
 * @param info Our raw info dictionary, or `undefined` while we have none.
 * @returns The responder; its answer is `undefined` when nothing is to be sent.
 *
 * @example Usage
 * ```ts
 * import { metadataResponder } from "./metadata_exchange.ts";
 * import assert from "node:assert/strict";
 *
 * const respond = metadataResponder(new TextEncoder().encode("d4:name1:ae"));
 * assert.deepEqual(respond({ type: "request", piece: 0 }), {
 *   type: "data",
 *   piece: 0,
 *   totalSize: 11,
 *   data: new TextEncoder().encode("d4:name1:ae"),
 * });
 * assert.deepEqual(respond({ type: "request", piece: 1 }), { type: "reject", piece: 1 });
 * assert.equal(respond({ type: "reject", piece: 0 }), undefined);
 * ```
 */
export function metadataResponder(
  info: Uint8Array | undefined,
): (message: MetadataMessage) => MetadataMessage | undefined {
  const count = info === undefined ? 0 : metadataPieceCount(info.length);
  return (message) => {
    if (message.type !== "request") return undefined;
    const piece = message.piece;
    if (info === undefined || !Number.isInteger(piece) || piece < 0 || piece >= count) {
      return { type: "reject", piece };
    }
    const begin = piece * METADATA_PIECE_LENGTH;
    const data = info.subarray(begin, Math.min(info.length, begin + METADATA_PIECE_LENGTH));
    return { type: "data", piece, totalSize: info.length, data };
  };
}

type Timer = ReturnType<typeof setTimeout>;

/** One connected peer of a {@linkcode MetadataFetch}. */
interface Session {
  key: string;
  address: PeerAddress;
  conn: PeerConnection;
  registry: ExtensionRegistry;
  /** The peer's `metadata_size`, once its extension handshake arrived. */
  metadataSize: number | undefined;
  /** Pieces requested from this peer, with their timeout timers. */
  inflight: Map<number, Timer>;
  /** Pieces this peer rejected or did not deliver in time: not asked again. */
  refused: Set<number>;
  handshakeTimer: Timer | undefined;
  dropped: boolean;
}

/** The state of one {@linkcode fetchMetadata} call. */
class MetadataFetch {
  #queue: PeerAddress[] = [];
  #infoHash: Uint8Array;
  #peerId: Uint8Array;
  #signal: AbortSignal | undefined;
  #timeoutMs: number;
  #maxMetadataSize: number;
  #maxConnections: number;
  #handshakeTimeoutMs: number;
  #requestTimeoutMs: number;
  #localHandshake: ExtensionHandshake;
  #sessions: Map<string, Session> = new Map();
  #running = 0;
  #failures: MetadataPeerFailure[] = [];
  #assembler: MetadataAssembler<string> | undefined;
  /** After a mismatch with several contributors: ask one peer at a time. */
  #soloMode = false;
  #soloPeer: string | undefined;
  #tasks: Set<Promise<unknown>> = new Set();
  #abort = new AbortController();
  #result = Promise.withResolvers<Uint8Array>();
  #finished = false;

  constructor(peers: readonly PeerAddress[], infoHash: Uint8Array, options: FetchMetadataOptions) {
    if (!(infoHash instanceof Uint8Array) || infoHash.length !== 20) {
      throw new TypeError("Cannot fetch metadata: info hash is not 20 bytes");
    }
    this.#infoHash = infoHash;
    this.#peerId = options.peerId ?? generatePeerId();
    this.#signal = options.signal;
    this.#timeoutMs = checkPositive(
      options.timeoutMs ?? DEFAULT_FETCH_METADATA_TIMEOUT_MS,
      "timeoutMs",
    );
    this.#maxMetadataSize = checkPositive(
      options.maxMetadataSize ?? DEFAULT_MAX_METADATA_SIZE,
      "maxMetadataSize",
    );
    this.#maxConnections = checkPositive(
      options.maxConnections ?? DEFAULT_METADATA_CONNECTIONS,
      "maxConnections",
    );
    this.#handshakeTimeoutMs = checkPositive(
      options.handshakeTimeoutMs ?? DEFAULT_EXTENSION_HANDSHAKE_TIMEOUT_MS,
      "handshakeTimeoutMs",
    );
    this.#requestTimeoutMs = checkPositive(
      options.requestTimeoutMs ?? DEFAULT_METADATA_REQUEST_TIMEOUT_MS,
      "requestTimeoutMs",
    );
    this.#localHandshake = { ...options.localHandshake, m: { ...LOCAL_EXTENSIONS } };
    const seen = new Set<string>();
    for (const peer of peers) {
      const key = formatPeerAddress(peer);
      if (seen.has(key)) continue;
      seen.add(key);
      this.#queue.push(peer);
    }
  }

  async run(): Promise<Uint8Array> {
    this.#signal?.throwIfAborted();
    const timer = setTimeout(() => {
      this.#fail(
        new MetadataFetchError(
          `Cannot fetch metadata: no verified metadata within ${this.#timeoutMs} ms`,
          this.#failures,
        ),
      );
    }, this.#timeoutMs);
    const onAbort = () => this.#fail(this.#signal?.reason);
    this.#signal?.addEventListener("abort", onAbort, { once: true });
    try {
      this.#dialMore();
      this.#checkExhausted();
      return await this.#result.promise;
    } finally {
      clearTimeout(timer);
      this.#signal?.removeEventListener("abort", onAbort);
      this.#shutdown();
      while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
    }
  }

  #track(promise: Promise<unknown>): void {
    this.#tasks.add(promise);
    const remove = () => this.#tasks.delete(promise);
    // Tracked promises handle their own errors; this only keeps the set current.
    promise.then(remove, remove);
  }

  #dialMore(): void {
    while (!this.#finished && this.#running < this.#maxConnections && this.#queue.length > 0) {
      const address = this.#queue.shift()!;
      this.#running++;
      this.#track(this.#runPeer(address).catch((error) => this.#fail(error)));
    }
  }

  #checkExhausted(): void {
    if (this.#finished || this.#running > 0 || this.#queue.length > 0) return;
    const tried = this.#failures.length;
    this.#fail(
      new MetadataFetchError(
        tried === 0
          ? "Cannot fetch metadata: no peers to ask"
          : `Cannot fetch metadata: none of ${tried} peers served metadata matching the info hash`,
        this.#failures,
      ),
    );
  }

  async #runPeer(address: PeerAddress): Promise<void> {
    const key = formatPeerAddress(address);
    let session: Session | undefined;
    try {
      const conn = await PeerConnection.connect(address, {
        infoHash: this.#infoHash,
        peerId: this.#peerId,
        signal: this.#abort.signal,
        timeoutMs: this.#handshakeTimeoutMs,
      });
      session = {
        key,
        address,
        conn,
        registry: new ExtensionRegistry(LOCAL_EXTENSIONS),
        metadataSize: undefined,
        inflight: new Map(),
        refused: new Set(),
        handshakeTimer: undefined,
        dropped: false,
      };
      this.#sessions.set(key, session);
      if (this.#finished) return;
      if (!supportsExtensionProtocol(conn.remoteReserved)) {
        throw new PeerProtocolError(
          `Peer ${key} does not support the extension protocol (BEP 10)`,
        );
      }
      const current = session;
      current.handshakeTimer = setTimeout(() => {
        this.#drop(
          current,
          new PeerProtocolError(
            `Peer ${key} sent no extension handshake within ${this.#handshakeTimeoutMs} ms`,
          ),
        );
      }, this.#handshakeTimeoutMs);
      // Our extension handshake goes first: some peers wait for it before anything else.
      await conn.send(extensionHandshakeMessage(this.#localHandshake));
      for await (const message of conn.messages) {
        this.#onMessage(current, message);
      }
    } catch (error) {
      if (!this.#finished && !session?.dropped) this.#failures.push({ address, reason: error });
    } finally {
      this.#running--;
      if (session !== undefined) {
        this.#sessions.delete(key);
        this.#forget(session);
        clearTimeout(session.handshakeTimer);
        session.conn.close();
        await session.conn.closed;
      }
      if (!this.#finished) {
        if (this.#soloPeer === key) this.#soloPeer = undefined;
        this.#dialMore();
        this.#pumpAll();
        this.#checkExhausted();
      }
    }
  }

  #onMessage(session: Session, message: PeerMessage): void {
    if (this.#finished || session.dropped || message.type !== "extended") return;
    if (message.id === EXTENSION_HANDSHAKE_ID) {
      this.#onExtensionHandshake(session, decodeExtensionHandshake(message.payload));
      return;
    }
    if (session.registry.localName(message.id) !== "ut_metadata") return;
    const decoded = decodeMetadataMessage(message.payload, {
      maxMetadataSize: this.#maxMetadataSize,
      ...(session.metadataSize === undefined ? {} : { metadataSize: session.metadataSize }),
    });
    switch (decoded.type) {
      case "request":
        // We have no metadata to give yet; BEP 9 asks for a reject.
        if (session.registry.supports("ut_metadata")) {
          this.#send(session, [metadataMessage(session, { type: "reject", piece: decoded.piece })]);
        }
        return;
      case "reject":
        if (!this.#settle(session, decoded.piece)) return;
        session.refused.add(decoded.piece);
        this.#pumpAll();
        return;
      case "data": {
        if (!this.#settle(session, decoded.piece) || this.#assembler === undefined) return;
        if (this.#assembler.size !== decoded.totalSize) return;
        const result = this.#assembler.receive(decoded.piece, decoded.data, session.key);
        this.#onReceived(result);
        return;
      }
      case "unknown":
        return;
    }
  }

  #onExtensionHandshake(session: Session, handshake: ExtensionHandshake): void {
    const first = session.registry.remoteHandshake === undefined;
    session.registry.receiveHandshake(handshake);
    if (!first) return;
    clearTimeout(session.handshakeTimer);
    session.handshakeTimer = undefined;
    if (!session.registry.supports("ut_metadata")) {
      this.#drop(session, `Peer ${session.key} does not support ut_metadata (BEP 9)`);
      return;
    }
    const size = handshake.metadataSize;
    if (size === undefined || size === 0) {
      this.#drop(session, `Peer ${session.key} announced no metadata_size: it has no metadata`);
      return;
    }
    if (size > this.#maxMetadataSize) {
      this.#drop(
        session,
        `Peer ${session.key} announced metadata_size ${size}, above the cap ${this.#maxMetadataSize}`,
      );
      return;
    }
    session.metadataSize = size;
    this.#pumpAll();
  }

  #onReceived(result: MetadataReceiveResult<string>): void {
    if (result.status === "incomplete") {
      this.#pumpAll();
      return;
    }
    if (result.status === "complete") {
      this.#finished = true;
      this.#result.resolve(result.info);
      return;
    }
    // The pieces were dropped: forget every outstanding request and its timer.
    for (const session of this.#sessions.values()) this.#forget(session);
    const liar = result.peers.length === 1 ? this.#sessions.get(result.peers[0]!) : undefined;
    if (liar !== undefined) {
      this.#drop(
        liar,
        new PeerProtocolError(`Peer ${liar.key} sent metadata that does not match the info hash`),
      );
      if (this.#soloPeer === liar.key) this.#soloPeer = undefined;
    } else if (result.peers.length > 1) {
      // Several peers sent pieces: the liar is among them. Ask one at a time from now on.
      this.#soloMode = true;
      this.#soloPeer = undefined;
    }
    this.#pumpAll();
  }

  /** Ends the request for a piece from a peer; false if none was outstanding. */
  #settle(session: Session, piece: number): boolean {
    const timer = session.inflight.get(piece);
    if (timer === undefined) return false;
    clearTimeout(timer);
    session.inflight.delete(piece);
    this.#assembler?.release(piece, session.key);
    return true;
  }

  /** Forgets all outstanding requests of a peer. */
  #forget(session: Session): void {
    for (const timer of session.inflight.values()) clearTimeout(timer);
    session.inflight.clear();
    this.#assembler?.releasePeer(session.key);
  }

  #pumpAll(): void {
    if (this.#finished) return;
    this.#chooseAssembler();
    for (const session of this.#sessions.values()) this.#pump(session);
  }

  /**
   * Keeps an assembler whose size some connected peer announced; if none
   * does, starts over with the size most connected peers announce.
   */
  #chooseAssembler(): void {
    const counts = new Map<number, number>();
    for (const session of this.#sessions.values()) {
      if (session.dropped || session.metadataSize === undefined) continue;
      counts.set(session.metadataSize, (counts.get(session.metadataSize) ?? 0) + 1);
    }
    if (counts.size === 0) return;
    if (this.#assembler !== undefined && counts.has(this.#assembler.size)) return;
    let best = 0;
    let bestCount = 0;
    for (const [size, count] of counts) {
      if (count > bestCount) [best, bestCount] = [size, count];
    }
    // Requests made for another size are void now.
    for (const session of this.#sessions.values()) this.#forget(session);
    this.#assembler = new MetadataAssembler(this.#infoHash, best, {
      maxMetadataSize: this.#maxMetadataSize,
    });
    this.#soloPeer = undefined;
  }

  #pump(session: Session): void {
    const assembler = this.#assembler;
    if (session.dropped || assembler === undefined || session.metadataSize !== assembler.size) {
      return;
    }
    if (this.#soloMode) {
      this.#soloPeer ??= session.key;
      if (this.#soloPeer !== session.key) return;
    }
    const batch: PeerMessage[] = [];
    while (session.inflight.size < REQUESTS_PER_PEER) {
      const piece = assembler.nextRequest(session.key, session.refused);
      if (piece === undefined) break;
      session.inflight.set(piece, this.#requestTimer(session, piece));
      batch.push(metadataMessage(session, { type: "request", piece }));
    }
    if (batch.length > 0) {
      this.#send(session, batch);
      return;
    }
    if (
      session.inflight.size === 0 && assembler.neededPieces.every((p) => session.refused.has(p))
    ) {
      if (this.#soloPeer === session.key) this.#soloPeer = undefined;
      this.#drop(
        session,
        `Peer ${session.key} rejected (or did not answer) every metadata piece still needed`,
      );
    }
  }

  #requestTimer(session: Session, piece: number): Timer {
    return setTimeout(() => {
      if (!this.#settle(session, piece)) return;
      // Let another peer have the piece; a late answer from this one is ignored.
      session.refused.add(piece);
      this.#pumpAll();
    }, this.#requestTimeoutMs);
  }

  #send(session: Session, messages: PeerMessage[]): void {
    this.#track(
      session.conn.send(messages).catch((error) => {
        if (!this.#finished) this.#drop(session, error);
      }),
    );
  }

  /** Closes a peer for a reason, recorded in the failures; its task then cleans up. */
  #drop(session: Session, reason: unknown): void {
    if (session.dropped) return;
    session.dropped = true;
    this.#failures.push({ address: session.address, reason });
    this.#forget(session);
    session.conn.close(reason);
  }

  #fail(error: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#result.reject(error);
  }

  #shutdown(): void {
    this.#finished = true;
    this.#abort.abort(new Error("Metadata fetch finished"));
    for (const session of this.#sessions.values()) {
      this.#forget(session);
      clearTimeout(session.handshakeTimer);
      session.conn.close();
    }
  }
}

function extensionHandshakeMessage(handshake: ExtensionHandshake): PeerMessage {
  return {
    type: "extended",
    id: EXTENSION_HANDSHAKE_ID,
    payload: encodeExtensionHandshake(handshake),
  };
}

function metadataMessage(session: Session, message: MetadataMessage): PeerMessage {
  return session.registry.extendedMessage("ut_metadata", encodeMetadataMessage(message));
}

function checkPositive(value: number, name: string): number {
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`Invalid ${name} ${value}: not a positive number`);
  }
  return value;
}
