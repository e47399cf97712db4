/**
 * KRPC (BEP 5): the bencoded query/response/error messages the Mainline DHT exchanges over UDP.
 * A pure codec: bytes in, typed values out.
 *
 * @module
 */
import { type BencodeDict, type BencodeValue, decode, encode, isDict } from "../bencode/mod.ts";
import type { PeerAddress } from "../peer/address.ts";
import {
  decodeCompactNodes,
  decodeCompactPeer,
  type DhtContact,
  encodeCompactNodes,
  encodeCompactPeer,
} from "./_compact.ts";

export type { DhtContact } from "./_compact.ts";

/**
 * KRPC error codes (BEP 5).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { KRPC_ERROR_CODES } from "./krpc.ts";
 *
 * assert.equal(KRPC_ERROR_CODES.methodUnknown, 204);
 * ```
 */
export const KRPC_ERROR_CODES: Readonly<{
  generic: 201;
  server: 202;
  protocol: 203;
  methodUnknown: 204;
}> = Object.freeze({
  /** 201: generic error. */
  generic: 201,
  /** 202: server error. */
  server: 202,
  /** 203: protocol error, such as a malformed packet, invalid arguments or a bad token. */
  protocol: 203,
  /** 204: method unknown. */
  methodUnknown: 204,
});

/** Fields every KRPC message carries. */
export interface KrpcBase {
  /** The transaction id `t`, echoed by the responder. */
  transactionId: Uint8Array;
  /** The optional client version `v` (2 client letters + 2 version bytes by convention). */
  version?: Uint8Array;
}

/** Fields every query carries. */
export interface KrpcQueryBase extends KrpcBase {
  /** A query (`y` = `q`). */
  type: "query";
  /** The querying node's 20-byte id. */
  id: Uint8Array;
  /** BEP 43 `ro`: the querier is read-only and should not be added to routing tables. */
  readOnly?: boolean;
}

/** `ping` query (BEP 5). */
export interface PingQuery extends KrpcQueryBase {
  /** The method `q`. */
  method: "ping";
}

/** `find_node` query (BEP 5): asks for the nodes closest to `target`. */
export interface FindNodeQuery extends KrpcQueryBase {
  /** The method `q`. */
  method: "find_node";
  /** The 20-byte id searched for. */
  target: Uint8Array;
}

/** `get_peers` query (BEP 5): asks for peers of `infoHash`, or the nodes closest to it. */
export interface GetPeersQuery extends KrpcQueryBase {
  /** The method `q`. */
  method: "get_peers";
  /** The 20-byte info hash. */
  infoHash: Uint8Array;
}

/** `announce_peer` query (BEP 5): announces that the querier's peer downloads `infoHash`. */
export interface AnnouncePeerQuery extends KrpcQueryBase {
  /** The method `q`. */
  method: "announce_peer";
  /** The 20-byte info hash. */
  infoHash: Uint8Array;
  /** The peer's TCP port (ignored when `impliedPort` is true). */
  port: number;
  /** The token received from the queried node in an earlier `get_peers` response. */
  token: Uint8Array;
  /** `implied_port`: use the UDP source port of the query as the peer's port. */
  impliedPort: boolean;
}

/** A KRPC query (`y` = `q`). */
export type KrpcQuery = PingQuery | FindNodeQuery | GetPeersQuery | AnnouncePeerQuery;

/** The method names of the queries this codec knows. */
export type KrpcMethod = KrpcQuery["method"];

/** A KRPC response (`y` = `r`); which optional keys appear depends on the query answered. */
export interface KrpcResponse extends KrpcBase {
  /** A response (`y` = `r`). */
  type: "response";
  /** The responding node's 20-byte id. */
  id: Uint8Array;
  /** `nodes`: IPv4 contacts (26-byte compact node infos). */
  nodes?: DhtContact[];
  /** `nodes6`: IPv6 contacts (38-byte compact node infos). */
  nodes6?: DhtContact[];
  /** `values`: peers for the info hash (6- or 18-byte compact peers). */
  values?: PeerAddress[];
  /** `token`: to present in a later `announce_peer`. */
  token?: Uint8Array;
  /** `ip` (BEP 42): the querier's address as the responder sees it. */
  ip?: PeerAddress;
}

