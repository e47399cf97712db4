/**
 * Compact address forms used by the DHT (BEP 5): 6-byte IPv4 and 18-byte IPv6 peers, 26-byte
 * IPv4 and 38-byte IPv6 node infos. Private to lib/dht.
 *
 * @module
 */
import type { PeerAddress } from "../peer/address.ts";
import { formatIPv6, parseIPv4, parseIPv6 } from "../peer/ip.ts";

/** A DHT node as carried in `nodes`/`nodes6`: its 20-byte id and UDP address. */
export interface DhtContact {
  /** The 20-byte node id. */
  id: Uint8Array;
  /** IPv4 dotted quad or IPv6 text (no brackets). */
  host: string;
  /** UDP port. */
  port: number;
}

/** Writes `host` (4 or 16 bytes) and `port` (2 bytes, big-endian) at `offset`. */
function writeHostPort(host: string, port: number, out: Uint8Array, offset: number, ipv6: boolean) {
  const bytes = ipv6 ? parseIPv6(host) : parseIPv4(host);
  if (!bytes) {
    throw new TypeError(
      `Cannot encode compact address: "${host}" is not ${ipv6 ? "IPv6" : "IPv4"}`,
    );
  }
  out.set(bytes, offset);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Cannot encode compact address: port ${port} is out of range`);
  }
  const at = offset + (ipv6 ? 16 : 4);
  out[at] = port >> 8;
  out[at + 1] = port & 0xff;
}

/** Reads an IPv4 (4 bytes) or IPv6 (16 bytes) address and a 2-byte port at `offset`. */
function readHostPort(bytes: Uint8Array, offset: number, ipv6: boolean): PeerAddress {
  const length = ipv6 ? 16 : 4;
  const host = ipv6
    ? formatIPv6(bytes.subarray(offset, offset + 16))
    : `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
  const port = (bytes[offset + length]! << 8) | bytes[offset + length + 1]!;
  return { host, port };
}

/** Encodes a peer as 6 (IPv4) or 18 (IPv6) bytes. */
export function encodeCompactPeer(peer: PeerAddress): Uint8Array {
  const ipv6 = peer.host.includes(":");
  const out = new Uint8Array(ipv6 ? 18 : 6);
  writeHostPort(peer.host, peer.port, out, 0, ipv6);
  return out;
}

/** Decodes a 6- or 18-byte compact peer; undefined for any other length. */
export function decodeCompactPeer(bytes: Uint8Array): PeerAddress | undefined {
  if (bytes.length === 6) return readHostPort(bytes, 0, false);
  if (bytes.length === 18) return readHostPort(bytes, 0, true);
  return undefined;
}

/** Encodes contacts as concatenated 26-byte (IPv4) or 38-byte (IPv6) compact node infos. */
export function encodeCompactNodes(contacts: readonly DhtContact[], ipv6: boolean): Uint8Array {
  const size = ipv6 ? 38 : 26;
  const out = new Uint8Array(contacts.length * size);
  contacts.forEach((contact, i) => {
    if (contact.id.length !== 20) {
      throw new TypeError(`Cannot encode compact node info: id has ${contact.id.length} bytes`);
    }
    out.set(contact.id, i * size);
    writeHostPort(contact.host, contact.port, out, i * size + 20, ipv6);
  });
  return out;
}

/** Decodes concatenated compact node infos; the caller has checked the length. */
export function decodeCompactNodes(bytes: Uint8Array, ipv6: boolean): DhtContact[] {
  const size = ipv6 ? 38 : 26;
  const contacts: DhtContact[] = [];
  for (let offset = 0; offset + size <= bytes.length; offset += size) {
    const { host, port } = readHostPort(bytes, offset + 20, ipv6);
    // Copy the id: the datagram buffer may be reused, and ids outlive the packet.
    contacts.push({ id: bytes.slice(offset, offset + 20), host, port });
  }
  return contacts;
}
