/**
 * Compact address forms used by the DHT (BEP 5): 6-byte IPv4 and 18-byte IPv6 peers, 26-byte
 * IPv4 and 38-byte IPv6 node infos. Private to lib/dht.
 *
 * @module
 */
import type { PeerAddress } from "../peer/address.ts";

/** A DHT node as carried in `nodes`/`nodes6`: its 20-byte id and UDP address. */
export interface DhtContact {
  /** The 20-byte node id. */
  id: Uint8Array;
  /** IPv4 dotted quad or IPv6 text (no brackets). */
  host: string;
  /** UDP port. */
  port: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Writes an IPv4 dotted quad into 4 bytes at `offset`; false when the text is not IPv4. */
function writeIPv4(host: string, out: Uint8Array, offset: number): boolean {
  const match = IPV4.exec(host);
  if (!match) return false;
  for (let i = 0; i < 4; i++) {
    const octet = Number(match[i + 1]);
    if (octet > 255) return false;
    out[offset + i] = octet;
  }
  return true;
}

/** Parses IPv6 text (optionally with an embedded IPv4 tail) into 16 bytes, or undefined. */
export function parseIPv6(host: string): Uint8Array | undefined {
  const out = new Uint8Array(16);
  let text = host;
  let tail: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(":");
  if (lastColon >= 0 && text.includes(".", lastColon)) {
    tail = new Uint8Array(4);
    if (!writeIPv4(text.slice(lastColon + 1), tail, 0)) return undefined;
    text = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const rest = halves.length === 2 ? (halves[1] === "" ? [] : halves[1]!.split(":")) : [];
  const groups = head.length + rest.length;
  if (halves.length === 1 ? groups !== 8 : groups > 7) return undefined;
  const words = [...head, ...new Array<string>(8 - groups).fill("0"), ...rest];
  for (let i = 0; i < 8; i++) {
    const word = words[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(word)) return undefined;
    const value = parseInt(word, 16);
    out[i * 2] = value >> 8;
    out[i * 2 + 1] = value & 0xff;
  }
  if (tail) out.set(tail, 12);
  return out;
}

/** Formats 16 bytes as canonical (RFC 5952) IPv6 text. */
export function formatIPv6(bytes: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  // Find the longest run of zero words (length >= 2) to compress as "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = words.map((word) => word.toString(16));
  if (bestStart < 0) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLength).join(":");
  return `${left}::${right}`;
}

/** Writes `host` (4 or 16 bytes) and `port` (2 bytes, big-endian) at `offset`. */
function writeHostPort(host: string, port: number, out: Uint8Array, offset: number, ipv6: boolean) {
  if (ipv6) {
    const bytes = parseIPv6(host);
    if (!bytes) throw new TypeError(`Cannot encode compact address: "${host}" is not IPv6`);
    out.set(bytes, offset);
  } else if (!writeIPv4(host, out, offset)) {
    throw new TypeError(`Cannot encode compact address: "${host}" is not IPv4`);
  }
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