/** A KRPC error message (`y` = `e`). */
export interface KrpcErrorMessage extends KrpcBase {
  /** An error (`y` = `e`). */
  type: "error";
  /** Error code, see {@linkcode KRPC_ERROR_CODES}. */
  code: number;
  /** Human-readable message. */
  message: string;
}

/** Any KRPC message, discriminated by `type` (and `method` for queries). */
export type KrpcMessage = KrpcQuery | KrpcResponse | KrpcErrorMessage;

/**
 * A KRPC packet that cannot be decoded. Carries what a node needs to answer it: the KRPC error
 * code to send back (203 protocol error, 204 method unknown) and, when readable, the
 * transaction id and message kind.
 */
export class KrpcDecodeError extends SyntaxError {
  /** The KRPC error code that describes the problem (203 or 204). */
  readonly code: number;
  /** The packet's transaction id, when it could be read. */
  readonly transactionId: Uint8Array | undefined;
  /** The packet's `y` (`q`, `r` or `e`), when it could be read. */
  readonly kind: string | undefined;

  /**
   * Makes the error.
   *
   * @param message What is wrong.
   * @param options The KRPC error code, transaction id, kind, and cause.
   */
  constructor(
    message: string,
    options: { code?: number; transactionId?: Uint8Array; kind?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KrpcDecodeError";
    this.code = options.code ?? KRPC_ERROR_CODES.protocol;
    this.transactionId = options.transactionId;
    this.kind = options.kind;
  }
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Encodes a KRPC message (BEP 5) as bencode.
 *
 * @param message The message.
 * @returns The packet bytes.
 * @throws {TypeError} When an id is not 20 bytes or an address is not IPv4/IPv6 text.
 * @throws {RangeError} When a port is out of range.
 *
 * @example The BEP 5 ping query
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeKrpc } from "./krpc.ts";
 *
 * const text = new TextEncoder();
 * const bytes = encodeKrpc({
 *   type: "query",
 *   method: "ping",
 *   transactionId: text.encode("aa"),
 *   id: text.encode("abcdefghij0123456789"),
 * });
 * assert.equal(new TextDecoder().decode(bytes), "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe");
 * ```
 */
export function encodeKrpc(message: KrpcMessage): Uint8Array {
  const packet: Record<string, BencodeValue> = { t: message.transactionId };
  if (message.version !== undefined) packet.v = message.version;
  switch (message.type) {
    case "query": {
      checkId(message.id, "id");
      const args: Record<string, BencodeValue> = { id: message.id };
      switch (message.method) {
        case "ping":
          break;
        case "find_node":
          checkId(message.target, "target");
          args.target = message.target;
          break;
        case "get_peers":
          checkId(message.infoHash, "info_hash");
          args.info_hash = message.infoHash;
          break;
        case "announce_peer":
          checkId(message.infoHash, "info_hash");
          checkPort(message.port, message.impliedPort);
          args.info_hash = message.infoHash;
          args.port = message.port;
          args.token = message.token;
          if (message.impliedPort) args.implied_port = 1;
          break;
      }
      if (message.readOnly) packet.ro = 1;
      packet.y = bytesOf("q");
      packet.q = bytesOf(message.method);
      packet.a = args;
      break;
    }
    case "response": {
      checkId(message.id, "id");
      const body: Record<string, BencodeValue> = { id: message.id };
      if (message.nodes !== undefined) body.nodes = encodeCompactNodes(message.nodes, false);
      if (message.nodes6 !== undefined) body.nodes6 = encodeCompactNodes(message.nodes6, true);
      if (message.values !== undefined) body.values = message.values.map(encodeCompactPeer);
      if (message.token !== undefined) body.token = message.token;
      if (message.ip !== undefined) packet.ip = encodeCompactPeer(message.ip);
      packet.y = bytesOf("r");
      packet.r = body;
      break;
    }
    case "error":
      packet.y = bytesOf("e");
      packet.e = [message.code, bytesOf(message.message)];
      break;
  }
  return encode(packet);
}

/**
 * Decodes a KRPC packet (BEP 5). Dictionary keys may come in any order, since not every
 * implementation sorts them; unknown keys are ignored.
 *
 * @param bytes The UDP payload.
 * @returns The typed message. Byte strings in it are views into `bytes`, except node ids.
 * @throws {KrpcDecodeError} When the packet is not bencode, lacks `t` or `y`, has a key of the
 * wrong type, an id that is not 20 bytes, a compact list of the wrong length (`code` 203), or
 * queries an unknown method (`code` 204).
 *
 * @example The BEP 5 get_peers response with values
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeKrpc } from "./krpc.ts";
 *
 * const packet = new TextEncoder().encode(
 *   "d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
 * );
 * const message = decodeKrpc(packet);
 * assert.equal(message.type, "response");
 * assert.deepEqual(message.type === "response" && message.values, [
 *   { host: "97.120.106.101", port: 11893 },
 *   { host: "105.100.104.116", port: 28269 },
 * ]);
 * ```
 */
export function decodeKrpc(bytes: Uint8Array): KrpcMessage {
  let root: BencodeValue;
  try {
    root = decode(bytes, { allowUnsortedKeys: true, maxDepth: 8 });
  } catch (cause) {
    throw new KrpcDecodeError(`Cannot decode KRPC packet: not bencode`, { cause });
  }
  if (!isDict(root)) throw new KrpcDecodeError("Cannot decode KRPC packet: not a dictionary");
  const transactionId = root.t;
  if (!(transactionId instanceof Uint8Array)) {
    throw new KrpcDecodeError(`Cannot decode KRPC packet: ${missing(transactionId, "t")}`);
  }
  const kindValue = root.y;
  const kind = kindValue instanceof Uint8Array ? latin1.decode(kindValue) : undefined;
  const fail = (detail: string, code: number = KRPC_ERROR_CODES.protocol): never => {
    throw new KrpcDecodeError(`Cannot decode KRPC packet: ${detail}`, {
      code,
      transactionId,
      ...(kind === undefined ? {} : { kind }),
    });
  };
  const base: KrpcBase = { transactionId };
  if (root.v !== undefined) {
    if (!(root.v instanceof Uint8Array)) fail(`"v" is not a byte string`);
    base.version = root.v as Uint8Array;
  }
  switch (kind) {
    case "q":
      return decodeQuery(root, base, fail);
    case "r":
      return decodeResponse(root, base, fail);
    case "e":
      return decodeError(root, base, fail);
    default:
      return fail(
        kind === undefined ? missing(kindValue, "y") : `unknown message kind "y" = "${kind}"`,
      );
  }
}

type Fail = (detail: string, code?: number) => never;

function decodeQuery(root: BencodeDict, base: KrpcBase, fail: Fail): KrpcQuery {
  if (!(root.q instanceof Uint8Array)) return fail(missing(root.q, "q"));
  const method = latin1.decode(root.q);
  const args = root.a;
  if (!isDict(args)) return fail(missing(args, "a", "a dictionary"));
  const common = {
    ...base,
    type: "query" as const,
    id: readId(args.id, "a.id", fail),
  };
  if (root.ro !== undefined) {
    if (typeof root.ro !== "number") fail(`"ro" is not an integer`);
    if (root.ro === 1) Object.assign(common, { readOnly: true });
  }
  switch (method) {
    case "ping":
      return { ...common, method };
    case "find_node":
      return { ...common, method, target: readId(args.target, "a.target", fail) };
    case "get_peers":
      return { ...common, method, infoHash: readId(args.info_hash, "a.info_hash", fail) };
    case "announce_peer": {
      const infoHash = readId(args.info_hash, "a.info_hash", fail);
      const implied = args.implied_port;
      if (implied !== undefined && typeof implied !== "number") {
        fail(`"a.implied_port" is not an integer`);
      }
      const impliedPort = implied !== undefined && implied !== 0;
      let port = 0;
      if (args.port !== undefined || !impliedPort) {
        if (typeof args.port !== "number") return fail(missing(args.port, "a.port", "an integer"));
        port = args.port;
        if (!impliedPort && (port < 1 || port > 65535)) {
          fail(`"a.port" ${port} is out of range`);
        }
        if (port < 0 || port > 65535) fail(`"a.port" ${port} is out of range`);
      }
      if (!(args.token instanceof Uint8Array)) return fail(missing(args.token, "a.token"));
      return { ...common, method, infoHash, port, token: args.token, impliedPort };
    }
    default:
      return fail(`unknown method "${method}"`, KRPC_ERROR_CODES.methodUnknown);
  }
}

function decodeResponse(root: BencodeDict, base: KrpcBase, fail: Fail): KrpcResponse {
  const body = root.r;
  if (!isDict(body)) return fail(missing(body, "r", "a dictionary"));
  const response: KrpcResponse = { ...base, type: "response", id: readId(body.id, "r.id", fail) };
  if (body.nodes !== undefined) response.nodes = readNodes(body.nodes, "r.nodes", false, fail);
  if (body.nodes6 !== undefined) response.nodes6 = readNodes(body.nodes6, "r.nodes6", true, fail);
  if (body.values !== undefined) {
    if (!Array.isArray(body.values)) return fail(`"r.values" is not a list`);
    response.values = body.values.map((value, i) => {
      const peer = value instanceof Uint8Array ? decodeCompactPeer(value) : undefined;
      return peer ?? fail(`"r.values" item ${i} is not a 6- or 18-byte compact peer`);
    });
  }
  if (body.token !== undefined) {
    if (!(body.token instanceof Uint8Array)) return fail(`"r.token" is not a byte string`);
    response.token = body.token;
  }
  if (root.ip !== undefined) {
    const ip = root.ip instanceof Uint8Array ? decodeCompactPeer(root.ip) : undefined;
    if (!ip) return fail(`"ip" is not a 6- or 18-byte compact address`);
    response.ip = ip;
  }
  return response;
}

function decodeError(root: BencodeDict, base: KrpcBase, fail: Fail): KrpcErrorMessage {
  const list = root.e;
  if (!Array.isArray(list)) return fail(missing(list, "e", "a list"));
  const [code, message] = list;
  if (typeof code !== "number") return fail(`"e" code is not an integer`);
  if (message !== undefined && !(message instanceof Uint8Array)) {
    return fail(`"e" message is not a byte string`);
  }
  return {
    ...base,
    type: "error",
    code,
    message: message === undefined ? "" : utf8.decode(message),
  };
}

function readId(value: BencodeValue | undefined, key: string, fail: Fail): Uint8Array {
  if (!(value instanceof Uint8Array)) return fail(missing(value, key));
  if (value.length !== 20) return fail(`"${key}" has ${value.length} bytes, expected 20`);
  return value;
}

function readNodes(value: BencodeValue, key: string, ipv6: boolean, fail: Fail): DhtContact[] {
  const size = ipv6 ? 38 : 26;
  if (!(value instanceof Uint8Array)) return fail(`"${key}" is not a byte string`);
  if (value.length % size !== 0) {
    return fail(`"${key}" has ${value.length} bytes, not a multiple of ${size}`);
  }
  return decodeCompactNodes(value, ipv6);
}

function missing(value: BencodeValue | undefined, key: string, what = "a byte string"): string {
  return value === undefined ? `missing "${key}"` : `"${key}" is not ${what}`;
}

function checkId(id: Uint8Array, key: string): void {
  if (!(id instanceof Uint8Array) || id.length !== 20) {
    throw new TypeError(`Cannot encode KRPC message: "${key}" must be 20 bytes`);
  }
}

function checkPort(port: number, implied: boolean): void {
  const min = implied ? 0 : 1;
  if (!Number.isInteger(port) || port < min || port > 65535) {
    throw new RangeError(`Cannot encode KRPC message: port ${port} is out of range`);
  }
}

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
