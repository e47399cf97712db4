/**
 * The BitTorrent engine: a {@linkcode Torrent} downloads from and uploads to
 * many peers, a {@linkcode PeerListener} accepts incoming connections, and
 * {@linkcode serveTorrent} seeds a torrent with one call. The state machines
 * behind them ({@linkcode PeerPool}, {@linkcode Choker}) are exported too.
 *
 * @example Seed and download over loopback
 * ```ts
 * import { serveTorrent, Torrent } from "./mod.ts";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { MemoryStorage } from "../storage/mod.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new TextEncoder().encode("hello\0world, ".repeat(5000));
 * const { metainfo } = await createTorrent({ name: "hello.txt", data }, { pieceLength: 16384 });
 * const source = new MemoryStorage(data.length);
 * await source.write(0, data);
 * await using server = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
 *
 * const storage = new MemoryStorage(data.length);
 * await using torrent = new Torrent({ metainfo, storage });
 * torrent.start();
 * torrent.addPeers([{ host: "127.0.0.1", port: server.port }]);
 * await torrent.done;
 * assert.deepEqual(storage.bytes, data);
 * assert.equal(torrent.stats().piecesHave, metainfo.pieceCount);
 * ```
 *
 * @module
 */

export {
  Torrent,
  type TorrentEvent,
  type TorrentInfo,
  type TorrentOptions,
  type TorrentStats,
} from "./torrent.ts";
export { type ServedTorrent, serveTorrent, type ServeTorrentOptions } from "./serve.ts";
export {
  DEFAULT_RESERVED,
  type IncomingPeerHandler,
  PeerListener,
  type PeerListenerOptions,
} from "./listener.ts";
export {
  PeerSession,
  type PeerSessionOptions,
  type PeerSessionStats,
  type SessionConnection,
  type SessionHost,
} from "./peer_session.ts";
export {
  DEFAULT_MAX_BUFFERED_BYTES,
  PieceBuffer,
  type PieceBufferGeometry,
  type PieceBufferOptions,
} from "./piece_buffer.ts";
export {
  type PeerAddressState,
  PeerPool,
  type PeerPoolCounts,
  type PeerPoolOptions,
} from "./peer_pool.ts";
export { Choker, type ChokerOptions, type ChokerPeer } from "./choker.ts";
export {
  Announcer,
  type AnnouncerOptions,
  type AnnouncerStats,
  type AnnouncerTimers,
  type TrackerStatus,
} from "./announcer.ts";
export {
  checkExisting,
  type CheckExistingOptions,
  type CheckExistingTorrent,
  createResumeData,
  type CreateResumeDataOptions,
  currentBootId,
  loadResumeData,
  mustSyncBeforeResumeSave,
  type RecheckProgress,
  RESUME_VERSION,
  type ResumeData,
  type ResumeDecision,
  type ResumeFileRecord,
  resumePathFor,
  saveResumeData,
} from "./resume.ts";
export * from "./progress.ts";
export {
  type ExtensionHooks,
  type ExtensionPeer,
  type ExtensionReceipt,
  SessionExtensions,
  type SessionExtensionsOptions,
} from "./extensions.ts";
export {
  PeerExchange,
  type PeerExchangeOptions,
  type PeerExchangeStats,
  type PexSession,
  type PexSettings,
} from "./pex.ts";
export { verifyStorage, type VerifyStorageOptions } from "./verify_storage.ts";
