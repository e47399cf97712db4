// Property-based fuzz tests for lib/tracker: the HTTP announce response parser and the UDP
// tracker packet codec accept only well-formed input and throw only their typed errors.

import assert from "node:assert/strict";
import fc from "fast-check";
import { type BencodeValue, encode } from "../../lib/bencode/mod.ts";
import {
  type AnnounceRequest,
  type AnnounceResponse,
  parseAnnounceResponse,
  TrackerError,
  TrackerFailureError,
} from "../../lib/tracker/mod.ts";
import {
  ACTION_ANNOUNCE,
  ACTION_CONNECT,
  ACTION_ERROR,
  encodeAnnounceRequest,
  encodeConnectRequest,
  parseConnectResponse,
  parseUdpAnnounceResponse,
  PROTOCOL_ID,
  readHeader,
} from "../../lib/tracker/_udp_codec.ts";
import { assertProperty, expectOnly, MAX_MS_PER_INPUT, thrownBy, withinTime } from "./_config.ts";
import {
  bencodeValueArb,
  bytes,
  byteSoupArb,
  canonicalHost,
  canonicalIPv6,
  concatBytes,
  ipv4Arb,
  ipv6BytesArb,
  makeDict,
  mutatedArb,
} from "./_arbitraries.ts";

// ---- HTTP announce responses ----

function checkResponse(response: AnnounceResponse): void {
  assert.ok(Number.isSafeInteger(response.interval));
  for (const key of ["minInterval", "complete", "incomplete"] as const) {
    const value = response[key];
    if (value !== undefined) assert.ok(Number.isSafeInteger(value), `${key} ${value}`);
  }
  for (const peer of response.peers) {
    assert.equal(typeof peer.host, "string");
    assert.ok(peer.host.length > 0, "empty peer host");
    assert.ok(Number.isInteger(peer.port) && peer.port >= 1 && peer.port <= 65535);
  }
}

function checkAnnounceParse(body: Uint8Array): void {
  let response: AnnounceResponse | undefined;
  const error = thrownBy(() => {
    response = withinTime(
      () => parseAnnounceResponse(body),
      MAX_MS_PER_INPUT,
      "parseAnnounceResponse()",
    );
  });
  expectOnly(error, [TrackerFailureError, TrackerError]);
  if (response !== undefined) checkResponse(response);
}

interface GeneratedResponse {
  dict: Record<string, BencodeValue>;
  expected: AnnounceResponse;
}

const portArb = fc.integer({ min: 0, max: 65535 });

/** A tracker response with compact IPv4 and IPv6 peers or a dictionary peer list. */
const responseArb: fc.Arbitrary<GeneratedResponse> = fc.record({
  interval: fc.nat({ max: 2 ** 31 }),
  minInterval: fc.option(fc.nat({ max: 3600 }), { nil: undefined }),
  complete: fc.option(fc.nat(), { nil: undefined }),
  incomplete: fc.option(fc.nat(), { nil: undefined }),
  peers4: fc.array(fc.tuple(ipv4Arb, portArb), { maxLength: 6 }),
  peers6: fc.array(fc.tuple(ipv6BytesArb, portArb), { maxLength: 4 }),
  dictPeers: fc.boolean(),
  trackerId: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
  warning: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
}).map((r) => {
  const dict: Record<string, BencodeValue> = { interval: r.interval };
  const expected: AnnounceResponse = { interval: r.interval, peers: [] };
  if (r.minInterval !== undefined) dict["min interval"] = expected.minInterval = r.minInterval;
  if (r.complete !== undefined) dict.complete = expected.complete = r.complete;
  if (r.incomplete !== undefined) dict.incomplete = expected.incomplete = r.incomplete;
  if (r.trackerId !== undefined) {
    dict["tracker id"] = bytes(r.trackerId);
    expected.trackerId = r.trackerId;
  }
  if (r.warning !== undefined) {
    dict["warning message"] = bytes(r.warning);
    expected.warning = r.warning;
  }
  if (r.dictPeers) {
    dict.peers = r.peers4.map(([host, port]) => makeDict([["ip", bytes(host)], ["port", port]]));
  } else {
    dict.peers = concatBytes(
      r.peers4.map(([host, port]) =>
        Uint8Array.from([...host.split(".").map(Number), port >> 8, port & 0xff])
      ),
    );
  }
  for (const [host, port] of r.peers4) if (port !== 0) expected.peers.push({ host, port });
  if (r.peers6.length > 0) {
    dict.peers6 = concatBytes(
      r.peers6.map(([ip, port]) => Uint8Array.from([...ip, port >> 8, port & 0xff])),
    );
    for (const [ip, port] of r.peers6) {
      if (port !== 0) expected.peers.push({ host: canonicalIPv6(ip), port });
    }
  }
  return { dict, expected };
});

