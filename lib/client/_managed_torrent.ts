/**
 * The {@linkcode TorrentHandle} behind a {@linkcode Client}: one engine at a time (a paused
 * torrent has none), its announcer and DHT search, streams' priority windows, events.
 *
 * @module
 */

import * as nodePath from "node:path";
import type { Metainfo, TorrentFile } from "../metainfo/mod.ts";
import { formatPeerAddress, type PeerAddress } from "../peer/address.ts";
import { Bitfield } from "../piece/mod.ts";
import type { Storage } from "../storage/mod.ts";
import {
  Announcer,
  createResumeData,
  type PeerListener,
  saveResumeData,
  Torrent,
  type TorrentEvent,
} from "../torrent/mod.ts";
import { EventQueue } from "./_event_queue.ts";
import { type FileStreamOptions, streamPieces, type TorrentFileHandle } from "./file_stream.ts";
import type { DhtPeerSource } from "./peer_sources.ts";
import type {
  RemoveOptions,
  TorrentEventsOptions,
  TorrentHandle,
  TorrentHandleEvent,
  TorrentHandleStats,
  TorrentState,
} from "./torrent_handle.ts";

const EVENT_QUEUE_CAPACITY = 1024;
const RESUME_INTERVAL_MS = 30_000;

/** What a torrent shares with its client. */
export interface ClientContext {
  readonly listener: PeerListener;
  readonly peerId: Uint8Array;
  readonly maxConnections: number | undefined;
  /** Called once the torrent is removed, so the client forgets it. */
  forget(torrent: ManagedTorrent): void;
}

/** How a torrent was added. */
export interface ManagedTorrentOptions {
  metainfo: Metainfo;
  storage: Storage;
  /** Close the storage on removal (false for a storage the caller gave). */
  ownsStorage: boolean;
  /** Data path on disk (file or top directory), for a storage opened by the client. */
  path?: string;
  /**
   * Resume file to keep up to date, with the storage's file paths; `synced`: flush the
   * storage before each save (otherwise the save records the boot, see `createResumeData`).
   */
  resume?: { path: string; paths: readonly string[]; synced: boolean };
  /** Pieces verified at start. */
  have: Bitfield;
  /** Fetch nothing: serve what is present. */
  seedOnly: boolean;
  /** Peers to dial at every (re)start. */
  peers: readonly PeerAddress[];
  useTrackers: boolean;
  dht: DhtPeerSource | undefined;
  paused: boolean;
}

interface Waiter {
  resolve(): void;
  reject(reason: unknown): void;
}

/** A torrent of a client; see {@linkcode TorrentHandle}. */
export class ManagedTorrent implements TorrentHandle {
  readonly metainfo: Metainfo;
  readonly files: readonly TorrentFileHandle[];
  readonly path: string | undefined;
  readonly infoHashHex: string;
  readonly #context: ClientContext;
  readonly #options: ManagedTorrentOptions;
  readonly #storage: Storage;
  readonly #done = Promise.withResolvers<void>();
  readonly #queues = new Set<EventQueue<TorrentHandleEvent>>();
  readonly #waiters = new Map<number, Set<Waiter>>();
  readonly #windows = new Map<object, readonly number[]>();
  /** Peers met, dialled again after a resume (the engine's pool goes with the engine). */
  readonly #peers = new Map<string, PeerAddress>();

  #have: Bitfield;
  #engine: Torrent | undefined;
  #announcer: Announcer | undefined;
  #unsubscribe: (() => void) | undefined;
  #stopSources: AbortController | undefined;
  #sourcing: Promise<void> | undefined;
  #state: TorrentState;
  #isDone = false;
  #serial: Promise<void> = Promise.resolve();
  #saving: Promise<void> = Promise.resolve();
  #lastSave = performance.now();
  #savedCount: number;

