/**
 * denotorrent: a BitTorrent client library for Deno, streams first.
 *
 * - {@linkcode decode} / {@linkcode encode}: strict bencode (BEP 3).
 * - {@linkcode parseMetainfo}, {@linkcode createTorrent}, {@linkcode parseMagnet}: torrents and
 *   magnet links.
 * - {@linkcode findPeers}, {@linkcode announce}: HTTP and UDP trackers (BEP 3, 12, 15).
 * - {@linkcode PeerConnection}: the peer wire protocol over `Deno.Conn`, as Web Streams.
 * - {@linkcode downloadPiece}: fetch one verified piece from a swarm.
 *
 * @example Reading a torrent
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent, parseMetainfo } from "./mod.ts";
 *
 * const { torrent } = await createTorrent({ name: "hello.txt", data: new Uint8Array(40_000) }, {
 *   pieceLength: 16384,
 *   announce: "http://127.0.0.1:6969/announce",
 * });
 * const metainfo = parseMetainfo(torrent);
 * assert.equal(metainfo.pieceCount, 3);
 * assert.equal(metainfo.infoHash.length, 20);
 * ```
 *
 * @module
 */
export * from "./lib/bencode/mod.ts";
export * from "./lib/metainfo/mod.ts";
export * from "./lib/tracker/mod.ts";
export * from "./lib/peer/mod.ts";
export * from "./lib/piece/mod.ts";
export * from "./lib/storage/mod.ts";
export * from "./lib/dht/mod.ts";
export * from "./lib/client/mod.ts";
export * from "./lib/torrent/mod.ts";
