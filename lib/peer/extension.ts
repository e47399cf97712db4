/**
 * The extension protocol codec (BEP 10): the extension handshake carried by
 * `extended` message id 0, and a registry that maps extension names to the
 * message ids each side assigned.
 *
 * Ids are local to the side that assigned them: a peer sends us an extension
 * message with the id *we* put in our handshake's `m` dictionary, and we
 * send with the id from *its* handshake.
 *
 * @module
 */

import { decodePrefix, encode, isDict } from "../bencode/mod.ts";
import type { BencodeDict, BencodeEncodable, BencodeValue } from "../bencode/mod.ts";
import { PeerProtocolError } from "./errors.ts";
import type { PeerMessage } from "./message.ts";

/** The `extended` message id (BEP 10) of the extension handshake. */
export const EXTENSION_HANDSHAKE_ID = 0;

/** Our default extension message ids: `ut_metadata` (BEP 9) = 1, `ut_pex` (BEP 11) = 2. */
export const DEFAULT_LOCAL_EXTENSIONS: Readonly<Record<string, number>> = Object.freeze({
  ut_metadata: 1,
  ut_pex: 2,
});

/** The values of an extension handshake (BEP 10), with BEP 9's `metadata_size`. */
export interface ExtensionHandshake {
  /** Extension name to the message id its sender wants to receive it with; 0 disables it. */
  m: Record<string, number>;
  /** Client name and version (`v`), e.g. `"denotorrent 0.1.0"`. */
  v?: string;
  /** The sender's TCP listen port (`p`). */
  p?: number;
  /** How many outstanding `request` messages the sender queues (`reqq`). */
  reqq?: number;
  /** Size in bytes of the info dictionary (`metadata_size`, BEP 9). */
  metadataSize?: number;
  /** Our address as the sender sees it (`yourip`): 4 (IPv4) or 16 (IPv6) bytes. */
  yourIp?: Uint8Array;
  /** The sender's own IPv4 address (`ipv4`), 4 bytes. */
  ipv4?: Uint8Array;
  /** The sender's own IPv6 address (`ipv6`), 16 bytes. */
  ipv6?: Uint8Array;
}

const textDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Encodes an extension handshake (BEP 10) into the payload of an `extended`
 * message with id {@linkcode EXTENSION_HANDSHAKE_ID}.
 *
 * @param handshake The handshake values; absent optional fields are omitted.
 * @returns The bencoded dictionary.
 * @throws {RangeError} If an `m` id is not an integer in 0-255, `p` not in
 * 0-65535, `reqq` or `metadataSize` not a non-negative safe integer.
 * @throws {TypeError} If an `m` name is empty, or `yourIp`, `ipv4` or `ipv6`
 * has the wrong length.
 *
 * @example Usage
 * ```ts
 * import { encodeExtensionHandshake } from "./extension.ts";
 * import assert from "node:assert/strict";
 *
 * const payload = encodeExtensionHandshake({ m: { ut_metadata: 1 }, metadataSize: 31235 });
 * assert.equal(
 *   new TextDecoder().decode(payload),
 *   "d1:md11:ut_metadatai1ee13:metadata_sizei31235ee",
 * );
 * ```
 */
export function encodeExtensionHandshake(handshake: ExtensionHandshake): Uint8Array {
  for (const [name, id] of Object.entries(handshake.m)) {
    if (name.length === 0) {
      throw new TypeError("Cannot encode extension handshake: extension name is empty");
    }
    checkInteger(id, 0, 255, `id of "${name}"`);
  }
  // Object.fromEntries defines own properties, so even a "__proto__" name stays data.
  const m = Object.fromEntries(Object.entries(handshake.m));
  const dict: Record<string, BencodeEncodable> = { m };
  if (handshake.v !== undefined) dict.v = handshake.v;
  if (handshake.p !== undefined) dict.p = checkInteger(handshake.p, 0, 0xffff, "p");
  if (handshake.reqq !== undefined) {
    dict.reqq = checkInteger(handshake.reqq, 0, Number.MAX_SAFE_INTEGER, "reqq");
  }
  if (handshake.metadataSize !== undefined) {
    dict.metadata_size = checkInteger(
      handshake.metadataSize,
      0,
      Number.MAX_SAFE_INTEGER,
      "metadataSize",
    );
  }
  if (handshake.yourIp !== undefined) dict.yourip = checkIp(handshake.yourIp, [4, 16], "yourIp");
  if (handshake.ipv4 !== undefined) dict.ipv4 = checkIp(handshake.ipv4, [4], "ipv4");
  if (handshake.ipv6 !== undefined) dict.ipv6 = checkIp(handshake.ipv6, [16], "ipv6");
  return encode(dict);
}

