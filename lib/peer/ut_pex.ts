/**
 * The `ut_pex` peer exchange codec (BEP 11) and {@linkcode PexState}, which
 * works out what to tell one peer about the swarm at most once a minute.
 *
 * A message is a bencoded dictionary of compact address lists: `added`
 * (6 bytes per IPv4 peer: address then big-endian port) with `added.f` (one
 * flag byte per added peer), `added6`/`added6.f` (18 bytes per IPv6 peer),
 * and `dropped`/`dropped6`.
 *
 * @module
 */

import { decodePrefix, encode, isDict } from "../bencode/mod.ts";
import type { BencodeValue } from "../bencode/mod.ts";
import type { PeerAddress } from "./address.ts";
import { formatIPv6, parseIPv4, parseIPv6 } from "./ip.ts";
import { PeerProtocolError } from "./errors.ts";

/** The flag bits of `added.f` and `added6.f` (BEP 11). */
export const PEX_FLAGS: Readonly<{
  preferEncryption: 0x01;
  seed: 0x02;
  utp: 0x04;
  holepunch: 0x08;
  reachable: 0x10;
}> = Object.freeze(
  {
    /** The peer prefers encrypted connections. */
    preferEncryption: 0x01,
    /** The peer is a seed (upload only). */
    seed: 0x02,
    /** The peer supports uTP. */
    utp: 0x04,
    /** The peer supports the `ut_holepunch` extension. */
    holepunch: 0x08,
    /** The peer is reachable: the sender made an outgoing connection to it. */
    reachable: 0x10,
  } as const,
);

/** Default cap on `added` and on `dropped` peers per message (as libtorrent). */
export const DEFAULT_MAX_PEX_PEERS = 50;

/** Default minimum time between two messages to the same peer: one minute (BEP 11). */
export const DEFAULT_PEX_INTERVAL_MS = 60_000;

/** An added peer with its {@linkcode PEX_FLAGS} bits. */
export interface PexPeer extends PeerAddress {
  /** Flag bits; 0 when the sender gave none. */
  flags: number;
}

/** A decoded `ut_pex` message: IPv4 and IPv6 peers together. */
export interface PexMessage {
  /** Peers the sender connected to since its last message. */
  added: PexPeer[];
  /** Peers the sender disconnected from since its last message. */
  dropped: PeerAddress[];
}

/** Input of {@linkcode encodePexMessage}: flags are optional. */
export interface PexMessageInit {
  /** Added peers; `flags` defaults to 0. */
  added?: readonly (PeerAddress & { flags?: number })[];
  /** Dropped peers. */
  dropped?: readonly PeerAddress[];
}

/** Limits for {@linkcode encodePexMessage} and {@linkcode decodePexMessage}. */
export interface PexLimitOptions {
  /** Most added peers (IPv4 and IPv6 together) kept; the rest is ignored. Defaults to 50. */
  maxAdded?: number;
  /** Most dropped peers (IPv4 and IPv6 together) kept; the rest is ignored. Defaults to 50. */
  maxDropped?: number;
}

/**
 * Encodes a `ut_pex` message (BEP 11). Peers are split into the IPv4 and
 * IPv6 lists; hosts that are not IP addresses (names) are skipped, and so
 * are peers beyond `maxAdded`/`maxDropped`. Empty lists are left out.
 *
 * @param message The added and dropped peers.
 * @param options Caps on the list sizes.
 * @returns The payload of the `extended` message.
 * @throws {RangeError} If a port is not in 1-65535 or a flag not in 0-255.
 *
 * @example Usage
 * ```ts
 * import { encodePexMessage, PEX_FLAGS } from "./ut_pex.ts";
 * import assert from "node:assert/strict";
 *
 * const payload = encodePexMessage({
 *   added: [{ host: "10.0.0.1", port: 6881, flags: PEX_FLAGS.seed }],
 * });
 * // d 5:added 6:<0a000001 1ae1> 7:added.f 1:<02> e
 * assert.deepEqual(
 *   payload,
 *   Uint8Array.fromHex("64353a6164646564363a0a0000011ae1373a61646465642e66313a0265"),
 * );
 * ```
 */
