// Property-based fuzz tests for lib/dht/krpc.ts: decodeKrpc() returns a well-formed message
// or throws KrpcDecodeError, and encodeKrpc()/decodeKrpc() round-trip generated messages.

import assert from "node:assert/strict";
import fc from "fast-check";
import { type BencodeValue, encode } from "../../lib/bencode/mod.ts";
import {
  decodeKrpc,
  type DhtContact,
  encodeKrpc,
  KrpcDecodeError,
  type KrpcMessage,
} from "../../lib/dht/krpc.ts";
import { assertProperty, expectOnly, MAX_MS_PER_INPUT, thrownBy, withinTime } from "./_config.ts";
import {
  bencodeValueArb,
  bytes,
  byteSoupArb,
  canonicalHost,
  canonicalIPv6,
  ipv4Arb,
  ipv6BytesArb,
  makeDict,
  mutatedArb,
} from "./_arbitraries.ts";

const idArb = fc.uint8Array({ minLength: 20, maxLength: 20 });
const transactionIdArb = fc.uint8Array({ maxLength: 4 });
const versionArb = fc.uint8Array({ minLength: 4, maxLength: 4 });
const portArb = fc.integer({ min: 1, max: 65535 });

const contact4Arb: fc.Arbitrary<DhtContact> = fc.record({
  id: idArb,
  host: ipv4Arb,
  port: fc.integer({ min: 0, max: 65535 }),
});
const contact6Arb: fc.Arbitrary<DhtContact> = fc.record({
  id: idArb,
  host: ipv6BytesArb.map(canonicalIPv6),
  port: fc.integer({ min: 0, max: 65535 }),
});
const peerArb = fc.record({
  host: fc.oneof(ipv4Arb, ipv6BytesArb.map(canonicalIPv6)),
  port: fc.integer({ min: 0, max: 65535 }),
});

const base = { transactionId: transactionIdArb, version: versionArb };
const optionalBase = ["transactionId"] as const;

/** Generated KRPC messages of every kind (BEP 5), with optional fields present or absent. */
const messageArb: fc.Arbitrary<KrpcMessage> = fc.oneof(
  fc.record({
    ...base,
    type: fc.constant("query" as const),
    id: idArb,
    readOnly: fc.constant(true),
    method: fc.constant("ping" as const),
  }, { requiredKeys: [...optionalBase, "type", "id", "method"] }),
  fc.record({
    ...base,
    type: fc.constant("query" as const),
    id: idArb,
    method: fc.constant("find_node" as const),
    target: idArb,
  }, { requiredKeys: [...optionalBase, "type", "id", "method", "target"] }),
  fc.record({
    ...base,
    type: fc.constant("query" as const),
    id: idArb,
    method: fc.constant("get_peers" as const),
    infoHash: idArb,
  }, { requiredKeys: [...optionalBase, "type", "id", "method", "infoHash"] }),
  fc.oneof(
    fc.record({
      ...base,
      type: fc.constant("query" as const),
      id: idArb,
      method: fc.constant("announce_peer" as const),
      infoHash: idArb,
      port: portArb,
      token: fc.uint8Array({ maxLength: 20 }),
      impliedPort: fc.boolean(),
    }, {
      requiredKeys: [
        ...optionalBase,
        "type",
        "id",
        "method",
        "infoHash",
        "port",
        "token",
        "impliedPort",
      ],
    }),
    fc.record({
      ...base,
      type: fc.constant("query" as const),
      id: idArb,
      method: fc.constant("announce_peer" as const),
      infoHash: idArb,
      port: fc.constant(0),
      token: fc.uint8Array({ maxLength: 20 }),
      impliedPort: fc.constant(true),
    }, {
      requiredKeys: [
        ...optionalBase,
        "type",
        "id",
        "method",
        "infoHash",
        "port",
        "token",
        "impliedPort",
      ],
    }),
  ),
  fc.record({
    ...base,
    type: fc.constant("response" as const),
    id: idArb,
    nodes: fc.array(contact4Arb, { maxLength: 8 }),
    nodes6: fc.array(contact6Arb, { maxLength: 4 }),
    values: fc.array(peerArb, { maxLength: 6 }),
    token: fc.uint8Array({ maxLength: 20 }),
    ip: peerArb,
  }, { requiredKeys: [...optionalBase, "type", "id"] }),
  fc.record({
    ...base,
    type: fc.constant("error" as const),
    code: fc.oneof(fc.constantFrom(201, 202, 203, 204), fc.integer()),
    message: fc.string({ maxLength: 20 }),
  }, { requiredKeys: [...optionalBase, "type", "code", "message"] }),
) as fc.Arbitrary<KrpcMessage>;

