import type { PeerAddress } from "../peer/address.ts";
import { PeerConnection } from "../peer/connection.ts";
import { generatePeerId, reservedBits } from "../peer/handshake.ts";

/** Options for {@linkcode handshakePeer}. */
export interface HandshakePeerOptions {
  /** Our 20-byte peer id (default: a fresh random one). */
  peerId?: Uint8Array;
  /** Connect-plus-handshake timeout in milliseconds (default 10000). */
  timeoutMs?: number;
  /** Aborts the attempt. */
  signal?: AbortSignal;
}

/** What a peer said about itself in its handshake. */
export interface PeerHello {
  /** The remote peer's 20-byte id. */
  peerId: Uint8Array;
  /** The remote peer's 8 reserved bytes (extension bits). */
  reserved: Uint8Array;
}

/**
 * Connects to a peer, exchanges BitTorrent handshakes (BEP 3, with the extension-protocol bit
 * set), checks that the peer answers with the same info hash, and hangs up.
 *
 * @param address The peer.
 * @param infoHash The torrent's 20-byte info hash.
 * @param options Peer id, timeout and abort signal.
 * @returns The remote peer id and reserved bytes.
 * @throws {HandshakeError} When the peer answers with another info hash or a broken handshake.
 * @throws {Error} When the connection is refused or times out.
 *
 * @example Usage
 * ```ts ignore
 * import { handshakePeer } from "./handshake_peer.ts";
 *
 * const hello = await handshakePeer({ host: "127.0.0.1", port: 6881 }, new Uint8Array(20));
 * console.log(hello.peerId.toHex());
 * ```
 */
export async function handshakePeer(
  address: PeerAddress,
  infoHash: Uint8Array,
  options: HandshakePeerOptions = {},
): Promise<PeerHello> {
  await using connection = await PeerConnection.connect(address, {
    infoHash,
    peerId: options.peerId ?? generatePeerId(),
    reserved: reservedBits({ extensionProtocol: true }),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  });
  return { peerId: connection.remotePeerId, reserved: connection.remoteReserved };
}