Deno.test("fuzz: parseAnnounceResponse() reads generated responses", async (t) => {
  await assertProperty(
    t,
    fc.property(responseArb, ({ dict, expected }) => {
      const response = parseAnnounceResponse(encode(dict));
      const { peers, ...rest } = response;
      const { peers: expectedPeers, ...expectedRest } = expected;
      assert.deepEqual({ ...rest }, expectedRest);
      // IPv6 text may differ in form (e.g. IPv4-mapped); compare canonical text.
      assert.deepEqual(
        peers.map((p) => [canonicalHost(p.host), p.port]),
        expectedPeers.map((p) => [p.host, p.port]),
      );
    }),
    { runs: 6000 },
  );
});

Deno.test("fuzz: parseAnnounceResponse() throws only TrackerError or TrackerFailureError on hostile bodies", async (t) => {
  const fieldArb = fc.constantFrom(
    "interval",
    "min interval",
    "complete",
    "incomplete",
    "peers",
    "peers6",
    "tracker id",
    "warning message",
    "failure reason",
  );
  const editedArb = fc.tuple(
    responseArb,
    fc.array(fc.tuple(fieldArb, fc.option(bencodeValueArb, { nil: undefined })), {
      minLength: 1,
      maxLength: 3,
    }),
  ).map(([{ dict }, edits]) => {
    const copy: Record<string, BencodeValue> = { ...dict };
    for (const [key, value] of edits) {
      if (value === undefined) delete copy[key];
      else copy[key] = value;
    }
    return encode(copy);
  });
  await assertProperty(
    t,
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 128 }),
        byteSoupArb,
        editedArb,
        responseArb.chain(({ dict }) => mutatedArb([encode(dict)], 3)),
      ),
      checkAnnounceParse,
    ),
    { runs: 16000 },
  );
});

// ---- UDP tracker packets (BEP 15) ----

function packet(
  action: number,
  transactionId: number,
  fill: (view: DataView) => void,
  size: number,
) {
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, action);
  view.setUint32(4, transactionId);
  fill(view);
  return out;
}

Deno.test("fuzz: UDP response parsers throw only TrackerError or TrackerFailureError on hostile packets", async (t) => {
  const transactionIdArb = fc.oneof(fc.constantFrom(0, 1, 0xffffffff, -1), fc.integer());
  const packetArb = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    // A plausible header (action 0-3, the expected transaction id) and random rest.
    fc.tuple(fc.nat({ max: 4 }), fc.uint8Array({ maxLength: 80 })).map(([action, rest]) =>
      concatBytes([Uint8Array.from([0, 0, 0, action, 0, 0, 0, 7]), rest])
    ),
  );
  await assertProperty(
    t,
    fc.property(packetArb, transactionIdArb, fc.boolean(), (input, transactionId, ipv6) => {
      const header = readHeader(input);
      if (input.length < 8) assert.equal(header, undefined);
      else assert.ok(header !== undefined);
      for (const transaction of [transactionId, 7]) {
        const connect = thrownBy(() => parseConnectResponse(input, transaction));
        expectOnly(connect, [TrackerFailureError, TrackerError]);
        let response: AnnounceResponse | undefined;
        const announce = thrownBy(() => {
          response = parseUdpAnnounceResponse(input, transaction, { ipv6 });
        });
        expectOnly(announce, [TrackerFailureError, TrackerError]);
        if (response !== undefined) {
          checkResponse(response);
          assert.equal(header!.action, ACTION_ANNOUNCE);
        }
      }
    }),
    { runs: 16000 },
  );
});

