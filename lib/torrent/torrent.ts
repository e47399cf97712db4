/**
 * The torrent engine: downloads from and uploads to many peers at once.
 *
 * @module
 */

import { type PeerAddress } from "../peer/address.ts";
import { PeerConnection } from "../peer/connection.ts";
import { generatePeerId } from "../peer/handshake.ts";
import { Bitfield, type BlockRequest, PiecePicker } from "../piece/mod.ts";
import type { Storage } from "../storage/mod.ts";
import { Choker } from "./choker.ts";
import type { ExtensionHooks } from "./extensions.ts";
import { DEFAULT_RESERVED, type PeerListener } from "./listener.ts";
import { PeerPool } from "./peer_pool.ts";
import { PieceBuffer } from "./piece_buffer.ts";
import { PeerExchange } from "./pex.ts";
import { PeerSession, type SessionConnection, type SessionHost } from "./peer_session.ts";

/** What the engine needs from a parsed metainfo (a `Metainfo` fits). */
export interface TorrentInfo {
  /** 20-byte SHA-1 info hash. */
  infoHash: Uint8Array;
  /** Nominal piece length. */
  pieceLength: number;
  /** Number of pieces. */
  pieceCount: number;
  /** Total length of all files. */
  totalLength: number;
  /** Concatenated 20-byte piece hashes. */
  pieceHashes: Uint8Array;
  /** The raw info dictionary; when given, it is served to peers over `ut_metadata` (BEP 9). */
  infoBytes?: Uint8Array;
}

/** Options for {@linkcode Torrent}. */
export interface TorrentOptions {
  /** The torrent's metainfo. */
  metainfo: TorrentInfo;
  /** Where the data lives; the caller keeps ownership and closes it. */
  storage: Storage;
  /** Pieces already verified in `storage` (from a resume file or recheck). */
  have?: Bitfield;
  /** Our 20-byte peer id; defaults to the listener's, else a fresh one. */
  peerId?: Uint8Array;
  /** Accepts incoming connections for this torrent. */
  listener?: PeerListener;
  /** Most peer connections; defaults to 50. */
  maxConnections?: number;
  /** Download only these pieces (e.g. one piece); defaults to all. */
  wantedPieces?: readonly number[];
  /** Upload slots; defaults to 4. */
  uploadSlots?: number;
  /** Period of the regular rechoke (BEP 3 choking), in ms; defaults to 10 s. */
  rechokeIntervalMs?: number;
  /** Period of the optimistic unchoke rotation, in ms; defaults to 30 s. */
  optimisticIntervalMs?: number;
  /** How upload slots are given while seeding; defaults to `"round-robin"` (see {@linkcode Choker}). */
  seedChoking?: "round-robin" | "fastest";
  /** Handlers for BEP 10 extension traffic (PEX, metadata fetching). */
  extensionHooks?: ExtensionHooks<PeerSession>;
  /**
   * Peer exchange (BEP 11, `ut_pex`): learn peers from connected peers and tell them ours.
   * On by default (never for a private torrent, BEP 27); `false` turns it off. `intervalMs`:
   * least time between two messages to or from a peer (60 s); `maxPeers`: most peers sent in,
   * or learned from, one message (50).
   */
  pex?: boolean | { intervalMs?: number; maxPeers?: number };
  /** Cap on bytes of unverified pieces in memory; defaults to 32 MiB. */
  maxBufferedBytes?: number;
  /** No block for this long while requests are outstanding marks a peer snubbed; 30 s default. */
  snubTimeoutMs?: number;
  /** Nothing received from a peer for this long closes its connection; 240 s default. */
  idleTimeoutMs?: number;
  /** Nothing sent to a peer for this long sends it a keep-alive; 90 s default. */
  keepAliveMs?: number;
  /** Hash failures a peer may share in before it is banned; defaults to 3. */
  maxStrikes?: number;
  /** Time allowed to connect and handshake, in ms; defaults to 10 s. */
  handshakeTimeoutMs?: number;
  /** Period of rate updates, snub checks and dial retries, in ms; defaults to 1000. */
  tickMs?: number;
  /** Receives engine events (progress, peers, completion). */
  onEvent?: (event: TorrentEvent) => void;
  /** Random source in `[0, 1)` for the picker and choker; defaults to `Math.random`. */
  random?: () => number;
  /** Clock in ms; defaults to `Date.now`. */
  now?: () => number;
  /** Closes the torrent when aborted. */
  signal?: AbortSignal;
}