export function encodePexMessage(
  message: PexMessageInit,
  options: PexLimitOptions = {},
): Uint8Array {
  const maxAdded = options.maxAdded ?? DEFAULT_MAX_PEX_PEERS;
  const maxDropped = options.maxDropped ?? DEFAULT_MAX_PEX_PEERS;
  const added4: Uint8Array[] = [];
  const flags4: number[] = [];
  const added6: Uint8Array[] = [];
  const flags6: number[] = [];
  let count = 0;
  for (const peer of message.added ?? []) {
    if (count >= maxAdded) break;
    const flags = peer.flags ?? 0;
    if (!Number.isInteger(flags) || flags < 0 || flags > 255) {
      throw new RangeError(`Cannot encode ut_pex message: flags ${flags} is not in 0-255`);
    }
    const compact = compactPeer(peer);
    if (compact === undefined) continue;
    count++;
    if (compact.length === 6) {
      added4.push(compact);
      flags4.push(flags);
    } else {
      added6.push(compact);
      flags6.push(flags);
    }
  }
  const dropped4: Uint8Array[] = [];
  const dropped6: Uint8Array[] = [];
  count = 0;
  for (const peer of message.dropped ?? []) {
    if (count >= maxDropped) break;
    const compact = compactPeer(peer);
    if (compact === undefined) continue;
    count++;
    (compact.length === 6 ? dropped4 : dropped6).push(compact);
  }
  const dict: Record<string, Uint8Array> = {};
  if (added4.length > 0) {
    dict.added = concat(added4);
    dict["added.f"] = Uint8Array.from(flags4);
  }
  if (added6.length > 0) {
    dict.added6 = concat(added6);
    dict["added6.f"] = Uint8Array.from(flags6);
  }
  if (dropped4.length > 0) dict.dropped = concat(dropped4);
  if (dropped6.length > 0) dict.dropped6 = concat(dropped6);
  return encode(dict);
}

/**
 * Decodes a `ut_pex` message (BEP 11), leniently: unknown keys and keys of
 * the wrong type are ignored, missing or short `added.f` flags read as 0,
 * entries with port 0 are skipped, and peers beyond `maxAdded`/`maxDropped`
 * are ignored (IPv4 first, then IPv6).
 *
 * @param payload The bytes after the extended message id.
 * @param options Caps on the list sizes.
 * @returns The added peers (with flags) and the dropped peers.
 * @throws {PeerProtocolError} If the payload is not a bencoded dictionary, or
 * an address list's length is not a multiple of 6 (IPv4) or 18 (IPv6).
 *
 * @example Usage
 * ```ts
 * import { decodePexMessage } from "./ut_pex.ts";
 * import assert from "node:assert/strict";
 *
 * // d 7:dropped 6:<7f000001 1ae1> e
 * const payload = Uint8Array.fromHex("64373a64726f70706564363a7f0000011ae165");
 * assert.deepEqual(decodePexMessage(payload), {
 *   added: [],
 *   dropped: [{ host: "127.0.0.1", port: 6881 }],
 * });
 * ```
 */
export function decodePexMessage(payload: Uint8Array, options: PexLimitOptions = {}): PexMessage {
  const maxAdded = options.maxAdded ?? DEFAULT_MAX_PEX_PEERS;
  const maxDropped = options.maxDropped ?? DEFAULT_MAX_PEX_PEERS;
  let value: BencodeValue;
  try {
    value = decodePrefix(payload, { allowUnsortedKeys: true, maxDepth: 8 }).value;
  } catch (cause) {
    throw new PeerProtocolError(
      `Cannot decode ut_pex message: ${cause instanceof Error ? cause.message : cause}`,
      { cause },
    );
  }
  if (!isDict(value)) {
    throw new PeerProtocolError("Cannot decode ut_pex message: payload is not a dictionary");
  }
  const added: PexPeer[] = [];
  for (const [key, size] of [["added", 6], ["added6", 18]] as const) {
    const flags = bytesOrUndefined(value[`${key}.f`]);
    for (const [index, peer] of parseList(value[key], size, key)) {
      if (added.length >= maxAdded) break;
      added.push({ ...peer, flags: flags?.[index] ?? 0 });
    }
  }
  const dropped: PeerAddress[] = [];
  for (const [key, size] of [["dropped", 6], ["dropped6", 18]] as const) {
    for (const [, peer] of parseList(value[key], size, key)) {
      if (dropped.length >= maxDropped) break;
      dropped.push(peer);
    }
  }
  return { added, dropped };
}

/** Options for {@linkcode PexState}. */
export interface PexStateOptions extends PexLimitOptions {
  /** The clock, in ms. Defaults to `Date.now`. */
  now?: () => number;
  /** Minimum time between two messages. Defaults to 60 s (BEP 11). */
  intervalMs?: number;
}

/**
 * What we told one peer about the swarm (BEP 11): given our current peer set
 * it computes the next `ut_pex` message (who was added or dropped since the
 * last message) no more than once per interval. Pure state; the clock is
 * injected. Peers past the caps stay pending for the next message; a peer
 * whose flags changed is announced again.
 *
 * @example Usage
 * ```ts
 * import { PexState } from "./ut_pex.ts";
 * import assert from "node:assert/strict";
 *
 * let now = 0;
 * const state = new PexState({ now: () => now });
 * const a = { host: "10.0.0.1", port: 1, flags: 0 };
 * const b = { host: "10.0.0.2", port: 2, flags: 0 };
 *
 * assert.deepEqual(state.next([a]), { added: [a], dropped: [] });
 * assert.equal(state.next([b]), undefined); // less than a minute later
 * now = 60_000;
 * assert.deepEqual(state.next([b]), { added: [b], dropped: [{ host: "10.0.0.1", port: 1 }] });
 * ```
 */
export class PexState {
  #now: () => number;
  #intervalMs: number;
  #maxAdded: number;
  #maxDropped: number;
  /** What the peer knows: address key to the peer as last sent. */
  #sent: Map<string, PexPeer> = new Map();
  #lastSent: number | undefined;