Deno.test("fuzz: UDP response parsers read generated connect, announce and error packets", async (t) => {
  const u32 = fc.nat({ max: 0xffffffff });
  await assertProperty(
    t,
    fc.property(
      u32,
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.tuple(u32, u32, u32),
      fc.array(fc.tuple(ipv4Arb, fc.integer({ min: 1, max: 65535 })), { maxLength: 5 }),
      fc.string({ maxLength: 20 }),
      (transactionId, connectionId, [interval, leechers, seeders], peers, reason) => {
        const connect = packet(
          ACTION_CONNECT,
          transactionId,
          (v) => v.setBigUint64(8, connectionId),
          16,
        );
        assert.equal(parseConnectResponse(connect, transactionId), connectionId);
        const announce = packet(ACTION_ANNOUNCE, transactionId, (v) => {
          v.setUint32(8, interval);
          v.setUint32(12, leechers);
          v.setUint32(16, seeders);
          peers.forEach(([host, port], i) => {
            host.split(".").forEach((octet, j) => v.setUint8(20 + i * 6 + j, Number(octet)));
            v.setUint16(24 + i * 6, port);
          });
        }, 20 + peers.length * 6);
        const response = parseUdpAnnounceResponse(announce, transactionId);
        assert.deepEqual(response, {
          interval,
          incomplete: leechers,
          complete: seeders,
          peers: peers.map(([host, port]) => ({ host, port })),
        });
        const error = concatBytes([
          packet(ACTION_ERROR, transactionId, () => {}, 8),
          bytes(reason),
        ]);
        assert.throws(
          () => parseUdpAnnounceResponse(error, transactionId),
          (e) => e instanceof TrackerFailureError && e.reason === reason,
        );
      },
    ),
    { runs: 6000 },
  );
});

Deno.test("fuzz: encodeAnnounceRequest() writes every field at its BEP 15 offset", async (t) => {
  const requestArb: fc.Arbitrary<AnnounceRequest> = fc.record({
    infoHash: fc.uint8Array({ minLength: 20, maxLength: 20 }),
    peerId: fc.uint8Array({ minLength: 20, maxLength: 20 }),
    port: fc.integer({ min: 0, max: 65535 }),
    uploaded: fc.maxSafeNat(),
    downloaded: fc.maxSafeNat(),
    left: fc.maxSafeNat(),
    event: fc.constantFrom("started" as const, "completed" as const, "stopped" as const),
    numWant: fc.integer({ min: -1, max: 2 ** 31 - 1 }),
    key: fc.nat({ max: 0xffffffff }),
  }, { requiredKeys: ["infoHash", "peerId", "port", "uploaded", "downloaded", "left"] });
  await assertProperty(
    t,
    fc.property(
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.nat({ max: 0xffffffff }),
      requestArb,
      (connectionId, transactionId, request) => {
        const out = encodeAnnounceRequest(connectionId, transactionId, request);
        assert.equal(out.length, 98);
        const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
        assert.equal(v.getBigUint64(0), connectionId);
        assert.equal(v.getUint32(8), ACTION_ANNOUNCE);
        assert.equal(v.getUint32(12), transactionId);
        assert.equal(out.subarray(16, 36).toHex(), request.infoHash.toHex());
        assert.equal(out.subarray(36, 56).toHex(), request.peerId.toHex());
        assert.equal(v.getBigUint64(56), BigInt(request.downloaded));
        assert.equal(v.getBigUint64(64), BigInt(request.left));
        assert.equal(v.getBigUint64(72), BigInt(request.uploaded));
        const events = { undefined: 0, completed: 1, started: 2, stopped: 3 };
        assert.equal(v.getUint32(80), events[`${request.event}`]);
        assert.equal(v.getUint32(84), 0);
        assert.equal(v.getUint32(88), request.key ?? 0);
        assert.equal(v.getInt32(92), request.numWant ?? -1);
        assert.equal(v.getUint16(96), request.port);
        const connect = new DataView(encodeConnectRequest(transactionId).buffer);
        assert.equal(connect.getBigUint64(0), PROTOCOL_ID);
        assert.equal(connect.getUint32(8), ACTION_CONNECT);
        assert.equal(connect.getUint32(12), transactionId);
      },
    ),
    { runs: 6000 },
  );
});