/** Something that happened in a {@linkcode Torrent}. */
export type TorrentEvent =
  | { type: "piece-verified"; index: number }
  | { type: "piece-failed"; index: number }
  | { type: "peer-connected"; address: PeerAddress; peerId: Uint8Array }
  | { type: "peer-disconnected"; address: PeerAddress; reason?: unknown }
  | { type: "peer-banned"; address: PeerAddress; reason: string }
  | { type: "done" }
  | { type: "error"; error: unknown };

/** Counters from {@linkcode Torrent.stats}. */
export interface TorrentStats {
  /** Payload bytes received from peers (including duplicates and failed pieces). */
  downloaded: number;
  /** Payload bytes sent to peers. */
  uploaded: number;
  /** Bytes of verified pieces we hold. */
  verifiedBytes: number;
  /** Bytes still wanted. */
  left: number;
  /** Bytes per second received, summed over peers. */
  downloadRate: number;
  /** Bytes per second sent, summed over peers. */
  uploadRate: number;
  /** Verified pieces. */
  piecesHave: number;
  /** Pieces in the torrent. */
  pieceCount: number;
  /** Pieces wanted in total (all, unless `wantedPieces` was given). */
  piecesWanted: number;
  /** Live peer sessions. */
  peersConnected: number;
  /** Addresses being dialled. */
  peersConnecting: number;
  /** Addresses known to the peer pool. */
  peersKnown: number;
  /** Banned addresses. */
  peersBanned: number;
  /** Bytes held in pieces not yet verified and written. */
  bufferedBytes: number;
}

interface Strikes {
  count: number;
}

/**
 * A torrent being downloaded and served. It dials addresses given to
 * {@linkcode Torrent.addPeers} (and takes incoming connections through a
 * {@linkcode PeerListener}), requests blocks rarest-first, verifies and
 * writes whole pieces, announces them with `have`, and uploads verified
 * pieces to the peers the choker unchokes. A torrent with every piece is a
 * seeder.
 *
 * @example Download from a seeder
 * ```ts
 * import { Torrent } from "./torrent.ts";
 * import { PeerListener } from "./listener.ts";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { MemoryStorage } from "../storage/mod.ts";
 * import { Bitfield } from "../piece/mod.ts";
 * import assert from "node:assert/strict";
 *
 * const data = crypto.getRandomValues(new Uint8Array(60_000));
 * const { metainfo } = await createTorrent({ name: "x", data }, { pieceLength: 32768 });
 *
 * await using listener = PeerListener.listen({ hostname: "127.0.0.1" });
 * const seedStorage = new MemoryStorage(data.length);
 * await seedStorage.write(0, data);
 * const have = new Bitfield(metainfo.pieceCount);
 * have.setAll();
 * await using seeder = new Torrent({ metainfo, storage: seedStorage, have, listener });
 * seeder.start();
 *
 * const storage = new MemoryStorage(data.length);
 * await using leecher = new Torrent({ metainfo, storage });
 * leecher.start();
 * leecher.addPeers([{ host: "127.0.0.1", port: listener.port }]);
 * await leecher.done;
 * assert.deepEqual(storage.bytes, data);
 * ```
 */
export class Torrent implements AsyncDisposable {
  readonly #info: TorrentInfo;
  readonly #storage: Storage;
  readonly #peerId: Uint8Array;
  readonly #listener: PeerListener | undefined;
  readonly #now: () => number;
  readonly #tickMs: number;
  readonly #handshakeTimeoutMs: number | undefined;
  readonly #snubTimeoutMs: number | undefined;
  readonly #idleTimeoutMs: number | undefined;
  readonly #keepAliveMs: number | undefined;
  readonly #maxStrikes: number;
  readonly #onEvent: ((event: TorrentEvent) => void) | undefined;
  readonly #pex: PeerExchange | undefined;
  readonly #extensionHooks: ExtensionHooks<PeerSession> | undefined;
  readonly #listeners = new Set<(event: TorrentEvent) => void>();

