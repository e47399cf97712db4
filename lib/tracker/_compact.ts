import type { PeerAddress } from "../peer/address.ts";

/**
 * Formats 16 bytes as IPv6 text in the RFC 5952 short form: lower-case hex, no leading zeros,
 * the longest run of two or more zero groups as `::`, IPv4-mapped addresses as `::ffff:a.b.c.d`.
 *
 * @param bytes The 16 address bytes.
 * @returns The text form, without brackets.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatIPv6 } from "./_compact.ts";
 *
 * assert.equal(formatIPv6(Uint8Array.fromHex("00000000000000000000000000000001")), "::1");
 * assert.equal(formatIPv6(Uint8Array.fromHex("20010db8000000000001000000000001")), "2001:db8::1:0:0:1");
 * ```
 */
export function formatIPv6(bytes: Uint8Array): string {
  if (bytes.length !== 16) {
    throw new RangeError(`Cannot format IPv6 address: expected 16 bytes, got ${bytes.length}`);
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  // Find the longest run of zero groups (the first one on a tie); only runs of 2+ collapse.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

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
