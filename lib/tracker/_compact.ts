import type { PeerAddress } from "../peer/address.ts";
import { formatIPv6 } from "../peer/ip.ts";

/**
 * Splits a compact peer list (BEP 23 / BEP 7): 6-byte IPv4 or 18-byte IPv6 entries, each the
 * address followed by a big-endian port. Entries with port 0 are dropped: nobody can dial them.
 *
 * @param bytes The packed entries.
 * @param entrySize 6 for IPv4, 18 for IPv6.
 * @returns The peers in order.
 * @throws {RangeError} When the length is not a multiple of the entry size.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCompactPeers } from "./_compact.ts";
 *
 * // 127.0.0.1:6881
 * assert.deepEqual(parseCompactPeers(Uint8Array.fromHex("7f0000011ae1"), 6), [
 *   { host: "127.0.0.1", port: 6881 },
 * ]);
 * ```
 */
export function parseCompactPeers(bytes: Uint8Array, entrySize: 6 | 18): PeerAddress[] {
  if (bytes.length % entrySize !== 0) {
    throw new RangeError(
      `Cannot parse compact peers: length ${bytes.length} is not a multiple of ${entrySize}`,
    );
  }
  const peers: PeerAddress[] = [];
  for (let offset = 0; offset < bytes.length; offset += entrySize) {
    const addressLength = entrySize - 2;
    const port = (bytes[offset + addressLength]! << 8) | bytes[offset + addressLength + 1]!;
    if (port === 0) continue;
    const host = entrySize === 6
      ? `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`
      : formatIPv6(bytes.subarray(offset, offset + 16));
    peers.push({ host, port });
  }
  return peers;
}
