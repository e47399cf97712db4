// Property-based fuzz tests for lib/peer: the message framing (any chunking yields the same
// messages, hostile bytes yield only PeerProtocolError with a bounded buffer) and the BEP 9/10/11
// payload decoders (PeerProtocolError or a well-formed value; encode/decode round trips).

import assert from "node:assert/strict";
import fc from "fast-check";
import { type BencodeValue, encode } from "../../lib/bencode/mod.ts";
import {
  decodeExtensionHandshake,
  decodeMessage,
  decodeMetadataMessage,
  decodePexMessage,
  encodeExtensionHandshake,
  encodeMessage,
  encodeMessages,
  encodeMetadataMessage,
  encodePexMessage,
  type ExtensionHandshake,
  MESSAGE_ID,
  type MetadataMessage,
  type PeerMessage,
  PeerMessageDecoderStream,
  PeerMessageSplitter,
  PeerProtocolError,
  type PexMessage,
} from "../../lib/peer/mod.ts";
import { assertProperty, expectOnly, MAX_MS_PER_INPUT, thrownBy, withinTime } from "./_config.ts";
import {
  bencodeValueArb,
  byteSoupArb,
  canonicalHost,
  canonicalIPv6,
  ipv4Arb,
  ipv6BytesArb,
  keyArb,
  makeDict,
  mutatedArb,
} from "./_arbitraries.ts";

// ---- messages and framing ----

const u32 = fc.oneof(fc.nat({ max: 0xffffffff }), fc.constantFrom(0, 0xffffffff, 2 ** 31));
const knownIds = new Set<number>(Object.values(MESSAGE_ID));
const unknownIdArb = fc.nat({ max: 255 }).filter((id) => !knownIds.has(id));

/** Every peer wire message type (BEP 3, 6, 10) with random fields. */
const messageArb: fc.Arbitrary<PeerMessage> = fc.oneof(
  fc.constantFrom(
    ...(["keep-alive", "choke", "unchoke", "interested", "not-interested", "have-all", "have-none"]
      .map((type) => ({ type }))),
  ),
  fc.record({ type: fc.constantFrom("have", "suggest", "allowed-fast"), index: u32 }),
  fc.record({
    type: fc.constantFrom("request", "cancel", "reject"),
    index: u32,
    begin: u32,
    length: u32,
  }),
  fc.record({
    type: fc.constant("piece"),
    index: u32,
    begin: u32,
    block: fc.uint8Array({ maxLength: 300 }),
  }),
  fc.record({ type: fc.constant("bitfield"), bitfield: fc.uint8Array({ maxLength: 40 }) }),
  fc.record({ type: fc.constant("port"), port: fc.integer({ min: 0, max: 65535 }) }),
  fc.record({
    type: fc.constant("extended"),
    id: fc.nat({ max: 255 }),
    payload: fc.uint8Array({ maxLength: 40 }),
  }),
  fc.record({
    type: fc.constant("unknown"),
    id: unknownIdArb,
    payload: fc.uint8Array({ maxLength: 40 }),
  }),
) as fc.Arbitrary<PeerMessage>;

/** A comparable form of messages: plain objects with bytes as hex. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return value.toHex();
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

/** Splits bytes at the given cut points (reduced modulo the length, deduplicated). */
function split(input: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, input.length]) {
    chunks.push(input.subarray(start, point));
    start = point;
  }
  return chunks;
}

Deno.test("fuzz: decodeMessage() round-trips encodeMessage() for generated messages", async (t) => {
  await assertProperty(
    t,
    fc.property(messageArb, (message) => {
      const frame = encodeMessage(message);
      assert.equal(new DataView(frame.buffer).getUint32(0), frame.length - 4);
      assert.deepStrictEqual(plain(decodeMessage(frame.subarray(4))), plain(message));
    }),
    { runs: 12000 },
  );
});

