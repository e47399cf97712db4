import { formatPeerAddress, parsePeerAddress, type PeerAddress } from "../peer/address.ts";

/** A parsed magnet link (BEP 9) for a BitTorrent v1 torrent. */
export interface MagnetLink {
  /** The 20-byte v1 info hash (`xt=urn:btih:`). */
  infoHash: Uint8Array;
  /** Suggested name (`dn`). */
  displayName?: string;
  /** Tracker URLs (`tr`), without duplicates, in order. */
  trackers: string[];
  /** Peers to contact directly (`x.pe`). */
  peers: PeerAddress[];
  /** Total size in bytes (`xl`). */
  exactLength?: number;
  /** Web seed URLs (`ws`). */
  webSeeds: string[];
}

/**
 * A magnet URI that cannot be used: not a magnet link, no v1 info hash, or a malformed field.
 * It is a `SyntaxError`, so callers may catch either class.
 *
 * @example Catching a bad link
 * ```ts
 * import assert from "node:assert/strict";
 * import { MagnetError, parseMagnet } from "./magnet.ts";
 *
 * assert.throws(() => parseMagnet("http://example.com/"), MagnetError);
 * ```
 */
export class MagnetError extends SyntaxError {
  /**
   * Makes the error.
   *
   * @param message What is wrong.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MagnetError";
  }
}

/** Longest magnet URI accepted, against hostile input. */
export const MAX_MAGNET_LENGTH = 64 * 1024;

const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/**
 * Parses a magnet link (BEP 9). The info hash may be 40 hex digits or 32 base32 characters
 * (RFC 4648, either case). Several `tr`, `ws` and `x.pe` are allowed, as are numbered keys such
 * as `tr.1`; values are percent-decoded, `+` meaning a space; unknown parameters are ignored.
 * When several `xt` are given, the first `urn:btih:` one is used.
 *
 * @param uri The magnet URI.
 * @returns The parsed link.
 * @throws {MagnetError} When the text is longer than 64 KiB, is not a `magnet:?` URI, has no
 * `xt`, has only a v2 (`urn:btmh:`) hash, has an info hash of the wrong length or with bad
 * characters, has bad percent-encoding, or has a malformed `xl` or `x.pe`.
 *
 * @example Hex and base32 info hashes
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMagnet } from "./magnet.ts";
 *
 * const link = parseMagnet(
 *   "magnet:?xt=urn:btih:C12FE1C06BBA254A9DC9F519B335AA7C1367A88A&dn=My+file&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce",
 * );
 * assert.equal(link.infoHash.toHex(), "c12fe1c06bba254a9dc9f519b335aa7c1367a88a");
 * assert.equal(link.displayName, "My file");
 * assert.deepEqual(link.trackers, ["http://127.0.0.1:6969/announce"]);
 * const base32 = parseMagnet("magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK");
 * assert.deepEqual(base32.infoHash, link.infoHash);
 * ```
 */
export function parseMagnet(uri: string): MagnetLink {
  if (typeof uri !== "string") {
    throw new TypeError(`Cannot parse magnet link: expected a string, got ${typeof uri}`);
  }
  if (uri.length > MAX_MAGNET_LENGTH) {
    throw new MagnetError(
      `Invalid magnet link: longer than ${MAX_MAGNET_LENGTH} characters (${uri.length})`,
    );
  }
  if (!/^magnet:\?/i.test(uri)) {
    throw new MagnetError(
      `Invalid magnet link: expected "magnet:?", got ${JSON.stringify(uri.slice(0, 16))}`,
    );
  }
  const link: MagnetLink = { infoHash: new Uint8Array(0), trackers: [], peers: [], webSeeds: [] };
  let infoHash: Uint8Array | undefined;
  let sawTopic = false;
  let sawV2 = false;
  for (const part of uri.slice(8).split("&")) {
    if (part === "") continue;
    const equals = part.indexOf("=");
    const rawKey = equals === -1 ? part : part.slice(0, equals);
    const key = percentDecode(rawKey, "parameter name").replace(/\.\d+$/, "");
    const value = percentDecode(equals === -1 ? "" : part.slice(equals + 1), key);
    switch (key) {
      case "xt": {
        sawTopic = true;
        const lower = value.toLowerCase();
        if (lower.startsWith("urn:btih:")) {
          infoHash ??= parseInfoHash(value.slice(9));
        } else if (lower.startsWith("urn:btmh:")) {
          sawV2 = true;
        }
        break;
      }
      case "dn":
        link.displayName ??= value;
        break;
      case "tr":
        if (value !== "" && !link.trackers.includes(value)) link.trackers.push(value);
        break;
      case "ws":
        if (value !== "" && !link.webSeeds.includes(value)) link.webSeeds.push(value);
        break;
      case "x.pe":
        link.peers.push(parsePeer(value));
        break;
      case "xl":
        if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
          throw new MagnetError(
            `Invalid magnet link: xl must be a non-negative integer, got ${JSON.stringify(value)}`,
          );
        }
        link.exactLength = Number(value);
        break;
      default:
        // Unknown parameters (as, xs, kt, so, ...) are ignored.
        break;
    }
  }
  if (infoHash === undefined) {
    if (sawV2) {
      throw new MagnetError("Invalid magnet link: v2-only magnet links are not supported yet");
    }
    throw new MagnetError(
      sawTopic
        ? "Invalid magnet link: no xt=urn:btih: info hash"
        : "Invalid magnet link: missing xt (the info hash)",
    );
  }
  link.infoHash = infoHash;
  return link;
}