/**
 * Decodes an extension handshake (BEP 10) from the payload of an `extended`
 * message with id 0, leniently, since every client fills it differently:
 *
 * - unknown keys are ignored, keys need not be sorted, bytes after the
 *   dictionary are ignored;
 * - a missing `m` reads as `{}`; entries of `m` whose value is not an
 *   integer in 0-255 are dropped;
 * - `v` that is not a byte string, `p` not in 1-65535, `reqq` and
 *   `metadata_size` not non-negative safe integers, `yourip` not 4 or 16
 *   bytes, `ipv4` not 4 bytes, `ipv6` not 16 bytes: each is ignored (left
 *   out of the result);
 * - the payload not being a bencoded dictionary, or `m` not being a
 *   dictionary, is a {@linkcode PeerProtocolError}.
 *
 * Byte fields of the result are copies, so `payload` may be reused.
 *
 * @param payload The bytes after the extended message id.
 * @returns The handshake values.
 * @throws {PeerProtocolError} If the payload is not a bencoded dictionary or
 * its `m` is not a dictionary.
 *
 * @example Usage
 * ```ts
 * import { decodeExtensionHandshake } from "./extension.ts";
 * import assert from "node:assert/strict";
 *
 * // Unsorted keys, an unknown key and a `p` out of range are all fine.
 * const payload = new TextEncoder().encode(
 *   "d13:metadata_sizei5e1:md6:ut_pexi2e11:ut_metadatai3ee1:pi0e1:xi1ee",
 * );
 * assert.deepEqual(decodeExtensionHandshake(payload), {
 *   m: { ut_pex: 2, ut_metadata: 3 },
 *   metadataSize: 5,
 * });
 * ```
 */
export function decodeExtensionHandshake(payload: Uint8Array): ExtensionHandshake {
  let value: BencodeValue;
  try {
    value = decodePrefix(payload, { allowUnsortedKeys: true }).value;
  } catch (cause) {
    throw new PeerProtocolError(
      `Cannot decode extension handshake: ${cause instanceof Error ? cause.message : cause}`,
      { cause },
    );
  }
  if (!isDict(value)) {
    throw new PeerProtocolError("Cannot decode extension handshake: payload is not a dictionary");
  }
  const handshake: ExtensionHandshake = { m: decodeM(value.m) };
  if (value.v instanceof Uint8Array) handshake.v = textDecoder.decode(value.v);
  const p = integerIn(value.p, 1, 0xffff);
  if (p !== undefined) handshake.p = p;
  const reqq = integerIn(value.reqq, 0, Number.MAX_SAFE_INTEGER);
  if (reqq !== undefined) handshake.reqq = reqq;
  const metadataSize = integerIn(value.metadata_size, 0, Number.MAX_SAFE_INTEGER);
  if (metadataSize !== undefined) handshake.metadataSize = metadataSize;
  const yourIp = bytesOfLength(value.yourip, [4, 16]);
  if (yourIp !== undefined) handshake.yourIp = yourIp;
  const ipv4 = bytesOfLength(value.ipv4, [4]);
  if (ipv4 !== undefined) handshake.ipv4 = ipv4;
  const ipv6 = bytesOfLength(value.ipv6, [16]);
  if (ipv6 !== undefined) handshake.ipv6 = ipv6;
  return handshake;
}

/**
 * Keeps track of extension message ids on one connection (BEP 10): the ids
 * we assigned (to route incoming `extended` messages by name) and the ids
 * the peer assigned (to address outgoing ones). A later handshake from the
 * peer updates its ids; an id of 0 disables that extension.
 *
 * @example Usage
 * ```ts
 * import { ExtensionRegistry } from "./extension.ts";
 * import assert from "node:assert/strict";
 *
 * const registry = new ExtensionRegistry({ ut_metadata: 1, ut_pex: 2 });
 * registry.receiveHandshake({ m: { ut_metadata: 3 } });
 *
 * // Incoming messages carry our id; outgoing ones use the peer's.
 * assert.equal(registry.localName(1), "ut_metadata");
 * assert.equal(registry.localName(9), undefined);
 * assert.deepEqual(registry.extendedMessage("ut_metadata", new Uint8Array([1])), {
 *   type: "extended",
 *   id: 3,
 *   payload: new Uint8Array([1]),
 * });
 * assert.equal(registry.supports("ut_pex"), false);
 * ```
 */
export class ExtensionRegistry {
  #local: Map<string, number> = new Map();
  #localById: Map<number, string> = new Map();
  #remote: Map<string, number> = new Map();
  #remoteHandshake: ExtensionHandshake | undefined;

  /**
   * Creates a registry with our extension ids.
   *
   * @param local Our extension names and the ids we want to receive them
   * with; defaults to {@linkcode DEFAULT_LOCAL_EXTENSIONS}.
   * @throws {RangeError} If an id is not an integer in 1-255.
   * @throws {TypeError} If a name is empty or two names share an id.
   */
  constructor(local: Readonly<Record<string, number>> = DEFAULT_LOCAL_EXTENSIONS) {
    for (const [name, id] of Object.entries(local)) {
      if (name.length === 0) {
        throw new TypeError("Cannot create extension registry: extension name is empty");
      }
      if (!Number.isInteger(id) || id < 1 || id > 255) {
        throw new RangeError(
          `Cannot create extension registry: id ${id} of "${name}" is not an integer in 1-255`,
        );
      }
      const other = this.#localById.get(id);
      if (other !== undefined) {
        throw new TypeError(
          `Cannot create extension registry: "${name}" and "${other}" share id ${id}`,
        );
      }
      this.#local.set(name, id);
      this.#localById.set(id, name);
    }
  }

