import { PeerListener } from "../torrent/mod.ts";

/**
 * Listens for peers on `port` when given, else on 6881 or the next free port up to 6889 (the
 * customary BitTorrent range), else on any free port.
 */
export function listenForPeers(
  options: { hostname?: string; port?: number; peerId?: Uint8Array },
): PeerListener {
  const hostname = options.hostname ?? "0.0.0.0";
  const peerId = options.peerId ? { peerId: options.peerId } : {};
  if (options.port !== undefined) {
    return PeerListener.listen({ hostname, port: options.port, ...peerId });
  }
  for (let port = 6881; port <= 6889; port++) {
    try {
      return PeerListener.listen({ hostname, port, ...peerId });
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  return PeerListener.listen({ hostname, port: 0, ...peerId });
}