Deno.test("fuzz: PeerMessageSplitter yields the same messages for any split of the stream", async (t) => {
  await assertProperty(
    t,
    fc.property(
      fc.array(messageArb, { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (messages, cuts) => {
        const stream = encodeMessages(messages);
        const splitter = new PeerMessageSplitter();
        const out: PeerMessage[] = [];
        for (const chunk of split(stream, cuts)) {
          splitter.push(chunk, out);
          assert.ok(splitter.bufferedBytes <= 300 + 13 + 4);
        }
        splitter.finish();
        assert.equal(splitter.bufferedBytes, 0);
        assert.deepStrictEqual(plain(out), plain(messages));
      },
    ),
    { runs: 8000 },
  );
});

Deno.test("fuzz: PeerMessageSplitter yields the same messages fed one byte at a time", async (t) => {
  await assertProperty(
    t,
    fc.property(fc.array(messageArb, { maxLength: 6 }), (messages) => {
      const stream = encodeMessages(messages);
      const splitter = new PeerMessageSplitter();
      const out: PeerMessage[] = [];
      // Copy each byte so no message can alias a later chunk.
      for (let i = 0; i < stream.length; i++) splitter.push(stream.slice(i, i + 1), out);
      splitter.finish();
      assert.deepStrictEqual(plain(out), plain(messages));
    }),
    { runs: 1200 },
  );
});

Deno.test("fuzz: PeerMessageDecoderStream yields the same messages for any split of the stream", async (t) => {
  await assertProperty(
    t,
    fc.asyncProperty(
      fc.array(messageArb, { maxLength: 10 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      async (messages, cuts) => {
        const chunks = split(encodeMessages(messages), cuts);
        const out = await Array.fromAsync(
          ReadableStream.from(chunks).pipeThrough(new PeerMessageDecoderStream()),
        );
        assert.deepStrictEqual(plain(out), plain(messages));
      },
    ),
    { runs: 2000 },
  );
});

/** Random bytes with some valid-looking length prefixes mixed in. */
const hostileStreamArb = fc.oneof(
  fc.uint8Array({ maxLength: 400 }),
  fc.array(
    fc.oneof(
      fc.uint8Array({ maxLength: 20 }),
      fc.tuple(fc.nat({ max: 300 }), fc.nat({ max: 25 })).map(([length, id]) => {
        const head = new Uint8Array(5);
        new DataView(head.buffer).setUint32(0, length);
        head[4] = id;
        return head;
      }),
    ),
    { maxLength: 20 },
  ).map((parts) => Uint8Array.from(parts.flatMap((p) => [...p]))),
);

Deno.test("fuzz: PeerMessageSplitter throws only PeerProtocolError and bounds its buffer on random bytes", async (t) => {
  await assertProperty(
    t,
    fc.property(
      hostileStreamArb,
      fc.array(fc.nat(), { maxLength: 20 }),
      fc.integer({ min: 0, max: 256 }),
      (input, cuts, maxMessageLength) => {
        const splitter = new PeerMessageSplitter({ maxMessageLength });
        const out: PeerMessage[] = [];
        let error: unknown;
        for (const chunk of split(input, cuts)) {
          error = thrownBy(() => splitter.push(chunk, out));
          if (error !== undefined) break;
          assert.ok(
            splitter.bufferedBytes <= maxMessageLength + 4,
            `buffered ${splitter.bufferedBytes} bytes with a ${maxMessageLength}-byte limit`,
          );
        }
        error ??= thrownBy(() => splitter.finish());
        expectOnly(error, [PeerProtocolError]);
      },
    ),
    { runs: 12000 },
  );
});

Deno.test("fuzz: PeerMessageDecoderStream errors only with PeerProtocolError on random bytes", async (t) => {
  await assertProperty(
    t,
    fc.asyncProperty(
      hostileStreamArb,
      fc.array(fc.nat(), { maxLength: 10 }),
      async (input, cuts) => {
        const readable = ReadableStream.from(split(input, cuts)).pipeThrough(
          new PeerMessageDecoderStream({ maxMessageLength: 200 }),
        );
        let error: unknown;
        try {
          await Array.fromAsync(readable);
        } catch (caught) {
          error = caught;
        }
        expectOnly(error, [PeerProtocolError]);
      },
    ),
    { runs: 2000 },
  );
});

// ---- BEP 10 extension handshake ----

/** The same payload-level hostile inputs for every bencoded extension payload. */
function hostilePayloadArb(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 128 }),
    byteSoupArb,
    bencodeValueArb.map(encode),
    valid.chain((bytes) => mutatedArb([bytes], 3)),
  );
}

const handshakeArb: fc.Arbitrary<ExtensionHandshake> = fc.record({
  m: fc.uniqueArray(fc.tuple(keyArb.filter((k) => k !== ""), fc.nat({ max: 255 })), {
    maxLength: 5,
    selector: ([name]) => name,
  }).map((entries) => Object.fromEntries(entries)),
  v: fc.string({ maxLength: 16 }),
  p: fc.integer({ min: 1, max: 65535 }),
  reqq: fc.maxSafeNat(),
  metadataSize: fc.maxSafeNat(),
  yourIp: fc.oneof(
    fc.uint8Array({ minLength: 4, maxLength: 4 }),
    fc.uint8Array({ minLength: 16, maxLength: 16 }),
  ),
  ipv4: fc.uint8Array({ minLength: 4, maxLength: 4 }),
  ipv6: fc.uint8Array({ minLength: 16, maxLength: 16 }),
}, { requiredKeys: ["m"] });

Deno.test("fuzz: decodeExtensionHandshake() round-trips generated handshakes", async (t) => {
  await assertProperty(
    t,
    fc.property(handshakeArb, (handshake) => {
      const decoded = decodeExtensionHandshake(encodeExtensionHandshake(handshake));
      assert.deepStrictEqual(plain(decoded), plain(handshake));
    }),
    { runs: 6000 },
  );
});

function checkHandshake(handshake: ExtensionHandshake): void {
  for (const [name, id] of Object.entries(handshake.m)) {
    assert.ok(name.length > 0);
    assert.ok(Number.isInteger(id) && id >= 0 && id <= 255, `m.${name} = ${id}`);
  }
  if (handshake.v !== undefined) assert.equal(typeof handshake.v, "string");
  if (handshake.p !== undefined) assert.ok(handshake.p >= 1 && handshake.p <= 65535);
  for (const key of ["reqq", "metadataSize"] as const) {
    const value = handshake[key];
    if (value !== undefined) assert.ok(Number.isSafeInteger(value) && value >= 0);
  }
  if (handshake.yourIp !== undefined) assert.ok([4, 16].includes(handshake.yourIp.length));
  if (handshake.ipv4 !== undefined) assert.equal(handshake.ipv4.length, 4);
  if (handshake.ipv6 !== undefined) assert.equal(handshake.ipv6.length, 16);
}

/** Handshake-shaped dictionaries with random field values. */
const handshakeishArb = fc.record({
  m: fc.oneof(
    fc.uniqueArray(fc.tuple(keyArb, bencodeValueArb), { maxLength: 4, selector: ([k]) => k })
      .map(makeDict),
    bencodeValueArb,
  ),
  v: bencodeValueArb,
  p: fc.oneof(fc.integer({ min: -2, max: 70000 }), bencodeValueArb),
  reqq: bencodeValueArb,
  metadata_size: fc.oneof(fc.integer(), bencodeValueArb),
  yourip: fc.oneof(fc.uint8Array({ maxLength: 17 }), bencodeValueArb),
  ipv4: bencodeValueArb,
  ipv6: bencodeValueArb,
}, { requiredKeys: [] }).map((fields) =>
  encode(makeDict(Object.entries(fields) as [string, BencodeValue][]))
);

Deno.test("fuzz: decodeExtensionHandshake() throws only PeerProtocolError on hostile payloads", async (t) => {
  await assertProperty(
    t,
    fc.property(
      fc.oneof(handshakeishArb, hostilePayloadArb(handshakeArb.map(encodeExtensionHandshake))),
      (payload) => {
        let handshake: ExtensionHandshake | undefined;
        const error = thrownBy(() => {
          handshake = withinTime(
            () => decodeExtensionHandshake(payload),
            MAX_MS_PER_INPUT,
            "decode",
          );
        });
        expectOnly(error, [PeerProtocolError]);
        if (handshake !== undefined) checkHandshake(handshake);
      },
    ),
    { runs: 12000 },
  );
});

// ---- BEP 9 ut_metadata ----

const METADATA_PIECE = 16384;

const metadataMessageArb: fc.Arbitrary<MetadataMessage> = fc.oneof(
  fc.record({
    type: fc.constantFrom("request" as const, "reject" as const),
    piece: fc.nat({ max: 1023 }),
  }),
  fc.integer({ min: 1, max: 5 * METADATA_PIECE }).chain((totalSize) => {
    const count = Math.ceil(totalSize / METADATA_PIECE);
    return fc.nat({ max: count - 1 }).chain((piece) => {
      const length = Math.min(METADATA_PIECE, totalSize - piece * METADATA_PIECE);
      return fc.uint8Array({ minLength: Math.min(length, 8), maxLength: Math.min(length, 8) }).map(
        (head) => {
          const data = new Uint8Array(length);
          data.set(head);
          return { type: "data" as const, piece, totalSize, data };
        },
      );
    });
  }),
);

Deno.test("fuzz: decodeMetadataMessage() round-trips generated ut_metadata messages", async (t) => {
  await assertProperty(
    t,
    fc.property(metadataMessageArb, (message) => {
      const decoded = decodeMetadataMessage(encodeMetadataMessage(message));
      assert.deepStrictEqual(plain(decoded), plain(message));
    }),
    { runs: 4000 },
  );
});

Deno.test("fuzz: decodeMetadataMessage() throws only PeerProtocolError on hostile payloads", async (t) => {
  const metadataishArb = fc.tuple(
    fc.record({
      msg_type: fc.oneof(fc.integer({ min: -1, max: 3 }), bencodeValueArb),
      piece: fc.oneof(fc.integer({ min: -1, max: 2000 }), bencodeValueArb),
      total_size: fc.oneof(fc.integer({ min: -1, max: 20 * 2 ** 20 }), bencodeValueArb),
    }, { requiredKeys: [] }),
    fc.uint8Array({ maxLength: 64 }),
  ).map(([fields, tail]) => {
    const head = encode(makeDict(Object.entries(fields) as [string, BencodeValue][]));
    return Uint8Array.from([...head, ...tail]);
  });
  const optionsArb = fc.record({
    maxMetadataSize: fc.nat({ max: 2 ** 24 }),
    metadataSize: fc.integer({ min: 1, max: 2 ** 17 }),
  }, { requiredKeys: [] });
  await assertProperty(
    t,
    fc.property(
      fc.oneof(metadataishArb, hostilePayloadArb(metadataMessageArb.map(encodeMetadataMessage))),
      optionsArb,
      (payload, options) => {
        let message: MetadataMessage | undefined;
        const error = thrownBy(() => {
          message = withinTime(
            () => decodeMetadataMessage(payload, options),
            MAX_MS_PER_INPUT,
            "decode",
          );
        });
        expectOnly(error, [PeerProtocolError]);
        if (message === undefined || message.type === "unknown") return;
        assert.ok(Number.isSafeInteger(message.piece) && message.piece >= 0);
        if (message.type === "data") {
          const max = options.maxMetadataSize ?? 16 * 2 ** 20;
          assert.ok(message.totalSize >= 1 && message.totalSize <= max);
          if (options.metadataSize !== undefined) {
            assert.equal(message.totalSize, options.metadataSize);
          }
          assert.ok(message.piece < Math.ceil(message.totalSize / METADATA_PIECE));
          assert.equal(
            message.data.length,
            Math.min(METADATA_PIECE, message.totalSize - message.piece * METADATA_PIECE),
          );
        }
      },
    ),
    { runs: 12000 },
  );
});

// ---- BEP 11 ut_pex ----

const pexPeerArb = fc.record({
  host: fc.oneof(ipv4Arb, ipv6BytesArb.map(canonicalIPv6)),
  port: fc.integer({ min: 1, max: 65535 }),
});

const pexArb = fc.record({
  added: fc.array(
    fc.record({
      host: pexPeerArb.map((p) => p.host),
      port: fc.integer({ min: 1, max: 65535 }),
      flags: fc.nat({ max: 255 }),
    }),
    { maxLength: 8 },
  ),
  dropped: fc.array(pexPeerArb, { maxLength: 8 }),
});

Deno.test("fuzz: decodePexMessage() round-trips generated ut_pex messages", async (t) => {
  await assertProperty(
    t,
    fc.property(pexArb, (message) => {
      const decoded = decodePexMessage(encodePexMessage(message));
      // The wire keeps IPv4 and IPv6 peers in separate lists: IPv4 first.
      const v4First = <T extends { host: string }>(list: readonly T[]) => [
        ...list.filter((p) => !p.host.includes(":")),
        ...list.filter((p) => p.host.includes(":")),
      ];
      const norm = (list: readonly { host: string }[]) =>
        list.map((p) => ({ ...p, host: canonicalHost(p.host) }));
      assert.deepStrictEqual(norm(decoded.added), norm(v4First(message.added)));
      assert.deepStrictEqual(norm(decoded.dropped), norm(v4First(message.dropped)));
    }),
    { runs: 6000 },
  );
});

Deno.test("fuzz: decodePexMessage() throws only PeerProtocolError on hostile payloads", async (t) => {
  const pexishArb = fc.record({
    added: fc.oneof(fc.uint8Array({ maxLength: 40 }), bencodeValueArb),
    "added.f": fc.oneof(fc.uint8Array({ maxLength: 8 }), bencodeValueArb),
    added6: fc.oneof(fc.uint8Array({ maxLength: 60 }), bencodeValueArb),
    "added6.f": bencodeValueArb,
    dropped: fc.oneof(fc.uint8Array({ maxLength: 40 }), bencodeValueArb),
    dropped6: fc.oneof(fc.uint8Array({ maxLength: 60 }), bencodeValueArb),
  }, { requiredKeys: [] }).map((fields) =>
    encode(makeDict(Object.entries(fields) as [string, BencodeValue][]))
  );
  await assertProperty(
    t,
    fc.property(
      fc.oneof(pexishArb, hostilePayloadArb(pexArb.map((m) => encodePexMessage(m)))),
      fc.record({ maxAdded: fc.nat({ max: 60 }), maxDropped: fc.nat({ max: 60 }) }, {
        requiredKeys: [],
      }),
      (payload, options) => {
        let message: PexMessage | undefined;
        const error = thrownBy(() => {
          message = withinTime(
            () => decodePexMessage(payload, options),
            MAX_MS_PER_INPUT,
            "decode",
          );
        });
        expectOnly(error, [PeerProtocolError]);
        if (message === undefined) return;
        assert.ok(message.added.length <= (options.maxAdded ?? 50));
        assert.ok(message.dropped.length <= (options.maxDropped ?? 50));
        for (const peer of [...message.added, ...message.dropped]) {
          assert.ok(peer.port >= 1 && peer.port <= 65535);
          canonicalHost(peer.host); // throws if the host is not an IP address
        }
        for (const peer of message.added) assert.ok(peer.flags >= 0 && peer.flags <= 255);
      },
    ),
    { runs: 12000 },
  );
});
