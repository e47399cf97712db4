/**
 * Whole operations built from the lower layers, as the CLI uses them: read a torrent file,
 * find peers, shake hands, download a piece.
 *
 * @example Reading a torrent file
 * ```ts
 * import assert from "node:assert/strict";
 * import { readTorrentFile } from "./mod.ts";
 *
 * await assert.rejects(readTorrentFile("/no/such.torrent"), /no such file/);
 * ```
 *
 * @module
 */
export * from "./find_peers.ts";
export * from "./handshake_peer.ts";
export * from "./torrent_file.ts";
export * from "./download_piece.ts";
export * from "./download.ts";
export * from "./demo.ts";
export * from "./magnet.ts";
export * from "./peer_sources.ts";
export * from "./seed.ts";
export * from "./create.ts";
export { type AddOptions, Client, type ClientOptions, type TorrentSource } from "./client.ts";
export type {
  RemoveOptions,
  TorrentEventsOptions,
  TorrentHandle,
  TorrentHandleEvent,
  TorrentHandleStats,
  TorrentState,
} from "./torrent_handle.ts";
export {
  type FileStreamOptions,
  type PieceReader,
  streamPieces,
  type StreamPiecesOptions,
  type TorrentFileHandle,
} from "./file_stream.ts";
export {
  type FileServer,
  type HttpFile,
  parseRange,
  serveFile,
  type ServeFileOptions,
} from "./http_stream.ts";