/**
 * Formats a magnet link (BEP 9) with a hex info hash: `magnet:?xt=urn:btih:<hex>&dn=...&tr=...`,
 * followed by `xl`, `ws` and `x.pe` when present. Values are percent-encoded.
 *
 * @param link The link to format.
 * @returns The magnet URI.
 * @throws {TypeError} When the info hash is not 20 bytes.
 *
 * @example Round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatMagnet, parseMagnet } from "./magnet.ts";
 *
 * const uri = formatMagnet({
 *   infoHash: new Uint8Array(20).fill(0xab),
 *   displayName: "a b",
 *   trackers: ["udp://127.0.0.1:6969"],
 *   peers: [],
 *   webSeeds: [],
 * });
 * assert.equal(uri, `magnet:?xt=urn:btih:${"ab".repeat(20)}&dn=a%20b&tr=udp%3A%2F%2F127.0.0.1%3A6969`);
 * assert.equal(parseMagnet(uri).displayName, "a b");
 * ```
 */
export function formatMagnet(link: MagnetLink): string {
  if (!(link.infoHash instanceof Uint8Array) || link.infoHash.length !== 20) {
    throw new TypeError(
      `Cannot format magnet link: info hash must be 20 bytes, got ${link.infoHash?.length}`,
    );
  }
  let uri = `magnet:?xt=urn:btih:${link.infoHash.toHex()}`;
  if (link.displayName !== undefined) uri += `&dn=${encodeURIComponent(link.displayName)}`;
  for (const tracker of link.trackers) uri += `&tr=${encodeURIComponent(tracker)}`;
  if (link.exactLength !== undefined) uri += `&xl=${link.exactLength}`;
  for (const seed of link.webSeeds) uri += `&ws=${encodeURIComponent(seed)}`;
  for (const peer of link.peers) uri += `&x.pe=${encodeURIComponent(formatPeerAddress(peer))}`;
  return uri;
}

function percentDecode(text: string, what: string): string {
  try {
    return decodeURIComponent(text.replaceAll("+", " "));
  } catch (cause) {
    throw new MagnetError(
      `Invalid magnet link: bad percent-encoding in ${what}: ${JSON.stringify(text.slice(0, 64))}`,
      { cause },
    );
  }
}

function parsePeer(text: string): PeerAddress {
  try {
    return parsePeerAddress(text);
  } catch (cause) {
    throw new MagnetError(
      `Invalid magnet link: x.pe must be host:port, got ${JSON.stringify(text.slice(0, 64))}`,
      { cause },
    );
  }
}

function parseInfoHash(text: string): Uint8Array {
  if (text.length === 40) {
    if (!/^[0-9a-fA-F]{40}$/.test(text)) {
      throw new MagnetError(
        `Invalid magnet link: info hash has a character that is not hex: ${JSON.stringify(text)}`,
      );
    }
    return Uint8Array.fromHex(text.toLowerCase());
  }
  if (text.length === 32) return decodeBase32(text);
  throw new MagnetError(
    `Invalid magnet link: info hash must be 40 hex or 32 base32 characters, got ${text.length}: ` +
      JSON.stringify(text.slice(0, 64)),
  );
}

/** Decodes exactly 32 base32 characters (RFC 4648, no padding) into 20 bytes. */
function decodeBase32(text: string): Uint8Array {
  const out = new Uint8Array(20);
  let bits = 0;
  let value = 0;
  let index = 0;
  // Check the alphabet before case mapping: toUpperCase() turns "ß" into "SS", "ı" into "I".
  const valid = /^[A-Za-z2-7]{32}$/.test(text);
  for (const char of text.toUpperCase()) {
    const digit = valid ? BASE32_ALPHABET.indexOf(char) : -1;
    if (digit === -1) {
      throw new MagnetError(
        `Invalid magnet link: info hash has a character that is not base32: ${
          JSON.stringify(text)
        }`,
      );
    }
    value = (value << 5) | digit;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[index++] = (value >>> bits) & 0xff;
    }
  }
  return out;
}
