/**
 * A BitTorrent client for programs: many torrents, one listening port, one peer id.
 *
 * @module
 */

import * as nodePath from "node:path";
import { type Metainfo, parseMetainfo } from "../metainfo/mod.ts";
import type { PeerAddress } from "../peer/address.ts";
import { generatePeerId } from "../peer/handshake.ts";
import { Bitfield } from "../piece/mod.ts";
import { FsStorage, safePathComponents, type Storage } from "../storage/mod.ts";
import {
  checkExisting,
  mustSyncBeforeResumeSave,
  PeerListener,
  type RecheckProgress,
  resumePathFor,
  verifyStorage,
} from "../torrent/mod.ts";
import { ManagedTorrent } from "./_managed_torrent.ts";
import { resolveMagnet } from "./magnet.ts";
import { DhtPeerSource } from "./peer_sources.ts";
import type { TorrentHandle } from "./torrent_handle.ts";
import { listenForPeers } from "./_listen.ts";

/** Options for {@linkcode Client}. */
export interface ClientOptions {
  /** Port to accept peers on (default: 6881, or the next free one up to 6889, else any; 0: any). */
  port?: number;
  /** Interface to accept peers on (default `0.0.0.0`). */
  hostname?: string;
  /** Our 20-byte peer id (default: a fresh random one). */
  peerId?: Uint8Array;
  /** Most peer connections per torrent (default 50). */
  maxConnections?: number;
  /** Ask the torrents' trackers for peers (default true). */
  useTrackers?: boolean;
  /**
   * Search the DHT (BEP 5) for peers, joining through these nodes. Off unless given. The
   * routing table is kept in `statePath` between runs (default: not kept).
   */
  dht?: { bootstrap: readonly PeerAddress[]; statePath?: string; host?: string };
  /** Period of `progress` events and upkeep, in ms (default 1000). */
  tickMs?: number;
  /**
   * Sync downloaded data to disk before each resume save, so the resume files hold across a
   * power cut. Off by default, as for the `download` command: the resume file records the boot
   * and the data is rechecked after a restart of the machine. Always on where the boot cannot
   * be identified.
   */
  fsync?: boolean;
  /** Closes the client (as {@linkcode Client.close}) when aborted. */
  signal?: AbortSignal;
}

/** What {@linkcode Client.add} accepts: `.torrent` bytes, a parsed torrent, or a magnet link. */
export type TorrentSource = Uint8Array | Metainfo | string;

/** Options for {@linkcode Client.add}. */
export interface AddOptions {
  /**
   * Directory to download into: the data goes to `<dir>/<name>` (the torrent's name,
   * sanitised). Default: the current directory.
   */
  dir?: string;
  /** The data's exact path instead (the file, or the top directory of a multi-file torrent). */
  path?: string;
  /**
   * A storage of your own instead of files (e.g. a `MemoryStorage`): its pieces are hashed to
   * find what it holds; no resume file is kept; it is not closed on removal.
   */
  storage?: Storage;
  /** Peers to dial besides those the trackers and the DHT name. */
  peers?: readonly PeerAddress[];
  /** Ask this torrent's trackers (default: the client's `useTrackers`). */
  useTrackers?: boolean;
  /** Add without starting; `resume()` starts it (default false). */
  paused?: boolean;
  /** Time allowed to fetch a magnet link's metadata, in ms (default 60000). */
  metadataTimeoutMs?: number;
  /** Called while data already on disk is checked. */
  onCheck?: (progress: RecheckProgress) => void;
  /** Aborts adding (metadata fetch, data check); the promise rejects with the reason. */
  signal?: AbortSignal;
}

const DEFAULT_TICK_MS = 1000;