  /**
   * Creates the state for one peer, which has been told nothing yet.
   *
   * @param options Clock, interval and caps.
   * @throws {RangeError} If `intervalMs` is negative or a cap is not a positive integer.
   */
  constructor(options: PexStateOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#intervalMs = options.intervalMs ?? DEFAULT_PEX_INTERVAL_MS;
    this.#maxAdded = options.maxAdded ?? DEFAULT_MAX_PEX_PEERS;
    this.#maxDropped = options.maxDropped ?? DEFAULT_MAX_PEX_PEERS;
    if (!(this.#intervalMs >= 0)) {
      throw new RangeError(`Cannot create PEX state: intervalMs ${this.#intervalMs} is negative`);
    }
    for (const [name, cap] of [["maxAdded", this.#maxAdded], ["maxDropped", this.#maxDropped]]) {
      if (!Number.isInteger(cap) || (cap as number) < 1) {
        throw new RangeError(`Cannot create PEX state: ${name} ${cap} is not a positive integer`);
      }
    }
  }

  /** When the last message was handed out (by the injected clock), if ever. */
  get lastSent(): number | undefined {
    return this.#lastSent;
  }

  /**
   * Computes the next message for the peer from our current peer set, and
   * assumes it is sent. Returns `undefined` when the interval since the last
   * message has not passed, or nothing changed; neither consumes the
   * interval. Hosts that are not IP addresses are ignored.
   *
   * @param current Our connected peers now (without the peer itself).
   * @returns The message to encode with {@linkcode encodePexMessage}, or `undefined`.
   */
  next(current: Iterable<PeerAddress & { flags?: number }>): PexMessage | undefined {
    const now = this.#now();
    if (this.#lastSent !== undefined && now - this.#lastSent < this.#intervalMs) return undefined;
    const present = new Map<string, PexPeer>();
    for (const peer of current) {
      const key = addressKey(peer);
      if (key === undefined) continue;
      present.set(key, { host: peer.host, port: peer.port, flags: peer.flags ?? 0 });
    }
    const added: PexPeer[] = [];
    for (const [key, peer] of present) {
      if (added.length >= this.#maxAdded) break;
      if (this.#sent.get(key)?.flags === peer.flags) continue;
      added.push(peer);
      this.#sent.set(key, peer);
    }
    const dropped: PeerAddress[] = [];
    for (const [key, peer] of this.#sent) {
      if (dropped.length >= this.#maxDropped) break;
      if (present.has(key)) continue;
      dropped.push({ host: peer.host, port: peer.port });
      this.#sent.delete(key);
    }
    if (added.length === 0 && dropped.length === 0) return undefined;
    this.#lastSent = now;
    return { added, dropped };
  }
}

/**
 * Parses a compact list into `[index, peer]` pairs, skipping port-0 entries
 * but keeping the index so flags stay aligned.
 */
function parseList(
  value: BencodeValue | undefined,
  size: 6 | 18,
  key: string,
): [number, PeerAddress][] {
  if (!(value instanceof Uint8Array)) return [];
  if (value.length % size !== 0) {
    throw new PeerProtocolError(
      `Cannot decode ut_pex message: "${key}" is ${value.length} bytes, not a multiple of ${size}`,
    );
  }
  const peers: [number, PeerAddress][] = [];
  for (let offset = 0, index = 0; offset < value.length; offset += size, index++) {
    const port = (value[offset + size - 2]! << 8) | value[offset + size - 1]!;
    if (port === 0) continue;
    const host = size === 6
      ? `${value[offset]}.${value[offset + 1]}.${value[offset + 2]}.${value[offset + 3]}`
      : formatIPv6(value.subarray(offset, offset + 16));
    peers.push([index, { host, port }]);
  }
  return peers;
}

function bytesOrUndefined(value: BencodeValue | undefined): Uint8Array | undefined {
  return value instanceof Uint8Array ? value : undefined;
}

/** The compact form (6 or 18 bytes) of an IP address and port, or `undefined` for a name. */
function compactPeer(peer: PeerAddress): Uint8Array | undefined {
  if (!Number.isInteger(peer.port) || peer.port < 1 || peer.port > 0xffff) {
    throw new RangeError(`Cannot encode ut_pex message: port ${peer.port} is not in 1-65535`);
  }
  const ip = parseIPv4(peer.host) ?? parseIPv6(peer.host);
  if (ip === undefined) return undefined;
  const compact = new Uint8Array(ip.length + 2);
  compact.set(ip);
  compact[ip.length] = peer.port >>> 8;
  compact[ip.length + 1] = peer.port & 0xff;
  return compact;
}

/** A canonical key for an address (IPv6 spellings unified), or `undefined` for a name. */
function addressKey(peer: PeerAddress): string | undefined {
  const v4 = parseIPv4(peer.host);
  if (v4 !== undefined) return `${v4.join(".")}:${peer.port}`;
  const v6 = parseIPv6(peer.host);
  if (v6 !== undefined) return `[${formatIPv6(v6)}]:${peer.port}`;
  return undefined;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