  constructor(context: ClientContext, options: ManagedTorrentOptions) {
    this.#context = context;
    this.#options = options;
    this.metainfo = options.metainfo;
    this.#storage = options.storage;
    this.path = options.path;
    this.infoHashHex = options.metainfo.infoHash.toHex();
    this.#have = options.have;
    this.#savedCount = options.have.count;
    for (const peer of options.peers) this.#peers.set(formatPeerAddress(peer), peer);
    this.files = options.metainfo.files.filter((file) => !file.padding).map((file) =>
      new ManagedFile(this, file)
    );
    // Nobody may await `done`: a removal before completion is no unhandled rejection.
    this.#done.promise.catch(handledByCaller);
    this.#state = "paused";
    if (this.#have.isComplete) this.#complete(false);
    if (!options.paused) this.#start();
  }

  get infoHash(): Uint8Array {
    return this.metainfo.infoHash;
  }

  get name(): string {
    return this.metainfo.name;
  }

  get pieceLength(): number {
    return this.metainfo.pieceLength;
  }

  get totalLength(): number {
    return this.metainfo.totalLength;
  }

  get state(): TorrentState {
    return this.#state;
  }

  get done(): Promise<void> {
    return this.#done.promise;
  }

  get progress(): number {
    const total = this.metainfo.totalLength;
    return total === 0 ? 1 : this.#verifiedBytes(this.#currentHave()) / total;
  }

  stats(): TorrentHandleStats {
    const base = this.#engine?.stats() ?? this.#idleStats();
    return {
      ...base,
      totalBytes: this.metainfo.totalLength,
      progress: this.progress,
      state: this.#state,
    };
  }

  has(index: number): boolean {
    return this.#currentHave().has(index);
  }

  waitFor(index: number, signal: AbortSignal): Promise<void> {
    if (this.has(index)) return Promise.resolve();
    if (this.#state === "stopped") return Promise.reject(this.#stoppedError());
    if (signal.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    let waiters = this.#waiters.get(index);
    if (!waiters) this.#waiters.set(index, waiters = new Set());
    const onAbort = () => {
      waiter.reject(signal.reason);
    };
    const waiter: Waiter = {
      resolve: () => {
        this.#dropWaiter(index, waiter);
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      reject: (reason) => {
        this.#dropWaiter(index, waiter);
        signal.removeEventListener("abort", onAbort);
        reject(reason);
      },
    };
    waiters.add(waiter);
    signal.addEventListener("abort", onAbort, { once: true });
    return promise;
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.#storage.read(offset, length);
  }

  async *events(
    options: TorrentEventsOptions = {},
  ): AsyncGenerator<TorrentHandleEvent, void, undefined> {
    const { signal } = options;
    if (signal?.aborted) return;
    const queue = new EventQueue<TorrentHandleEvent>(
      EVENT_QUEUE_CAPACITY,
      (event) => event.type !== "state" && event.type !== "done" && event.type !== "error",
    );
    const onAbort = () => queue.close();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#queues.add(queue);
    try {
      yield { type: "state", state: this.#state };
      if (this.#state === "stopped") return;
      for (;;) {
        const event = await queue.next();
        if (event === undefined) return;
        yield event;
      }
    } finally {
      this.#queues.delete(queue);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  pause(): Promise<void> {
    return this.#serially(async () => {
      if (this.#engine === undefined) return;
      await this.#stop();
      this.#setState("paused");
    });
  }

  resume(): Promise<void> {
    return this.#serially(() => {
      if (this.#state === "stopped") {
        throw new Error(`Cannot resume "${this.name}": it was removed`);
      }
      this.#start();
      return Promise.resolve();
    });
  }

  remove(options: RemoveOptions = {}): Promise<void> {
    return this.#serially(async () => {
      if (this.#state === "stopped") return;
      await this.#shutDown();
      if (options.deleteFiles) await this.#deleteFiles();
    });
  }

  /** Stops for good (the client is closing); the same as `remove()` without forgetting twice. */
  close(): Promise<void> {
    return this.remove();
  }

  /** The client's once-a-second upkeep. */
  tick(): void {
    const engine = this.#engine;
    if (!engine) return;
    const stats = engine.stats();
    if (!this.#isDone && stats.peersConnected === 0 && stats.peersConnecting === 0) {
      // Out of peers: ask the trackers again rather than wait for the regular interval.
      this.#announcer?.requestMorePeers();
    }
    if (this.#queues.size > 0) {
      this.#emit({
        type: "progress",
        stats: {
          ...stats,
          totalBytes: this.totalLength,
          progress: this.progress,
          state: this.#state,
        },
      });
    }
    if (
      this.#options.resume && engine.have.count !== this.#savedCount &&
      performance.now() - this.#lastSave >= RESUME_INTERVAL_MS
    ) {
      this.#saveResume().catch((error) => this.#emit({ type: "error", error }));
    }
  }

  /** A stream of torrent bytes `start..end`, its window steering the engine. */
  streamRange(
    start: number,
    end: number,
    options: FileStreamOptions,
  ): ReadableStream<Uint8Array<ArrayBuffer>> {
    const key = {};
    return streamPieces(this, {
      start,
      end,
      ...(options.readahead === undefined ? {} : { readahead: options.readahead }),
      ...(options.signal ? { signal: options.signal } : {}),
      onWindow: (pieces) => {
        if (pieces.length === 0) this.#windows.delete(key);
        else this.#windows.set(key, pieces);
        this.#applyPriority();
      },
    });
  }

  /** Fraction of the pieces under a byte range that are verified. */
  rangeProgress(start: number, end: number): number {
    if (end <= start) return 1;
    const have = this.#currentHave();
    const first = Math.floor(start / this.pieceLength);
    const last = Math.floor((end - 1) / this.pieceLength);
    let count = 0;
    for (let i = first; i <= last; i++) if (have.has(i)) count++;
    return count / (last - first + 1);
  }

  // --- engine lifecycle ---

  #start(): void {
    if (this.#engine || this.#state === "stopped") return;
    const { metainfo, seedOnly } = this.#options;
    const context = this.#context;
    const engine = new Torrent({
      metainfo,
      storage: this.#storage,
      have: this.#have,
      listener: context.listener,
      peerId: context.peerId,
      ...(context.maxConnections === undefined ? {} : { maxConnections: context.maxConnections }),
      // A partial seed serves what it has and fetches nothing.
      ...(seedOnly && !this.#have.isComplete ? { wantedPieces: [] } : {}),
    });
    this.#engine = engine;
    this.#unsubscribe = engine.subscribe((event) => this.#onEngineEvent(event));
    const port = context.listener.port;
    this.#announcer = !this.#options.useTrackers || metainfo.announceList.length === 0
      ? undefined
      : new Announcer({
        announceList: metainfo.announceList,
        infoHash: metainfo.infoHash,
        peerId: engine.peerId,
        port,
        stats: () => {
          const stats = engine.stats();
          const left = seedOnly ? metainfo.totalLength - stats.verifiedBytes : stats.left;
          return { uploaded: stats.uploaded, downloaded: stats.downloaded, left };
        },
        onPeers: (peers) => engine.addPeers(peers),
        onError: (url, error) => this.#emit({ type: "error", error, source: `tracker ${url}` }),
      });
    const stop = new AbortController();
    this.#stopSources = stop;
    const dht = this.#options.dht;
    this.#sourcing = dht ? this.#searchDht(dht, engine, port, stop.signal) : undefined;
    engine.start();
    engine.addPeers(this.#peers.values());
    this.#announcer?.start();
    this.#applyPriority();
    this.#setState(this.#isDone || seedOnly ? "seeding" : "downloading");
  }

  async #searchDht(
    dht: DhtPeerSource,
    engine: Torrent,
    port: number,
    signal: AbortSignal,
  ): Promise<void> {
    try {
      for await (const batch of dht.peers(this.infoHash, { signal, announcePort: port })) {
        engine.addPeers(batch);
      }
    } catch (error) {
      // The DHT failing costs only its peers: the trackers and known peers carry on.
      if (!signal.aborted) this.#emit({ type: "error", error, source: "DHT" });
    }
  }

  /** Closes the engine, keeping what it verified; says `stopped` to the trackers. */
  async #stop(): Promise<void> {
    const engine = this.#engine;
    if (!engine) return;
    this.#engine = undefined;
    this.#stopSources?.abort(new DOMException("Torrent stopped", "AbortError"));
    await engine.close();
    this.#unsubscribe?.();
    // Pieces written while closing are in the engine's `have` too.
    this.#have = Bitfield.fromBytes(engine.have.toBytes(), this.metainfo.pieceCount);
    const announcer = this.#announcer;
    this.#announcer = undefined;
    await Promise.all([announcer?.stop(), this.#sourcing]);
    this.#sourcing = undefined;
    await this.#saveResume().catch((error) => this.#emit({ type: "error", error }));
  }

  async #shutDown(): Promise<void> {
    await this.#stop();
    this.#setState("stopped");
    const error = this.#stoppedError();
    for (const waiters of [...this.#waiters.values()]) {
      for (const waiter of [...waiters]) waiter.reject(error);
    }
    for (const queue of this.#queues) queue.close();
    if (!this.#isDone) this.#done.reject(error);
    this.#context.forget(this);
    if (this.#options.ownsStorage) await this.#storage.close();
  }

  #onEngineEvent(event: TorrentEvent): void {
    switch (event.type) {
      case "piece-verified": {
        const waiters = this.#waiters.get(event.index);
        if (waiters) { for (const waiter of [...waiters]) waiter.resolve(); }
        this.#emit({ type: "piece", index: event.index });
        break;
      }
      case "peer-connected":
        this.#peers.set(formatPeerAddress(event.address), event.address);
        this.#emit({ type: "peer-connected", address: event.address });
        break;
      case "peer-disconnected":
        this.#emit({ type: "peer-disconnected", address: event.address });
        break;
      case "done":
        if (this.#engine?.have.isComplete) this.#complete(true);
        break;
      case "error":
        // A storage write failed (disk full, file too large): retrying would fail the same
        // way, so stop, keeping what is verified, until the caller resumes.
        this.#emit({ type: "error", error: event.error });
        this.#serially(async () => {
          if (this.#engine === undefined) return;
          await this.#stop();
          this.#setState("error");
        }).catch((error) => this.#emit({ type: "error", error }));
        break;
      case "piece-failed":
      case "peer-banned":
        break;
    }
  }

  #complete(running: boolean): void {
    if (this.#isDone) return;
    this.#isDone = true;
    if (running) {
      this.#setState("seeding");
      this.#announcer?.completed();
      this.#saveResume().catch((error) => this.#emit({ type: "error", error }));
    }
    this.#done.resolve();
    this.#emit({ type: "done" });
  }

  #saveResume(): Promise<void> {
    const resume = this.#options.resume;
    if (!resume) return this.#saving;
    // Snapshot first: every piece in it was written before the flush below starts.
    const have = this.#currentHave();
    const bitfield = Bitfield.fromBytes(have.toBytes(), this.metainfo.pieceCount);
    this.#lastSave = performance.now();
    this.#savedCount = bitfield.count;
    this.#saving = this.#saving.then(async () => {
      if (resume.synced) await this.#storage.flush?.();
      await saveResumeData(
        resume.path,
        await createResumeData({
          infoHash: this.infoHash,
          bitfield,
          paths: resume.paths,
          synced: resume.synced,
        }),
      );
    });
    return this.#saving;
  }

  async #deleteFiles(): Promise<void> {
    const resume = this.#options.resume;
    if (!resume) return;
    await this.#saving.catch(() => {
      // Reported when it failed; the file is being deleted anyway.
    });
    for (const path of [...resume.paths, resume.path]) await removeIfPresent(path);
    const root = this.path;
    if (root === undefined || !this.metainfo.multiFile) return;
    // Directories the torrent's files were in, deepest first, then the top one: only if empty.
    const dirs = new Set<string>();
    for (const path of resume.paths) {
      for (let dir = nodePath.dirname(path); dir.startsWith(root); dir = nodePath.dirname(dir)) {
        dirs.add(dir);
        if (dir === root) break;
      }
    }
    for (const dir of [...dirs].sort((a, b) => b.length - a.length)) {
      await removeIfEmpty(dir);
    }
  }