  /**
   * Builds our extension handshake: our ids as `m`, plus the given fields.
   *
   * @param fields The other handshake fields (`v`, `p`, `metadataSize`, ...).
   * @returns The handshake to encode with {@linkcode encodeExtensionHandshake}.
   *
   * @example Usage
   * ```ts
   * import { ExtensionRegistry } from "./extension.ts";
   * import assert from "node:assert/strict";
   *
   * const registry = new ExtensionRegistry({ ut_metadata: 1 });
   * assert.deepEqual(registry.localHandshake({ reqq: 250 }), { m: { ut_metadata: 1 }, reqq: 250 });
   * ```
   */
  localHandshake(fields: Omit<ExtensionHandshake, "m"> = {}): ExtensionHandshake {
    return { ...fields, m: Object.fromEntries(this.#local) };
  }

  /**
   * Records the peer's extension handshake. Names with a non-zero id are
   * added or updated, names with id 0 are removed, names not mentioned keep
   * their earlier id (BEP 10 allows handshakes to be sent again as updates).
   *
   * @param handshake The peer's decoded handshake.
   */
  receiveHandshake(handshake: ExtensionHandshake): void {
    for (const [name, id] of Object.entries(handshake.m)) {
      if (id === 0) this.#remote.delete(name);
      else this.#remote.set(name, id);
    }
    this.#remoteHandshake = handshake;
  }

  /** The peer's latest extension handshake, if one arrived. */
  get remoteHandshake(): ExtensionHandshake | undefined {
    return this.#remoteHandshake;
  }

  /**
   * Names the extension an incoming `extended` message is for, by the id
   * we assigned. Unknown ids (and 0, the handshake) give `undefined`;
   * callers ignore such messages.
   *
   * @param id The id of an incoming `extended` message.
   * @returns Our name for it, or `undefined`.
   */
  localName(id: number): string | undefined {
    return this.#localById.get(id);
  }

  /**
   * Returns our id for an extension.
   *
   * @param name The extension name.
   * @returns The id, or `undefined` if we do not offer it.
   */
  localId(name: string): number | undefined {
    return this.#local.get(name);
  }

  /**
   * Returns the id the peer wants an extension's messages sent with.
   *
   * @param name The extension name.
   * @returns The peer's id, or `undefined` if it does not support it.
   */
  remoteId(name: string): number | undefined {
    return this.#remote.get(name);
  }

  /**
   * Tells whether the peer announced an extension with a non-zero id.
   *
   * @param name The extension name.
   * @returns `true` if we may send it messages of that extension.
   */
  supports(name: string): boolean {
    return this.#remote.has(name);
  }

  /**
   * Wraps a payload into an `extended` message for the peer, using the
   * peer's id for the extension.
   *
   * @param name The extension name.
   * @param payload The extension message payload.
   * @returns The message to send.
   * @throws {TypeError} If the peer does not support the extension.
   */
  extendedMessage(name: string, payload: Uint8Array): PeerMessage {
    const id = this.#remote.get(name);
    if (id === undefined) {
      throw new TypeError(`Cannot send "${name}" message: peer does not support it`);
    }
    return { type: "extended", id, payload };
  }
}

function decodeM(value: BencodeValue | undefined): Record<string, number> {
  if (value === undefined) return {};
  if (!isDict(value)) {
    throw new PeerProtocolError('Cannot decode extension handshake: "m" is not a dictionary');
  }
  const entries: [string, number][] = [];
  for (const [name, id] of Object.entries(value as BencodeDict)) {
    const checked = integerIn(id, 0, 255);
    if (checked !== undefined && name.length > 0) entries.push([name, checked]);
  }
  // Object.fromEntries defines own properties, so even a "__proto__" name stays data.
  return Object.fromEntries(entries);
}

function integerIn(value: BencodeValue | undefined, min: number, max: number): number | undefined {
  return typeof value === "number" && value >= min && value <= max ? value : undefined;
}

function bytesOfLength(
  value: BencodeValue | undefined,
  lengths: readonly number[],
): Uint8Array | undefined {
  return value instanceof Uint8Array && lengths.includes(value.length) ? value.slice() : undefined;
}

function checkInteger(value: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot encode extension handshake: ${what} ${value} is not an integer in ${min}-${max}`,
    );
  }
  return value;
}

function checkIp(value: Uint8Array, lengths: readonly number[], what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || !lengths.includes(value.length)) {
    throw new TypeError(
      `Cannot encode extension handshake: ${what} is not ${lengths.join(" or ")} bytes`,
    );
  }
  return value;
}
