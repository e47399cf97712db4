/**
 * The torrent a {@linkcode Client} hands out: state, counters, files, events, and control.
 *
 * @module
 */

import type { Metainfo } from "../metainfo/mod.ts";
import type { PeerAddress } from "../peer/address.ts";
import type { TorrentStats } from "../torrent/mod.ts";
import type { PieceReader, TorrentFileHandle } from "./file_stream.ts";

/**
 * Where a torrent of a {@linkcode Client} stands: `downloading` (pieces wanted), `seeding`
 * (every piece verified, or seeding only what is present), `paused` (no connections),
 * `error` (stopped by a storage failure; `resume()` retries) or `stopped` (removed, or the
 * client closed: final).
 */
export type TorrentState = "downloading" | "seeding" | "paused" | "error" | "stopped";

/** Counters of a {@linkcode TorrentHandle}: the engine's, plus totals and state. */
export interface TorrentHandleStats extends TorrentStats {
  /** Total bytes of the torrent. */
  totalBytes: number;
  /** Fraction of the wanted bytes verified, from 0 to 1. */
  progress: number;
  /** The torrent's state. */
  state: TorrentState;
}

/**
 * Something that happened to a {@linkcode TorrentHandle}, as yielded by
 * {@linkcode TorrentHandle.events}: `state` changes (the first event is always the current
 * state), `progress` about once a second while running, each `piece` verified, peers that
 * come and go, `done` when the download completes, and `error`: with a `source` (`tracker
 * <url>`, `DHT`) a peer source failed and the others carry on; without one, storage failed and
 * the torrent stopped in state `error`.
 */
export type TorrentHandleEvent =
  | { type: "state"; state: TorrentState }
  | { type: "progress"; stats: TorrentHandleStats }
  | { type: "piece"; index: number }
  | { type: "peer-connected"; address: PeerAddress }
  | { type: "peer-disconnected"; address: PeerAddress }
  | { type: "done" }
  | { type: "error"; error: unknown; source?: string };

/** Options for {@linkcode TorrentHandle.events}. */
export interface TorrentEventsOptions {
  /** Ends the iteration. */
  signal?: AbortSignal;
}

/** Options for {@linkcode TorrentHandle.remove}. */
export interface RemoveOptions {
  /** Also delete the downloaded files and the resume file (default false). */
  deleteFiles?: boolean;
}

/**
 * A torrent added to a {@linkcode Client}: it downloads (and uploads) in the background from
 * the moment it is added, until paused, removed, or the client closes.
 *
 * @example Download, follow the events, remove
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { MemoryStorage } from "../storage/mod.ts";
 * import { serveTorrent } from "../torrent/mod.ts";
 * import { Client } from "./client.ts";
 *
 * const data = crypto.getRandomValues(new Uint8Array(50_000));
 * const { metainfo } = await createTorrent({ name: "x.bin", data }, { pieceLength: 16384 });
 * const source = new MemoryStorage(data.length);
 * await source.write(0, data);
 * await using seeder = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
 *
 * await using client = new Client({ port: 0, hostname: "127.0.0.1" });
 * const torrent = await client.add(metainfo, {
 *   storage: new MemoryStorage(data.length),
 *   peers: [{ host: "127.0.0.1", port: seeder.port }],
 * });
 * const pieces: number[] = [];
 * for await (const event of torrent.events()) {
 *   if (event.type === "piece") pieces.push(event.index);
 *   if (event.type === "done") break;
 * }
 * assert.equal(pieces.length, metainfo.pieceCount);
 * assert.equal(torrent.progress, 1);
 * assert.equal(torrent.state, "seeding");
 * await torrent.remove();
 * assert.equal(torrent.state, "stopped");
 * ```
 */
export interface TorrentHandle extends PieceReader {
  /** The 20-byte info hash. */
  readonly infoHash: Uint8Array;
  /** The info hash as 40 lowercase hex digits. */
  readonly infoHashHex: string;
  /** The torrent's name. */
  readonly name: string;
  /** The parsed torrent. */
  readonly metainfo: Metainfo;
  /** The files, in torrent order (BEP 47 padding files left out). */
  readonly files: readonly TorrentFileHandle[];
  /** Where the data is on disk (the file, or the top directory), unless a storage was given. */
  readonly path: string | undefined;
  /** Fraction of the wanted bytes verified, from 0 to 1. */
  readonly progress: number;
  /** The current state. */
  readonly state: TorrentState;
  /**
   * Resolves when every piece is verified and stored; rejects if the torrent is removed or the
   * client closed first.
   */
  readonly done: Promise<void>;
  /**
   * A snapshot of the counters.
   *
   * @returns The counters, state and progress.
   */
  stats(): TorrentHandleStats;
  /**
   * Typed events as they happen, starting with the current state; the iteration ends when the
   * torrent is removed, the client closes, the loop breaks or `signal` aborts. A consumer that
   * falls more than 1024 events behind loses the oldest progress, piece and peer events.
   *
   * @param options Abort signal.
   * @returns An async iterable of events.
   */
  events(options?: TorrentEventsOptions): AsyncGenerator<TorrentHandleEvent, void, undefined>;
  /**
   * Disconnects every peer and stops announcing (trackers hear `stopped`); verified pieces and
   * the resume file are kept. Streams wait until {@linkcode TorrentHandle.resume}.
   *
   * @returns Once every connection is closed.
   */
  pause(): Promise<void>;
  /**
   * Starts a paused torrent again (or one stopped by a storage error).
   *
   * @returns Once restarted.
   * @throws {Error} If the torrent was removed.
   */
  resume(): Promise<void>;
  /**
   * Stops the torrent for good and forgets it: connections, timers and files are closed,
   * streams error, event iterations end, `done` rejects if it had not resolved.
   *
   * @param options Whether to delete the data and resume file too.
   * @returns Once everything is released.
   */
  remove(options?: RemoveOptions): Promise<void>;
}