  // --- helpers ---

  #serially(work: () => Promise<void>): Promise<void> {
    const run = this.#serial.then(work);
    this.#serial = run.catch(handledByCaller);
    return run;
  }

  #setState(state: TorrentState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit({ type: "state", state });
  }

  #emit(event: TorrentHandleEvent): void {
    for (const queue of this.#queues) queue.push(event);
  }

  #applyPriority(): void {
    const engine = this.#engine;
    if (!engine) return;
    // Interleave the windows, so that every reader's next piece comes before anyone's second.
    const merged: number[] = [];
    const seen = new Set<number>();
    const windows = [...this.#windows.values()];
    for (let depth = 0; windows.some((w) => w.length > depth); depth++) {
      for (const window of windows) {
        const index = window[depth];
        if (index === undefined || seen.has(index)) continue;
        seen.add(index);
        merged.push(index);
      }
    }
    engine.setPriority(merged);
  }

  #dropWaiter(index: number, waiter: Waiter): void {
    const waiters = this.#waiters.get(index);
    if (!waiters) return;
    waiters.delete(waiter);
    if (waiters.size === 0) this.#waiters.delete(index);
  }

  #currentHave(): Bitfield {
    return this.#engine?.have ?? this.#have;
  }

  #verifiedBytes(have: Bitfield): number {
    const { pieceCount, pieceLength, totalLength } = this.metainfo;
    let bytes = have.count * pieceLength;
    if (pieceCount > 0 && have.has(pieceCount - 1)) {
      bytes -= pieceCount * pieceLength - totalLength;
    }
    return bytes;
  }

  #idleStats(): TorrentHandleStats {
    const have = this.#currentHave();
    const verifiedBytes = this.#verifiedBytes(have);
    return {
      downloaded: 0,
      uploaded: 0,
      verifiedBytes,
      left: this.#options.seedOnly ? 0 : this.totalLength - verifiedBytes,
      downloadRate: 0,
      uploadRate: 0,
      piecesHave: have.count,
      pieceCount: this.metainfo.pieceCount,
      piecesWanted: this.#options.seedOnly ? 0 : this.metainfo.pieceCount,
      peersConnected: 0,
      peersConnecting: 0,
      peersKnown: this.#peers.size,
      peersBanned: 0,
      bufferedBytes: 0,
      totalBytes: this.totalLength,
      progress: this.progress,
      state: this.#state,
    };
  }

  #stoppedError(): Error {
    return new Error(`Cannot read "${this.name}": the torrent was removed`);
  }
}

