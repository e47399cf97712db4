import {
  asBytes,
  asDict,
  asInteger,
  asList,
  type BencodeDict,
  type BencodeValue,
  decode,
} from "../bencode/mod.ts";
import type { PeerAddress } from "../peer/address.ts";
import { parseCompactPeers } from "./_compact.ts";
import {
  type AnnounceRequest,
  type AnnounceResponse,
  TrackerError,
  TrackerFailureError,
} from "./announce.ts";

const HEX = "0123456789ABCDEF";
const lenientText = new TextDecoder("utf-8", { ignoreBOM: true });
const utf8 = new TextEncoder();

/**
 * Percent-encodes raw bytes for a URL query (RFC 3986): the unreserved characters
 * `A-Z a-z 0-9 - . _ ~` stay, every other byte becomes `%XX` with upper-case hex.
 *
 * @param bytes The bytes, e.g. an info hash.
 * @returns The encoded text.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { percentEncodeBytes } from "./http_codec.ts";
 *
 * assert.equal(percentEncodeBytes(new Uint8Array([0x41, 0x20, 0xff, 0x7e])), "A%20%FF~");
 * ```
 */
export function percentEncodeBytes(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) {
    if (
      (byte >= 0x30 && byte <= 0x39) || // 0-9
      (byte >= 0x41 && byte <= 0x5a) || // A-Z
      (byte >= 0x61 && byte <= 0x7a) || // a-z
      byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e // - . _ ~
    ) {
      out += String.fromCharCode(byte);
    } else {
      out += "%" + HEX[byte >> 4] + HEX[byte & 15];
    }
  }
  return out;
}

/**
 * Builds the GET URL of an HTTP announce (BEP 3, compact peers per BEP 23). A query string
 * already in the announce URL (a passkey, say) is kept and the parameters are appended.
 *
 * @param announceUrl The tracker's announce URL.
 * @param request What to announce.
 * @returns The full URL to fetch.
 * @throws {TypeError} When the info hash or peer id is not 20 bytes, or the URL is not http(s).
 * @throws {RangeError} When a number is negative, not an integer, or the port is out of range.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildAnnounceUrl } from "./http_codec.ts";
 *
 * const url = buildAnnounceUrl("http://127.0.0.1:6969/announce?pk=1", {
 *   infoHash: new Uint8Array(20).fill(0xab),
 *   peerId: new TextEncoder().encode("-DT0001-abcdefghijkl"),
 *   port: 6881,
 *   uploaded: 0,
 *   downloaded: 0,
 *   left: 100,
 *   event: "started",
 * });
 * assert.ok(url.startsWith("http://127.0.0.1:6969/announce?pk=1&info_hash=%AB%AB"));
 * assert.ok(url.includes("&peer_id=-DT0001-abcdefghijkl&port=6881&"));
 * assert.ok(url.endsWith("&left=100&compact=1&event=started"));
 * ```
 */
export function buildAnnounceUrl(announceUrl: string, request: AnnounceRequest): string {
  if (!/^https?:\/\//i.test(announceUrl)) {
    throw new TypeError(`Cannot build announce URL from "${announceUrl}": expected http(s)`);
  }
  checkRequest(request);
  const params = [
    `info_hash=${percentEncodeBytes(request.infoHash)}`,
    `peer_id=${percentEncodeBytes(request.peerId)}`,
    `port=${request.port}`,
    `uploaded=${request.uploaded}`,
    `downloaded=${request.downloaded}`,
    `left=${request.left}`,
    "compact=1",
  ];
  if (request.event !== undefined) params.push(`event=${request.event}`);
  if (request.numWant !== undefined) params.push(`numwant=${request.numWant}`);
  if (request.key !== undefined) {
    params.push(`key=${(request.key >>> 0).toString(16).toUpperCase().padStart(8, "0")}`);
  }
  if (request.trackerId !== undefined) {
    params.push(`trackerid=${percentEncodeBytes(utf8.encode(request.trackerId))}`);
  }
  // A fragment never reaches the server; keep the query in front of it.
  const hashAt = announceUrl.indexOf("#");
  const base = hashAt < 0 ? announceUrl : announceUrl.slice(0, hashAt);
  const separator = !base.includes("?") ? "?" : /[?&]$/.test(base) ? "" : "&";
  return base + separator + params.join("&");
}

/**
 * Checks the fields of an announce request.
 *
 * @param request The request.
 * @throws {TypeError} When the info hash or peer id is not 20 bytes.
 * @throws {RangeError} When a number is out of range.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkRequest } from "./http_codec.ts";
 *
 * const base = { infoHash: new Uint8Array(20), peerId: new Uint8Array(20), uploaded: 0, downloaded: 0, left: 0 };
 * assert.throws(() => checkRequest({ ...base, port: 70000 }), RangeError);
 * ```
 */
