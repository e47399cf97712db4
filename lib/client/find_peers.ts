import { formatPeerAddress, type PeerAddress } from "../peer/address.ts";
import { generatePeerId } from "../peer/handshake.ts";
import type { Metainfo } from "../metainfo/mod.ts";
import { announceToTiers, TrackerTiers } from "../tracker/mod.ts";

/** Options for {@linkcode findPeers}. */
export interface FindPeersOptions {
  /** Our 20-byte peer id (default: a fresh random one). */
  peerId?: Uint8Array;
  /** The port we say we listen on (default 6881). */
  port?: number;
  /** Bytes still missing (default: the whole torrent). */
  left?: number;
  /** Per-tracker timeout in milliseconds (default 15000). */
  timeoutMs?: number;
  /** Aborts the announces. */
  signal?: AbortSignal;
}

/**
 * Announces to the torrent's trackers (BEP 3, BEP 12, BEP 15), in tier order with failover,
 * and returns the peers of the first tracker that answers, without duplicates.
 *
 * @param metainfo The torrent.
 * @param options Peer id, port, timeout and abort signal.
 * @returns The peers' addresses.
 * @throws {TypeError} When the torrent names no tracker.
 * @throws {TrackerFailureError} When the only tracker refuses the announce.
 * @throws {TrackerError} When no tracker answers.
 *
 * @example Against a tracker on loopback
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { findPeers } from "./find_peers.ts";
 *
 * // A tracker that always answers with one compact peer, 127.0.0.1:6881.
 * await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () =>
 *   new Response(new Uint8Array([
 *     ...new TextEncoder().encode("d8:intervali60e5:peers6:"), 127, 0, 0, 1, 0x1a, 0xe1, 0x65,
 *   ])));
 * const { metainfo } = await createTorrent({ name: "x", data: new Uint8Array(1) }, {
 *   announce: `http://127.0.0.1:${server.addr.port}/announce`,
 * });
 * assert.deepEqual(await findPeers(metainfo), [{ host: "127.0.0.1", port: 6881 }]);
 * ```
 */
export async function findPeers(
  metainfo: Metainfo,
  options: FindPeersOptions = {},
): Promise<PeerAddress[]> {
  if (metainfo.announceList.length === 0) {
    throw new TypeError("Cannot find peers: the torrent names no tracker (use --peer)");
  }
  const { response } = await announceToTiers(new TrackerTiers(metainfo.announceList), {
    infoHash: metainfo.infoHash,
    peerId: options.peerId ?? generatePeerId(),
    port: options.port ?? 6881,
    uploaded: 0,
    downloaded: 0,
    left: options.left ?? metainfo.totalLength,
    event: "started",
  }, {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  });
  const seen = new Set<string>();
  return response.peers.filter((peer) => {
    const key = formatPeerAddress(peer);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