/** A file of a {@linkcode ManagedTorrent}. */
class ManagedFile implements TorrentFileHandle {
  readonly path: string;
  readonly pathComponents: readonly string[];
  readonly length: number;
  readonly offset: number;
  readonly #torrent: ManagedTorrent;

  constructor(torrent: ManagedTorrent, file: TorrentFile) {
    this.#torrent = torrent;
    this.path = file.path.join("/");
    this.pathComponents = file.path;
    this.length = file.length;
    this.offset = file.offset;
  }

  get progress(): number {
    return this.#torrent.rangeProgress(this.offset, this.offset + this.length);
  }

  stream(options: FileStreamOptions = {}): ReadableStream<Uint8Array<ArrayBuffer>> {
    const start = options.start ?? 0;
    const end = options.end ?? this.length;
    if (
      !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start ||
      end > this.length
    ) {
      throw new RangeError(
        `Cannot stream "${this.path}": range ${start}..${end} is outside 0..${this.length}`,
      );
    }
    return this.#torrent.streamRange(this.offset + start, this.offset + end, options);
  }

  async arrayBuffer(options: { signal?: AbortSignal } = {}): Promise<ArrayBuffer> {
    const out = new Uint8Array(this.length);
    let at = 0;
    for await (const chunk of this.stream(options.signal ? { signal: options.signal } : {})) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out.buffer;
  }
}

async function removeIfPresent(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

async function removeIfEmpty(dir: string): Promise<void> {
  try {
    await Deno.remove(dir);
  } catch (error) {
    // Something else lives there (or it is gone already): leave it.
    if (error instanceof Deno.errors.NotFound) return;
    if ((error as { code?: unknown }).code === "ENOTEMPTY") return;
    throw error;
  }
}

function handledByCaller(_error: unknown): void {
  // The promise this came from was returned to a caller, who sees the failure.
}