/** A comparable form: plain objects, bytes as hex, IPv6 text canonicalized. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return value.toHex();
  if (Array.isArray(value)) return value.map(normalize);
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      out[key] = key === "host" && typeof item === "string" ? canonicalHost(item) : normalize(item);
    }
    return out;
  }
  return value;
}

Deno.test("fuzz: decodeKrpc(encodeKrpc(msg)) round-trips generated KRPC messages", async (t) => {
  await assertProperty(
    t,
    fc.property(messageArb, (message) => {
      const decoded = decodeKrpc(encodeKrpc(message));
      assert.deepStrictEqual(normalize(decoded), normalize(message));
    }),
    { runs: 12000 },
  );
});

/** Checks what a decoded message promises: 20-byte ids, ports in range, known kinds. */
function checkMessage(message: KrpcMessage): void {
  assert.ok(message.transactionId instanceof Uint8Array);
  if (message.version !== undefined) assert.ok(message.version instanceof Uint8Array);
  const port = (p: number, min = 1) => assert.ok(Number.isInteger(p) && p >= min && p <= 65535);
  switch (message.type) {
    case "query":
      assert.equal(message.id.length, 20);
      assert.ok(["ping", "find_node", "get_peers", "announce_peer"].includes(message.method));
      if (message.method === "find_node") assert.equal(message.target.length, 20);
      if (message.method === "get_peers") assert.equal(message.infoHash.length, 20);
      if (message.method === "announce_peer") {
        assert.equal(message.infoHash.length, 20);
        assert.ok(message.token instanceof Uint8Array);
        port(message.port, message.impliedPort ? 0 : 1);
      }
      break;
    case "response":
      assert.equal(message.id.length, 20);
      for (const node of [...message.nodes ?? [], ...message.nodes6 ?? []]) {
        assert.equal(node.id.length, 20);
        port(node.port, 0);
      }
      for (const peer of message.values ?? []) port(peer.port, 0);
      if (message.ip !== undefined) port(message.ip.port, 0);
      break;
    case "error":
      assert.ok(Number.isSafeInteger(message.code));
      assert.equal(typeof message.message, "string");
      break;
    default:
      assert.fail(`unknown message type ${(message as { type: unknown }).type}`);
  }
}

function checkDecode(input: Uint8Array): void {
  let message: KrpcMessage | undefined;
  const error = thrownBy(() => {
    message = withinTime(() => decodeKrpc(input), MAX_MS_PER_INPUT, "decodeKrpc()");
  });
  expectOnly(error, [KrpcDecodeError]);
  if (message !== undefined) checkMessage(message);
}

/** KRPC-shaped dictionaries with each field either right-ish or a random value. */
const krpcishArb = fc.record({
  t: fc.oneof(transactionIdArb, bencodeValueArb),
  y: fc.oneof(fc.constantFrom("q", "r", "e", "x", "").map(bytes), bencodeValueArb),
  q: fc.oneof(
    fc.constantFrom("ping", "find_node", "get_peers", "announce_peer", "vote").map(bytes),
    bencodeValueArb,
  ),
  a: fc.oneof(
    fc.record({
      id: fc.oneof(idArb, bencodeValueArb),
      target: fc.oneof(idArb, bencodeValueArb),
      info_hash: fc.oneof(idArb, bencodeValueArb),
      port: fc.oneof(fc.integer({ min: -2, max: 70000 }), bencodeValueArb),
      implied_port: fc.oneof(fc.integer({ min: -1, max: 2 }), bencodeValueArb),
      token: fc.oneof(fc.uint8Array({ maxLength: 8 }), bencodeValueArb),
    }, { requiredKeys: [] }),
    bencodeValueArb,
  ),
  r: fc.oneof(
    fc.record({
      id: fc.oneof(idArb, bencodeValueArb),
      nodes: fc.oneof(fc.uint8Array({ maxLength: 80 }), bencodeValueArb),
      nodes6: fc.oneof(fc.uint8Array({ maxLength: 80 }), bencodeValueArb),
      values: fc.oneof(
        fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 4 }),
        bencodeValueArb,
      ),
      token: fc.oneof(fc.uint8Array({ maxLength: 8 }), bencodeValueArb),
    }, { requiredKeys: [] }),
    bencodeValueArb,
  ),
  e: fc.oneof(fc.tuple(fc.integer(), fc.uint8Array({ maxLength: 8 })), bencodeValueArb),
  v: fc.oneof(versionArb, bencodeValueArb),
  ro: fc.oneof(fc.integer({ min: -1, max: 2 }), bencodeValueArb),
  ip: fc.oneof(fc.uint8Array({ maxLength: 20 }), bencodeValueArb),
}, { requiredKeys: [] }).map((fields) =>
  encode(makeDict(Object.entries(fields) as [string, BencodeValue][]))
);

Deno.test("fuzz: decodeKrpc() throws only KrpcDecodeError on hostile packets", async (t) => {
  await assertProperty(
    t,
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 128 }),
        byteSoupArb,
        krpcishArb,
        messageArb.chain((message) => mutatedArb([encodeKrpc(message)], 3)),
      ),
      checkDecode,
    ),
    { runs: 20000 },
  );
});
