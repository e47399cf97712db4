/**
 * Tracker clients: HTTP(S) announces (BEP 3, compact peers BEP 23, IPv6 peers BEP 7), UDP
 * announces (BEP 15) and multitracker tiers (BEP 12).
 *
 * @example Announce to whichever tracker of a torrent answers
 * ```ts
 * import assert from "node:assert/strict";
 * import { announceToTiers, TrackerTiers } from "./mod.ts";
 *
 * const body = new Uint8Array([
 *   ...new TextEncoder().encode("d8:intervali60e5:peers6:"),
 *   127, 0, 0, 1, 0x1a, 0xe1, // 127.0.0.1:6881
 *   0x65, // "e"
 * ]);
 * await using server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   () => new Response(body),
 * );
 * const url = `http://127.0.0.1:${server.addr.port}/announce`;
 * const tiers = new TrackerTiers([[url]]);
 * const result = await announceToTiers(tiers, {
 *   infoHash: new Uint8Array(20),
 *   peerId: new Uint8Array(20),
 *   port: 6881,
 *   uploaded: 0,
 *   downloaded: 0,
 *   left: 0,
 * });
 * assert.equal(result.url, url);
 * assert.deepEqual(result.response.peers, [{ host: "127.0.0.1", port: 6881 }]);
 * ```
 *
 * @module
 */
export * from "./announce.ts";
export { buildAnnounceUrl, parseAnnounceResponse, percentEncodeBytes } from "./http_codec.ts";
export * from "./http.ts";
export * from "./udp.ts";
export * from "./tiers.ts";
export * from "./client.ts";
