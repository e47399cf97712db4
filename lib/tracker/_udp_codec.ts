/**
 * Packet codec for the UDP tracker protocol (BEP 15). Pure: bytes in, values out.
 *
 * @module
 */
import { parseCompactPeers } from "./_compact.ts";
import {
  type AnnounceRequest,
  type AnnounceResponse,
  TrackerError,
  TrackerFailureError,
} from "./announce.ts";

/** The magic constant a connect request starts with. */
export const PROTOCOL_ID = 0x41727101980n;

/** Action codes. */
export const ACTION_CONNECT = 0;
export const ACTION_ANNOUNCE = 1;
export const ACTION_ERROR = 3;

const EVENT_CODES = { completed: 1, started: 2, stopped: 3 } as const;
const lenientText = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Encodes a connect request: protocol id (8), action 0 (4), transaction id (4).
 *
 * @param transactionId A random 32-bit id.
 * @returns The 16-byte packet.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeConnectRequest } from "./_udp_codec.ts";
 *
 * assert.equal(encodeConnectRequest(1).toHex(), "0000041727101980" + "00000000" + "00000001");
 * ```
 */
export function encodeConnectRequest(transactionId: number): Uint8Array {
  const packet = new Uint8Array(16);
  const view = new DataView(packet.buffer);
  view.setBigUint64(0, PROTOCOL_ID);
  view.setUint32(8, ACTION_CONNECT);
  view.setUint32(12, transactionId >>> 0);
  return packet;
}

/**
 * Encodes an announce request (98 bytes). `numWant` defaults to -1 (tracker's choice), the IP
 * field is 0 (use the sender's address).
 *
 * @param connectionId The id from the connect response.
 * @param transactionId A random 32-bit id.
 * @param request What to announce.
 * @returns The packet.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeAnnounceRequest } from "./_udp_codec.ts";
 *
 * const packet = encodeAnnounceRequest(7n, 9, {
 *   infoHash: new Uint8Array(20), peerId: new Uint8Array(20),
 *   port: 6881, uploaded: 0, downloaded: 0, left: 0, event: "started",
 * });
 * assert.equal(packet.length, 98);
 * assert.equal(packet[83], 2); // event: started
 * ```
 */
export function encodeAnnounceRequest(
  connectionId: bigint,
  transactionId: number,
  request: AnnounceRequest,
): Uint8Array {
  const packet = new Uint8Array(98);
  const view = new DataView(packet.buffer);
  view.setBigUint64(0, connectionId);
  view.setUint32(8, ACTION_ANNOUNCE);
  view.setUint32(12, transactionId >>> 0);
  packet.set(request.infoHash, 16);
  packet.set(request.peerId, 36);
  view.setBigUint64(56, BigInt(request.downloaded));
  view.setBigUint64(64, BigInt(request.left));
  view.setBigUint64(72, BigInt(request.uploaded));
  view.setUint32(80, request.event === undefined ? 0 : EVENT_CODES[request.event]);
  view.setUint32(84, 0); // IP address: 0 = the packet's source
  view.setUint32(88, (request.key ?? 0) >>> 0);
  view.setInt32(92, request.numWant ?? -1);
  view.setUint16(96, request.port);
  return packet;
}

/**
 * Reads the action and transaction id every response starts with.
 *
 * @param packet A received datagram.
 * @returns The header, or undefined when the packet is shorter than 8 bytes.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readHeader } from "./_udp_codec.ts";
 *
 * assert.deepEqual(readHeader(Uint8Array.fromHex("0000000100000009")), { action: 1, transactionId: 9 });
 * ```
 */
export function readHeader(
  packet: Uint8Array,
): { action: number; transactionId: number } | undefined {
  if (packet.length < 8) return undefined;
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  return { action: view.getUint32(0), transactionId: view.getUint32(4) };
}

/**
 * Parses a connect response: action 0 (4), transaction id (4), connection id (8).
 *
 * @param packet The datagram.
 * @param transactionId The id the request carried.
 * @returns The connection id.
 * @throws {TrackerFailureError} For an error response (action 3).
 * @throws {TrackerError} For a short packet, a wrong action or transaction id.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConnectResponse } from "./_udp_codec.ts";
 *
 * assert.equal(parseConnectResponse(Uint8Array.fromHex("00000000000000050000000000000063"), 5), 99n);
 * ```
 */
export function parseConnectResponse(packet: Uint8Array, transactionId: number): bigint {
  const view = checkResponse(packet, transactionId, ACTION_CONNECT, 16);
  return view.getBigUint64(8);
}

/**
 * Parses an announce response: action 1 (4), transaction id (4), interval (4), leechers (4),
 * seeders (4), then 6-byte peers (18-byte for a tracker reached over IPv6).
 *
 * @param packet The datagram.
 * @param transactionId The id the request carried.
 * @param options `ipv6`: the tracker was reached over IPv6, so peers are 18 bytes each.
 * @returns The response.
 * @throws {TrackerFailureError} For an error response (action 3).
 * @throws {TrackerError} For a short or misaligned packet, a wrong action or transaction id.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseUdpAnnounceResponse } from "./_udp_codec.ts";
 *
 * const packet = Uint8Array.fromHex(
 *   "00000001" + "00000002" + "00000708" + "00000003" + "00000004" + "7f0000011ae1",
 * );
 * assert.deepEqual(parseUdpAnnounceResponse(packet, 2), {
 *   interval: 1800, incomplete: 3, complete: 4, peers: [{ host: "127.0.0.1", port: 6881 }],
 * });
 * ```
 */
export function parseUdpAnnounceResponse(
  packet: Uint8Array,
  transactionId: number,
  options: { ipv6?: boolean } = {},
): AnnounceResponse {
  const view = checkResponse(packet, transactionId, ACTION_ANNOUNCE, 20);
  let peers;
  try {
    peers = parseCompactPeers(packet.subarray(20), options.ipv6 ? 18 : 6);
  } catch (cause) {
    throw new TrackerError(`Cannot parse UDP announce response: ${(cause as Error).message}`, {
      cause,
    });
  }
  return {
    interval: view.getUint32(8),
    incomplete: view.getUint32(12),
    complete: view.getUint32(16),
    peers,
  };
}

function checkResponse(
  packet: Uint8Array,
  transactionId: number,
  action: number,
  minLength: number,
): DataView {
  const header = readHeader(packet);
  if (header === undefined) {
    throw new TrackerError(
      `Cannot parse UDP tracker response: ${packet.length} bytes is too short`,
    );
  }
  if (header.transactionId !== transactionId >>> 0) {
    throw new TrackerError(
      `Cannot parse UDP tracker response: transaction id ${header.transactionId} does not match ${
        transactionId >>> 0
      }`,
    );
  }
  if (header.action === ACTION_ERROR) {
    throw new TrackerFailureError(lenientText.decode(packet.subarray(8)));
  }
  if (header.action !== action) {
    throw new TrackerError(
      `Cannot parse UDP tracker response: expected action ${action}, got ${header.action}`,
    );
  }
  if (packet.length < minLength) {
    throw new TrackerError(
      `Cannot parse UDP tracker response: ${packet.length} bytes is shorter than ${minLength}`,
    );
  }
  return new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
}