export function checkRequest(request: AnnounceRequest): void {
  if (!(request.infoHash instanceof Uint8Array) || request.infoHash.length !== 20) {
    throw new TypeError(`Cannot announce: info hash must be 20 bytes`);
  }
  if (!(request.peerId instanceof Uint8Array) || request.peerId.length !== 20) {
    throw new TypeError(`Cannot announce: peer id must be 20 bytes`);
  }
  if (!Number.isInteger(request.port) || request.port < 0 || request.port > 65535) {
    throw new RangeError(`Cannot announce: port "${request.port}" is not in 0-65535`);
  }
  for (const field of ["uploaded", "downloaded", "left"] as const) {
    const value = request[field];
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`Cannot announce: ${field} "${value}" is not a non-negative integer`);
    }
  }
  if (request.numWant !== undefined && !Number.isInteger(request.numWant)) {
    throw new RangeError(`Cannot announce: numWant "${request.numWant}" is not an integer`);
  }
  if (request.key !== undefined && !Number.isInteger(request.key)) {
    throw new RangeError(`Cannot announce: key "${request.key}" is not an integer`);
  }
}

/**
 * Parses the bencoded body of an HTTP announce response (BEP 3): compact (BEP 23) or
 * dictionary-model `peers`, `peers6` (BEP 7), intervals, counts, `tracker id`, `warning message`.
 * Key order is not enforced: many trackers do not sort their keys.
 *
 * @param body The response body.
 * @returns The parsed response.
 * @throws {TrackerFailureError} When the response carries a `failure reason`.
 * @throws {TrackerError} When the body is not a well-formed announce response.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAnnounceResponse } from "./http_codec.ts";
 *
 * const body = new Uint8Array([
 *   ...new TextEncoder().encode("d8:intervali1800e5:peers6:"),
 *   127, 0, 0, 1, 0x1a, 0xe1, // 127.0.0.1:6881
 *   0x65, // "e"
 * ]);
 * assert.deepEqual(parseAnnounceResponse(body), {
 *   interval: 1800,
 *   peers: [{ host: "127.0.0.1", port: 6881 }],
 * });
 * ```
 */
export function parseAnnounceResponse(body: Uint8Array): AnnounceResponse {
  let dict: BencodeDict;
  try {
    dict = asDict(decode(body, { allowUnsortedKeys: true }), "the tracker response");
  } catch (cause) {
    throw new TrackerError(
      `Cannot parse tracker response: ${(cause as Error).message} (body starts ${
        JSON.stringify(lenientText.decode(body.subarray(0, 64)))
      })`,
      { cause },
    );
  }
  const failure = dict["failure reason"];
  if (failure !== undefined) {
    if (!(failure instanceof Uint8Array)) {
      throw new TrackerError("Cannot parse tracker response: failure reason is not a string");
    }
    throw new TrackerFailureError(lenientText.decode(failure));
  }
  try {
    const response: AnnounceResponse = {
      interval: asInteger(dict["interval"], "interval"),
      peers: [],
    };
    optionalInteger(dict, "min interval", (v) => response.minInterval = v);
    optionalInteger(dict, "complete", (v) => response.complete = v);
    optionalInteger(dict, "incomplete", (v) => response.incomplete = v);
    const trackerId = dict["tracker id"];
    if (trackerId !== undefined) {
      response.trackerId = lenientText.decode(asBytes(trackerId, "tracker id"));
    }
    const warning = dict["warning message"];
    if (warning !== undefined) {
      response.warning = lenientText.decode(asBytes(warning, "warning message"));
    }
    const peers = dict["peers"];
    if (peers instanceof Uint8Array) {
      response.peers.push(...parseCompactPeers(peers, 6));
    } else if (peers !== undefined) {
      response.peers.push(...parseDictPeers(asList(peers, "peers")));
    }
    const peers6 = dict["peers6"];
    if (peers6 !== undefined) {
      response.peers.push(...parseCompactPeers(asBytes(peers6, "peers6"), 18));
    }
    return response;
  } catch (cause) {
    throw new TrackerError(`Cannot parse tracker response: ${(cause as Error).message}`, {
      cause,
    });
  }
}

function optionalInteger(dict: BencodeDict, key: string, set: (value: number) => void): void {
  const value = dict[key];
  if (value !== undefined) set(asInteger(value, key));
}

function parseDictPeers(list: BencodeValue[]): PeerAddress[] {
  const peers: PeerAddress[] = [];
  for (const [index, item] of list.entries()) {
    const entry = asDict(item, `peers[${index}]`);
    const host = lenientText.decode(asBytes(entry["ip"], `peers[${index}].ip`));
    const port = asInteger(entry["port"], `peers[${index}].port`);
    if (port < 0 || port > 65535) {
      throw new RangeError(`Expected peers[${index}].port to be in 0-65535, got ${port}`);
    }
    if (port === 0 || host === "") continue;
    // Some trackers write IPv6 hosts in brackets; PeerAddress keeps them bare.
    peers.push({ host: host.replace(/^\[(.*)\]$/, "$1"), port });
  }
  return peers;
}
