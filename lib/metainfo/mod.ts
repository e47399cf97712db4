/**
 * BitTorrent v1 metainfo: parse `.torrent` files (BEP 3, with BEP 12 tracker tiers, BEP 19 web
 * seeds and BEP 27 private flag), create torrents from data in memory, hash pieces
 * incrementally, and parse and format magnet links (BEP 9).
 *
 * @example Create, parse, and link
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent, formatMagnet, parseMagnet, parseMetainfo } from "./mod.ts";
 *
 * const data = new TextEncoder().encode("Hello,\0world");
 * const { torrent } = await createTorrent({ name: "greeting" , data }, { pieceLength: 5 });
 * const meta = parseMetainfo(torrent);
 * assert.equal(meta.pieceCount, 3);
 * const magnet = formatMagnet({ infoHash: meta.infoHash, trackers: [], peers: [], webSeeds: [] });
 * assert.deepEqual(parseMagnet(magnet).infoHash, meta.infoHash);
 * ```
 *
 * @module
 */
export {
  MAX_PIECE_LENGTH,
  type Metainfo,
  MetainfoError,
  parseMetainfo,
  type ParseMetainfoOptions,
  pieceHash,
  pieceLength,
  type TorrentFile,
} from "./metainfo.ts";
export {
  choosePieceLength,
  type CreatedTorrent,
  createTorrent,
  type CreateTorrentFile,
  type CreateTorrentInput,
  type CreateTorrentOptions,
  PieceHasher,
  type PieceHasherOptions,
} from "./create.ts";
export {
  formatMagnet,
  MagnetError,
  type MagnetLink,
  MAX_MAGNET_LENGTH,
  parseMagnet,
} from "./magnet.ts";
export * from "./create_from_path.ts";