/**
 * A BitTorrent client (BEP 3): add torrents by `.torrent` bytes, parsed metainfo or magnet
 * link (BEP 9); each downloads in the background from the trackers' peers (BEP 12/15), the DHT
 * (BEP 5, when configured) and the peers you name, verifies every piece, keeps a resume file
 * beside the data, and seeds once complete. Files read as streams while they download.
 * One port accepts peers for every torrent. `close()` (or `await using`) releases every
 * socket, timer and file.
 *
 * @example Download a torrent into a directory
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { MemoryStorage } from "../storage/mod.ts";
 * import { serveTorrent } from "../torrent/mod.ts";
 * import { Client } from "./client.ts";
 *
 * const data = new Uint8Array(100_000).map((_, i) => (i * 31) % 251);
 * const { torrent, metainfo } = await createTorrent({ name: "x.bin", data }, {
 *   pieceLength: 16384,
 * });
 * const source = new MemoryStorage(data.length);
 * await source.write(0, data);
 * await using seeder = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
 *
 * const dir = await Deno.makeTempDir();
 * {
 *   await using client = new Client({ port: 0, hostname: "127.0.0.1" });
 *   const handle = await client.add(torrent, {
 *     dir,
 *     peers: [{ host: "127.0.0.1", port: seeder.port }],
 *   });
 *   assert.equal(handle.name, "x.bin");
 *   await handle.done;
 *   assert.equal(handle.progress, 1);
 * }
 * assert.deepEqual(await Deno.readFile(`${dir}/x.bin`), data);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class Client implements AsyncDisposable {
  readonly #listener: PeerListener;
  readonly #peerId: Uint8Array;
  readonly #options: ClientOptions;
  readonly #torrents = new Map<string, ManagedTorrent>();
  /** Info hashes being added (metadata fetch, data check). */
  readonly #adding = new Set<string>();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #abort = new AbortController();
  readonly #timer: ReturnType<typeof setInterval>;
  #dht: Promise<DhtPeerSource> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Starts listening for peers; torrents are added with {@linkcode Client.add}.
   *
   * @param options Port, peer id, limits, DHT, abort signal.
   * @throws {Deno.errors.AddrInUse} If the port asked for is taken.
   * @throws {TypeError} If the peer id is not 20 bytes.
   */
  constructor(options: ClientOptions = {}) {
    if (options.peerId !== undefined && options.peerId.length !== 20) {
      throw new TypeError(
        `Cannot create client: peer id must be 20 bytes, got "${options.peerId.length}"`,
      );
    }
    this.#options = options;
    this.#peerId = options.peerId ?? generatePeerId();
    this.#listener = listenForPeers({
      ...(options.hostname !== undefined ? { hostname: options.hostname } : {}),
      ...(options.port !== undefined ? { port: options.port } : {}),
      peerId: this.#peerId,
    });
    this.#timer = setInterval(() => {
      for (const torrent of this.#torrents.values()) torrent.tick();
    }, options.tickMs ?? DEFAULT_TICK_MS);
    const signal = options.signal;
    if (signal?.aborted) this.#closeOnAbort();
    else signal?.addEventListener("abort", this.#closeOnAbort, { once: true });
  }

  /** The port peers connect to. */
  get port(): number {
    return this.#listener.port;
  }

  /** Our 20-byte peer id. */
  get peerId(): Uint8Array {
    return this.#peerId;
  }

  /** The torrents added and not removed, in the order they were added. */
  get torrents(): readonly TorrentHandle[] {
    return [...this.#torrents.values()];
  }

  /** Whether {@linkcode Client.close} was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Finds an added torrent.
   *
   * @param infoHash The 20-byte info hash, or its 40 hex digits.
   * @returns The torrent, or `undefined`.
   */
  get(infoHash: Uint8Array | string): TorrentHandle | undefined {
    const hex = typeof infoHash === "string" ? infoHash.toLowerCase() : infoHash.toHex();
    return this.#torrents.get(hex);
  }

  /**
   * Adds a torrent and starts downloading it (BEP 3). A magnet link's metadata is fetched from
   * peers first (BEP 9). Data already at the destination is checked (a matching resume file is
   * trusted, otherwise it is hashed), so adding complete data seeds it.
   *
   * @param source `.torrent` bytes, a parsed {@linkcode Metainfo}, or a `magnet:` link.
   * @param options Destination, peers, abort signal.
   * @returns The torrent; its `done` resolves once every piece is verified.
   * @throws {TypeError} If `source` is none of the accepted kinds.
   * @throws {MetainfoError} If the torrent bytes are not a valid torrent.
   * @throws {MagnetError} If the magnet link cannot be parsed.
   * @throws {MetadataFetchError} If no peer served a magnet link's metadata in time.
   * @throws {Error} If the torrent is already added, the client is closed, or the destination
   * cannot be opened.
   *
   * @example Adding complete data seeds it
   * ```ts
   * import assert from "node:assert/strict";
   * import { createTorrent } from "../metainfo/mod.ts";
   * import { MemoryStorage } from "../storage/mod.ts";
   * import { Client } from "./client.ts";
   *
   * const data = new TextEncoder().encode("hello\0world");
   * const { metainfo } = await createTorrent({ name: "hello.txt", data }, { pieceLength: 4 });
   * const storage = new MemoryStorage(data.length);
   * await storage.write(0, data);
   * await using client = new Client({ port: 0, hostname: "127.0.0.1" });
   * const handle = await client.add(metainfo, { storage });
   * assert.equal(handle.state, "seeding");
   * assert.equal(client.get(metainfo.infoHash), handle);
   * await assert.rejects(client.add(metainfo, { storage }), /already added/);
   * ```
   */
  add(source: TorrentSource, options: AddOptions = {}): Promise<TorrentHandle> {
    return this.#track(this.#add(source, options, false));
  }

  /**
   * Seeds data that is already on disk: like {@linkcode Client.add} with `path`, but the files
   * must exist with the torrent's sizes (nothing is created), missing pieces are not fetched,
   * and at least one piece must match.
   *
   * @param source `.torrent` bytes, a parsed {@linkcode Metainfo}, or a `magnet:` link.
   * @param path The file (single-file torrent) or the top directory.
   * @param options Peers, trackers, abort signal.
   * @returns The seeding torrent.
   * @throws {Error} If a file is missing or of the wrong size, or no piece matches.
   *
   * @example Seed a file, download it with a second client
   * ```ts
   * import assert from "node:assert/strict";
   * import { createTorrent } from "../metainfo/mod.ts";
   * import { MemoryStorage } from "../storage/mod.ts";
   * import { Client } from "./client.ts";
   *
   * const dir = await Deno.makeTempDir();
   * const data = new Uint8Array(70_000).map((_, i) => i % 251);
   * await Deno.writeFile(`${dir}/x.bin`, data);
   * const { metainfo } = await createTorrent({ name: "x.bin", data }, { pieceLength: 16384 });
   *
   * await using seeder = new Client({ port: 0, hostname: "127.0.0.1" });
   * const seeding = await seeder.seed(metainfo, `${dir}/x.bin`);
   * assert.equal(seeding.state, "seeding");
   *
   * await using leecher = new Client({ port: 0, hostname: "127.0.0.1" });
   * const storage = new MemoryStorage(data.length);
   * const handle = await leecher.add(metainfo, {
   *   storage,
   *   peers: [{ host: "127.0.0.1", port: seeder.port }],
   * });
   * await handle.done;
   * assert.deepEqual(storage.bytes, data);
   * await seeder.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  seed(
    source: TorrentSource,
    path: string,
    options: Omit<AddOptions, "dir" | "path" | "storage"> = {},
  ): Promise<TorrentHandle> {
    return this.#track(this.#add(source, { ...options, path }, true));
  }

  /**
   * Stops every torrent (trackers hear `stopped`, resume files are saved), closes every
   * connection, the listening port, the DHT socket, every file and timer. Streams error and
   * event iterations end. Adds still in progress are aborted. Idempotent.
   *
   * @returns Once everything is released.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#options.signal?.removeEventListener("abort", this.#closeOnAbort);
      clearInterval(this.#timer);
      this.#abort.abort(new DOMException("Client closed", "AbortError"));
      while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
      const results = await Promise.allSettled(
        [...this.#torrents.values()].map((torrent) => torrent.close()),
      );
      const dht = this.#dht;
      await Promise.all([this.#listener.close(), dht?.then((source) => source.close())]);
      const failed = results.find((result) => result.status === "rejected");
      if (failed) throw failed.reason;
    })();
    return this.#closing;
  }

  /** Same as {@linkcode Client.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #closeOnAbort = () => {
    // Nobody awaits an abort: a failure to close goes to the global error handler.
    this.close().catch(reportError);
  };

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise);
    const forget = () => this.#pending.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  async #add(
    source: TorrentSource,
    options: AddOptions,
    seedOnly: boolean,
  ): Promise<TorrentHandle> {
    this.#throwIfClosed();
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#abort.signal])
      : this.#abort.signal;
    const found: PeerAddress[] = [];
    const metainfo = await this.#metainfoOf(source, options, signal, found);
    const hex = metainfo.infoHash.toHex();
    if (this.#torrents.has(hex) || this.#adding.has(hex)) {
      throw new Error(`Cannot add torrent "${metainfo.name}" (${hex}): it is already added`);
    }
    this.#adding.add(hex);
    try {
      const opened = await this.#open(metainfo, options, seedOnly, signal);
      if (this.closed) {
        if (opened.ownsStorage) await opened.storage.close();
        this.#throwIfClosed();
      }
      const useTrackers = options.useTrackers ?? this.#options.useTrackers ?? true;
      const torrent = new ManagedTorrent({
        listener: this.#listener,
        peerId: this.#peerId,
        maxConnections: this.#options.maxConnections,
        forget: (torrent) => {
          if (this.#torrents.get(torrent.infoHashHex) === torrent) {
            this.#torrents.delete(torrent.infoHashHex);
          }
        },
      }, {
        ...opened,
        metainfo,
        seedOnly,
        peers: [...(options.peers ?? []), ...found],
        useTrackers,
        dht: this.#options.dht ? await this.#openDht() : undefined,
        paused: options.paused ?? false,
      });
      this.#torrents.set(hex, torrent);
      return torrent;
    } finally {
      this.#adding.delete(hex);
    }
  }

  async #metainfoOf(
    source: TorrentSource,
    options: AddOptions,
    signal: AbortSignal,
    found: PeerAddress[],
  ): Promise<Metainfo> {
    if (source instanceof Uint8Array) return parseMetainfo(source);
    if (typeof source === "string") {
      if (!/^magnet:/i.test(source)) {
        throw new TypeError(
          `Cannot add torrent: a string must be a magnet link, got "${source.slice(0, 60)}"`,
        );
      }
      const dht = this.#options.dht ? await this.#openDht() : undefined;
      return await resolveMagnet(source, {
        signal,
        peerId: this.#peerId,
        port: this.#listener.port,
        useTrackers: options.useTrackers ?? this.#options.useTrackers ?? true,
        // The peers that served the metadata likely serve the data too.
        onPeers: (peers) => found.push(...peers.slice(0, 200 - found.length)),
        ...(options.peers ? { peers: options.peers } : {}),
        ...(dht ? { dht } : {}),
        ...(options.metadataTimeoutMs === undefined
          ? {}
          : { timeoutMs: options.metadataTimeoutMs }),
      });
    }
    if (
      typeof source === "object" && source !== null && source.infoHash instanceof Uint8Array &&
      Array.isArray(source.files)
    ) {
      return source;
    }
    throw new TypeError(
      "Cannot add torrent: expected .torrent bytes, a parsed Metainfo or a magnet link",
    );
  }

  async #open(
    metainfo: Metainfo,
    options: AddOptions,
    seedOnly: boolean,
    signal: AbortSignal,
  ): Promise<{
    storage: Storage;
    ownsStorage: boolean;
    have: Bitfield;
    path?: string;
    resume?: { path: string; paths: readonly string[]; synced: boolean };
  }> {
    if (options.storage) {
      const storage = options.storage;
      if (storage.totalLength !== metainfo.totalLength) {
        throw new RangeError(
          `Cannot add torrent "${metainfo.name}": storage holds ${storage.totalLength} bytes, expected ${metainfo.totalLength}`,
        );
      }
      const have = await verifyStorage(metainfo, storage, { signal });
      return { storage, ownsStorage: false, have };
    }
    // The torrent's name is untrusted: as a default path it must stay one plain name.
    const path = nodePath.resolve(
      options.path ?? nodePath.join(options.dir ?? ".", safePathComponents([metainfo.name])[0]!),
    );
    if (seedOnly) await checkFiles(metainfo, path);
    else if (!metainfo.multiFile) await Deno.mkdir(nodePath.dirname(path), { recursive: true });
    const synced = mustSyncBeforeResumeSave(this.#options.fsync);
    let storage: FsStorage;
    try {
      storage = await FsStorage.open({
        root: path,
        files: metainfo.files.map((file) => ({ path: file.path, length: file.length })),
        singleFile: !metainfo.multiFile,
        backgroundSync: synced,
      });
    } catch (cause) {
      const detail = cause instanceof Error ? cause.message : String(cause);
      throw new Error(`Cannot open "${path}": ${detail}`, { cause });
    }
    try {
      const resumePath = resumePathFor(path);
      const have = await checkExisting({
        metainfo,
        paths: storage.paths,
        resumePath,
        signal,
        ...(options.onCheck ? { onProgress: options.onCheck } : {}),
      });
      if (seedOnly && have.count === 0) {
        throw new Error(
          `Cannot seed "${metainfo.name}": none of its ${metainfo.pieceCount} pieces matches the data in "${path}"`,
        );
      }
      return {
        storage,
        ownsStorage: true,
        have,
        path,
        resume: { path: resumePath, paths: storage.paths, synced },
      };
    } catch (error) {
      await storage.close();
      throw error;
    }
  }

  #openDht(): Promise<DhtPeerSource> {
    const dht = this.#options.dht!;
    this.#dht ??= DhtPeerSource.open({
      bootstrap: dht.bootstrap,
      statePath: dht.statePath ?? false,
      ...(dht.host === undefined ? {} : { host: dht.host }),
    });
    return this.#dht;
  }

  #throwIfClosed(): void {
    if (this.closed) throw new Error("Cannot add torrent: the client is closed");
  }
}

/** Refuses, before anything is opened, data that is missing or sized differently. */
async function checkFiles(metainfo: Metainfo, path: string): Promise<void> {
  const where = `Cannot seed "${metainfo.name}" from "${path}"`;
  const files = metainfo.multiFile
    ? metainfo.files.filter((file) => !file.padding).map((file) => ({
      at: nodePath.join(path, ...safePathComponents(file.path)),
      name: file.path.join("/"),
      length: file.length,
    }))
    : [{ at: path, name: metainfo.name, length: metainfo.totalLength }];
  for (const file of files) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(file.at);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(`${where}: "${file.name}" is missing`, { cause: error });
      }
      throw error;
    }
    if (!info.isFile || info.size !== file.length) {
      throw new Error(`${where}: "${file.name}" has ${info.size} bytes, expected ${file.length}`);
    }
  }
}