  readonly #have: Bitfield;
  readonly #wanted: Bitfield | undefined;
  readonly #picker: PiecePicker;
  readonly #buffer: PieceBuffer<PeerSession>;
  readonly #pool: PeerPool;
  readonly #choker: Choker<PeerSession>;
  readonly #host: SessionHost;

  readonly #sessions = new Set<PeerSession>();
  readonly #sessionsByPeerId = new Map<string, PeerSession>();
  readonly #sessionTasks = new Set<Promise<void>>();
  readonly #connectTasks = new Set<Promise<void>>();
  readonly #strikes = new WeakMap<PeerSession, Strikes>();
  /** The pool's key for each session: the dialled address, or the remote one if incoming. */
  readonly #poolAddress = new WeakMap<PeerSession, PeerAddress>();
  readonly #bannedPeerIds = new Set<string>();
  readonly #abort = new AbortController();
  readonly #done = Promise.withResolvers<void>();

  #wantedLeft: number;
  #wantedCount: number;
  #verifiedBytes = 0;
  #downloaded = 0;
  #uploadedByClosed = 0;
  #started = false;
  #closed = false;
  #isDone = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #unregister: (() => void) | undefined;
  #refillScheduled = false;
  #rechokeScheduled = false;
  #signal: AbortSignal | undefined;
  #onAbort = () => {
    this.close();
  };

  /**
   * Creates a torrent; nothing happens until {@linkcode Torrent.start}.
   *
   * @param options Metainfo, storage, initial pieces, limits, hooks.
   * @throws {RangeError} If `have` or `wantedPieces` do not fit the piece count.
   */
  constructor(options: TorrentOptions) {
    const info = options.metainfo;
    this.#info = info;
    this.#storage = options.storage;
    this.#listener = options.listener;
    this.#peerId = options.peerId ?? options.listener?.peerId ?? generatePeerId();
    this.#now = options.now ?? Date.now;
    this.#tickMs = options.tickMs ?? 1000;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs;
    this.#snubTimeoutMs = options.snubTimeoutMs;
    this.#idleTimeoutMs = options.idleTimeoutMs;
    this.#keepAliveMs = options.keepAliveMs;
    this.#maxStrikes = options.maxStrikes ?? 3;
    this.#onEvent = options.onEvent;
    const pex = options.pex === false
      ? undefined
      : new PeerExchange((addresses) => this.addPeers(addresses), {
        ...(typeof options.pex === "object" ? options.pex : {}),
        private: "private" in info && info.private === true,
        now: this.#now,
        signal: this.#abort.signal, // its timer stops when the torrent closes
        ...(this.#listener ? { listenPort: this.#listener.port } : {}),
        ...(options.extensionHooks ? { hooks: options.extensionHooks } : {}),
      });
    this.#pex = pex;
    this.#extensionHooks = pex?.hooks ?? options.extensionHooks;
    this.#signal = options.signal;
    const random = options.random ?? Math.random;

    this.#have = new Bitfield(info.pieceCount);
    this.#picker = new PiecePicker({
      pieceCount: info.pieceCount,
      pieceLength: info.pieceLength,
      totalLength: info.totalLength,
      random,
    });
    if (options.have) {
      if (options.have.length !== info.pieceCount) {
        throw new RangeError(
          `Cannot create torrent: have bitfield has ${options.have.length} pieces, expected ${info.pieceCount}`,
        );
      }
      for (const index of options.have) this.#markHave(index);
    }
    if (options.wantedPieces) {
      const wanted = new Bitfield(info.pieceCount);
      for (const index of options.wantedPieces) wanted.set(index);
      this.#wanted = wanted;
    }
    this.#wantedCount = this.#wanted?.count ?? info.pieceCount;
    let left = 0;
    for (let i = 0; i < info.pieceCount; i++) {
      if (!this.#have.has(i) && (this.#wanted?.has(i) ?? true)) left++;
    }
    this.#wantedLeft = left;
    // Callers who never await `done` must not see an unhandled rejection when closing early.
    this.#done.promise.catch(ignoreEarlyClose);

    this.#pool = new PeerPool({
      now: this.#now,
      ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    });
    this.#choker = new Choker({
      now: this.#now,
      random,
      ...(options.uploadSlots === undefined ? {} : { slots: options.uploadSlots }),
      ...(options.rechokeIntervalMs === undefined
        ? {}
        : { rechokeIntervalMs: options.rechokeIntervalMs }),
      ...(options.optimisticIntervalMs === undefined
        ? {}
        : { optimisticIntervalMs: options.optimisticIntervalMs }),
      ...(options.seedChoking === undefined ? {} : { seedChoking: options.seedChoking }),
    });
    this.#buffer = new PieceBuffer<PeerSession>(info, {
      storage: options.storage,
      ...(options.maxBufferedBytes === undefined
        ? {}
        : { maxBufferedBytes: options.maxBufferedBytes }),
      onVerified: (index) => this.#pieceVerified(index),
      onFailed: (index, contributors) => this.#pieceFailed(index, contributors),
      onError: (index, error) => {
        this.#picker.markPieceFailed(index);
        this.#emit({ type: "error", error });
        this.#scheduleRefill();
      },
    });
    this.#host = this.#makeHost();
  }

  /** The 20-byte info hash. */
  get infoHash(): Uint8Array {
    return this.#info.infoHash;
  }

  /** Our 20-byte peer id. */
  get peerId(): Uint8Array {
    return this.#peerId;
  }

  /** Verified pieces (live view; do not modify). */
  get have(): Bitfield {
    return this.#have;
  }

  /** Whether every wanted piece is verified and stored. */
  get isDone(): boolean {
    return this.#isDone;
  }

  /**
   * Resolves when every wanted piece is verified and written; rejects if
   * the torrent is closed first.
   */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  /**
   * Starts dialling, accepting (through the listener) and the periodic
   * upkeep. Idempotent.
   *
   * @throws {TypeError} If the listener already serves this info hash.
   */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    if (this.#signal) {
      if (this.#signal.aborted) {
        this.close();
        return;
      }
      this.#signal.addEventListener("abort", this.#onAbort, { once: true });
    }
    if (this.#listener) {
      this.#unregister = this.#listener.register(
        this.#info.infoHash,
        (connection) => this.#incoming(connection),
      );
    }
    this.#timer = setInterval(() => this.#tick(), this.#tickMs);
    this.#checkDone();
    this.#dial();
  }

  /**
   * Adds peer addresses (from a tracker, the DHT, the user) and dials them
   * as connection slots allow.
   *
   * @param addresses The addresses; duplicates and banned ones are ignored.
   * @returns How many addresses were new.
   */
  addPeers(addresses: Iterable<PeerAddress>): number {
    if (this.#closed) return 0;
    const added = this.#pool.add(addresses);
    if (added > 0) this.#dial();
    return added;
  }

  /**
   * Takes a connection whose handshake for this torrent is complete, e.g.
   * from a listener shared in another way than {@linkcode TorrentOptions.listener}.
   *
   * @param connection The connection; closed if it cannot be admitted.
   */
  addConnection(connection: PeerConnection): void {
    this.#incoming(connection);
  }

  /**
   * Requests these pieces before any other, in order (e.g. the pieces a streaming reader needs
   * next, the most urgent first); see {@linkcode PiecePicker.setPriority}. Replaces the previous
   * list; `[]` restores rarest-first.
   *
   * @param pieces Piece indices, most urgent first.
   * @throws {RangeError} If an index is out of range.
   */
  setPriority(pieces: readonly number[]): void {
    this.#picker.setPriority(pieces);
    this.#scheduleRefill();
  }

  /**
   * Subscribes to engine events (in addition to `onEvent`).
   *
   * @param listener Called for every event.
   * @returns A function that unsubscribes.
   */
  subscribe(listener: (event: TorrentEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * A snapshot of the counters.
   *
   * @returns The stats.
   */
  stats(): TorrentStats {
    let uploaded = this.#uploadedByClosed;
    let downloadRate = 0;
    let uploadRate = 0;
    for (const session of this.#sessions) {
      uploaded += session.uploaded;
      downloadRate += session.downloadRate;
      uploadRate += session.uploadRate;
    }
    const counts = this.#pool.counts();
    return {
      downloaded: this.#downloaded,
      uploaded,
      verifiedBytes: this.#verifiedBytes,
      left: this.#bytesLeft(),
      downloadRate,
      uploadRate,
      piecesHave: this.#have.count,
      pieceCount: this.#info.pieceCount,
      piecesWanted: this.#wantedCount,
      peersConnected: this.#sessions.size,
      peersConnecting: counts.connecting,
      peersKnown: counts.known,
      peersBanned: counts.banned,
      bufferedBytes: this.#buffer.bufferedBytes,
    };
  }

  /**
   * Per-peer state and counters, for a detailed view.
   *
   * @returns One entry per live session.
   */
  peers(): ReturnType<PeerSession["stats"]>[] {
    return [...this.#sessions].map((session) => session.stats());
  }

  /**
   * Stops everything: dialling, sessions, timers, the listener
   * registration; waits for pending verifications and writes. The storage
   * stays open (the caller owns it).
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#signal?.removeEventListener("abort", this.#onAbort);
      this.#abort.abort(new Error("Torrent closed"));
      if (this.#timer !== undefined) clearInterval(this.#timer);
      this.#unregister?.();
      for (const session of [...this.#sessions]) session.close();
      if (!this.#isDone) this.#done.reject(new Error("Torrent closed before completing"));
    }
    while (this.#connectTasks.size > 0 || this.#sessionTasks.size > 0) {
      await Promise.allSettled([...this.#connectTasks, ...this.#sessionTasks]);
    }
    await this.#buffer.settled();
  }

  /** Same as {@linkcode Torrent.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- peers ---

  #dial(): void {
    if (!this.#started || this.#closed) return;
    for (let address = this.#pool.nextToDial(); address; address = this.#pool.nextToDial()) {
      const task = this.#connect(address);
      this.#connectTasks.add(task);
      task.then(() => this.#connectTasks.delete(task));
    }
  }

  async #connect(address: PeerAddress): Promise<void> {
    let connection: PeerConnection;
    try {
      connection = await PeerConnection.connect(address, {
        infoHash: this.#info.infoHash,
        peerId: this.#peerId,
        reserved: DEFAULT_RESERVED,
        signal: this.#abort.signal,
        // Sessions handle each block synchronously (copied into its piece): no per-read garbage.
        reuseReadBuffer: true,
        ...(this.#handshakeTimeoutMs === undefined ? {} : { timeoutMs: this.#handshakeTimeoutMs }),
      });
    } catch (error) {
      this.#pool.failed(address);
      if (!this.#closed) this.#emit({ type: "peer-disconnected", address, reason: error });
      return;
    }
    if (this.#closed) {
      connection.close();
      await connection.closed;
      return;
    }
    this.#pool.connected(address);
    this.#attach(connection, address);
  }

  #incoming(connection: PeerConnection): void {
    if (this.#closed || !this.#pool.accept(connection.address)) {
      connection.close(new Error("Connection not admitted"));
      return;
    }
    this.#attach(connection, connection.address);
  }

  #attach(connection: SessionConnection, address: PeerAddress): void {
    const peerIdHex = connection.remotePeerId.toHex();
    let refusal: string | undefined;
    if (bytesEqual(connection.remotePeerId, this.#peerId)) refusal = "connected to ourselves";
    else if (this.#bannedPeerIds.has(peerIdHex)) refusal = "peer id is banned";
    else if (this.#sessionsByPeerId.has(peerIdHex)) refusal = "already connected to this peer";
    if (refusal !== undefined) {
      connection.close(new Error(`Peer refused: ${refusal}`));
      if (refusal === "connected to ourselves") this.#pool.ban(address);
      else this.#pool.disconnected(address);
      return;
    }
    const session = new PeerSession(connection, this.#host, {
      reserved: DEFAULT_RESERVED,
      ...(this.#snubTimeoutMs === undefined ? {} : { snubTimeoutMs: this.#snubTimeoutMs }),
      ...(this.#idleTimeoutMs === undefined ? {} : { idleTimeoutMs: this.#idleTimeoutMs }),
      ...(this.#keepAliveMs === undefined ? {} : { keepAliveMs: this.#keepAliveMs }),
    });
    this.#sessions.add(session);
    this.#sessionsByPeerId.set(peerIdHex, session);
    this.#poolAddress.set(session, address);
    this.#emit({ type: "peer-connected", address, peerId: connection.remotePeerId });
    const task = session.start();
    this.#sessionTasks.add(task);
    task.then(() => this.#sessionTasks.delete(task));
    this.#scheduleRechoke();
  }

  #sessionClosed(session: PeerSession, reason: unknown): void {
    if (!this.#sessions.delete(session)) return;
    this.#pex?.forget(session);
    const peerIdHex = session.peerId.toHex();
    if (this.#sessionsByPeerId.get(peerIdHex) === session) this.#sessionsByPeerId.delete(peerIdHex);
    this.#uploadedByClosed += session.uploaded;
    const address = this.#poolAddress.get(session) ?? session.address;
    if (reason instanceof Error) this.#pool.failed(address);
    else this.#pool.disconnected(address);
    if (!this.#closed) {
      this.#emit({
        type: "peer-disconnected",
        address: session.address,
        ...(reason === undefined ? {} : { reason }),
      });
      this.#scheduleRechoke();
      this.#dial();
    }
  }

  #ban(session: PeerSession, reason: string): void {
    const address = this.#poolAddress.get(session) ?? session.address;
    this.#bannedPeerIds.add(session.peerId.toHex());
    this.#pool.ban(address);
    this.#emit({ type: "peer-banned", address: session.address, reason });
    session.close(new Error(`Peer banned: ${reason}`));
  }

  // --- pieces ---

  #makeHost(): SessionHost {
    const info = this.#info;
    const picker = this.#picker;
    const buffer = this.#buffer;
    const sessions = this.#sessions;
    return {
      pieceLength: info.pieceLength,
      totalLength: info.totalLength,
      have: this.#have,
      picker,
      now: this.#now,
      wants: (index) => !this.#have.has(index) && (this.#wanted?.has(index) ?? true),
      requestable: (field) => {
        const wanted = this.#wanted;
        if (!wanted) return field;
        const masked = new Bitfield(field.length);
        for (const index of wanted) if (field.has(index)) masked.set(index);
        return masked;
      },
      pickRequests: (session, field, count) => this.#pickRequests(session, field, count),
      blockReceived: (session, index, begin, block) => {
        this.#downloaded += block.length;
        // A block of a piece we no longer assemble (verified meanwhile) is only counted.
        if (!buffer.has(index)) return;
        const duplicated = picker.inFlight(index, begin) > 1;
        picker.blockReceived(index, begin);
        buffer.add(index, begin, block, session);
        if (duplicated) {
          // Endgame: the other copies of this request are no longer needed.
          for (const other of sessions) {
            if (other !== session) other.cancelRequest(index, begin, block.length);
          }
        }
      },
      requestsReturned: () => this.#scheduleRefill(),
      read: (index, begin, length) => this.#storage.read(index * info.pieceLength + begin, length),
      ...(hasReadInto(this.#storage)
        ? {
          readInto: (index: number, begin: number, target: Uint8Array) =>
            (this.#storage as ReadIntoStorage).readInto(index * info.pieceLength + begin, target),
        }
        : {}),
      interestChanged: () => this.#scheduleRechoke(),
      peerHasChanged: (session) => {
        if (session.isSeed && this.#have.isComplete) session.close();
      },
      sessionClosed: (session, reason) => this.#sessionClosed(session, reason),
      ...(info.infoBytes ? { infoBytes: info.infoBytes } : {}),
      ...(this.#listener ? { listenPort: this.#listener.port } : {}),
      ...(this.#extensionHooks ? { extensionHooks: this.#extensionHooks } : {}),
    };
  }

  #pickRequests(session: PeerSession, field: Bitfield, count: number): BlockRequest[] {
    const buffer = this.#buffer;
    const requests = this.#picker.nextRequests(field, count, {
      endgame: true,
      skip: (index, begin) => session.isRequested(index, begin),
      // Over the memory cap: only finish pieces already started.
      startedOnly: buffer.full,
    });
    for (const r of requests) buffer.begin(r.index);
    return requests;
  }

  #markHave(index: number): void {
    if (!this.#have.set(index)) return;
    this.#picker.markHave(index);
    this.#verifiedBytes += index === this.#info.pieceCount - 1
      ? this.#info.totalLength - index * this.#info.pieceLength
      : this.#info.pieceLength;
  }

  #pieceVerified(index: number): void {
    if (this.#closed) {
      // Written while closing: still ours, so a resume file saved after close() records it.
      this.#markHave(index);
      return;
    }
    this.#markHave(index);
    if (this.#wanted?.has(index) ?? true) this.#wantedLeft--;
    for (const session of this.#sessions) session.pieceVerified(index);
    this.#emit({ type: "piece-verified", index });
    // The buffer shrank: peers held back by the memory cap may request again.
    this.#scheduleRefill();
    this.#checkDone();
    if (this.#have.isComplete) {
      // Two seeds have nothing to trade.
      for (const session of [...this.#sessions]) if (session.isSeed) session.close();
    }
  }

  #pieceFailed(index: number, contributors: readonly PeerSession[]): void {
    this.#picker.markPieceFailed(index);
    if (this.#closed) return;
    this.#emit({ type: "piece-failed", index });
    if (contributors.length === 1) {
      this.#ban(contributors[0]!, `sent corrupt data for piece ${index}`);
    } else {
      for (const session of contributors) {
        let strikes = this.#strikes.get(session);
        if (!strikes) this.#strikes.set(session, strikes = { count: 0 });
        if (++strikes.count >= this.#maxStrikes) {
          this.#ban(session, `took part in ${strikes.count} corrupt pieces`);
        }
      }
    }
    this.#scheduleRefill();
  }

  #checkDone(): void {
    if (this.#isDone || this.#wantedLeft > 0) return;
    this.#isDone = true;
    this.#done.resolve();
    this.#emit({ type: "done" });
  }

  #bytesLeft(): number {
    const { pieceCount, pieceLength, totalLength } = this.#info;
    let left = 0;
    for (let i = 0; i < pieceCount; i++) {
      if (this.#have.has(i) || !(this.#wanted?.has(i) ?? true)) continue;
      left += i === pieceCount - 1 ? totalLength - i * pieceLength : pieceLength;
    }
    return left;
  }

  // --- upkeep ---

  #tick(): void {
    const now = this.#now();
    for (const session of this.#sessions) session.tick(now);
    this.#rechoke();
    this.#dial();
  }

  #scheduleRefill(): void {
    if (this.#refillScheduled || this.#closed) return;
    this.#refillScheduled = true;
    queueMicrotask(() => {
      this.#refillScheduled = false;
      for (const session of this.#sessions) session.fillRequests();
    });
  }

  #scheduleRechoke(): void {
    if (this.#rechokeScheduled || this.#closed) return;
    this.#rechokeScheduled = true;
    queueMicrotask(() => {
      this.#rechokeScheduled = false;
      this.#rechoke();
    });
  }

  #rechoke(): void {
    if (this.#closed) return;
    const peers = [...this.#sessions].map((session) => ({
      id: session,
      interested: session.peerInterested,
      downloadRate: session.downloadRate,
      uploadRate: session.uploadRate,
      snubbed: session.snubbed,
    }));
    const unchoke = this.#choker.update(peers, { seeding: this.#have.isComplete });
    for (const session of this.#sessions) session.setChoking(!unchoke.has(session));
  }

  #emit(event: TorrentEvent): void {
    try {
      this.#onEvent?.(event);
      for (const listener of this.#listeners) listener(event);
    } catch (error) {
      // A faulty listener must not break the engine; surface it asynchronously.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}

function ignoreEarlyClose(_error: unknown): void {
  // `done` rejects only when the torrent is closed early, which its owner initiated.
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A storage that can read into a caller's buffer (`FsStorage`), which uploads reuse. */
interface ReadIntoStorage extends Storage {
  readInto(offset: number, target: Uint8Array): Promise<void>;
}

function hasReadInto(storage: Storage): storage is ReadIntoStorage {
  return typeof (storage as Partial<ReadIntoStorage>).readInto === "function";
}
