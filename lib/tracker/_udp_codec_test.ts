import assert from "node:assert/strict";
import {
  encodeAnnounceRequest,
  encodeConnectRequest,
  parseConnectResponse,
  parseUdpAnnounceResponse,
  readHeader,
} from "./_udp_codec.ts";
import { TrackerError, TrackerFailureError } from "./announce.ts";

Deno.test("encodeConnectRequest() writes protocol id, action 0 and the transaction id", () => {
  assert.equal(
    encodeConnectRequest(0xcafebabe).toHex(),
    "0000041727101980" + // protocol id (magic)
      "00000000" + // action: connect
      "cafebabe", // transaction id
  );
});

Deno.test("encodeAnnounceRequest() lays out all 98 bytes", async (t) => {
  const base = {
    infoHash: Uint8Array.fromHex("00112233445566778899aabbccddeeff00112233"),
    peerId: new TextEncoder().encode("-DT0001-0123456789ab"),
    port: 51413,
    uploaded: 3,
    downloaded: 2 ** 40,
    left: 1,
  };
  await t.step("with event, key and numWant", () => {
    const packet = encodeAnnounceRequest(0x0102030405060708n, 0x11223344, {
      ...base,
      event: "stopped",
      key: 0xfeedf00d,
      numWant: 30,
    });
    assert.equal(
      packet.toHex(),
      "0102030405060708" + // connection id
        "00000001" + // action: announce
        "11223344" + // transaction id
        "00112233445566778899aabbccddeeff00112233" + // info hash
        "2d4454303030312d" + "30313233343536373839" + "6162" + // peer id "-DT0001-" "0123456789" "ab"
        "0000010000000000" + // downloaded 2^40
        "0000000000000001" + // left 1
        "0000000000000003" + // uploaded 3
        "00000003" + // event: stopped
        "00000000" + // IP: use sender's
        "feedf00d" + // key
        "0000001e" + // num_want 30
        "c8d5", // port 51413
    );
  });
  await t.step("defaults: event none, key 0, num_want -1", () => {
    const packet = encodeAnnounceRequest(1n, 2, base);
    assert.equal(packet.length, 98);
    assert.equal(
      packet.subarray(80, 98).toHex(),
      "00000000" + "00000000" + "00000000" + "ffffffff" + "c8d5",
    );
  });
  await t.step("event codes", () => {
    const code = (event: "started" | "completed" | "stopped") =>
      encodeAnnounceRequest(1n, 2, { ...base, event })[83];
    assert.deepEqual([code("completed"), code("started"), code("stopped")], [1, 2, 3]);
  });
});

Deno.test("parseConnectResponse() checks action, transaction id and size", async (t) => {
  const good = Uint8Array.fromHex(
    "00000000" + // action: connect
      "0000002a" + // transaction id 42
      "8000000000000001", // connection id
  );
  await t.step("valid", () => assert.equal(parseConnectResponse(good, 42), 0x8000000000000001n));
  await t.step(
    "wrong transaction id",
    () =>
      assert.throws(() => parseConnectResponse(good, 43), /transaction id 42 does not match 43/),
  );
  await t.step(
    "truncated",
    () => assert.throws(() => parseConnectResponse(good.subarray(0, 15), 42), TrackerError),
  );
  await t.step(
    "shorter than a header",
    () => assert.throws(() => parseConnectResponse(good.subarray(0, 5), 42), TrackerError),
  );
  await t.step("wrong action", () =>
    assert.throws(
      () => parseConnectResponse(Uint8Array.fromHex("000000010000002a8000000000000001"), 42),
      /expected action 0, got 1/,
    ));
});

Deno.test("parseUdpAnnounceResponse() reads counters and peers", async (t) => {
  const header = "00000001" + // action: announce
    "00000007" + // transaction id
    "00000384" + // interval 900
    "0000000a" + // leechers 10
    "00000014"; // seeders 20
  await t.step("IPv4 peers", () => {
    const packet = Uint8Array.fromHex(header + "7f0000011ae1" + "0a0000010050"); // 127.0.0.1:6881, 10.0.0.1:80
    assert.deepEqual(parseUdpAnnounceResponse(packet, 7), {
      interval: 900,
      incomplete: 10,
      complete: 20,
      peers: [{ host: "127.0.0.1", port: 6881 }, { host: "10.0.0.1", port: 80 }],
    });
  });
  await t.step("IPv6 peers from an IPv6 tracker", () => {
    const packet = Uint8Array.fromHex(header + "00000000000000000000000000000001" + "1ae1"); // [::1]:6881
    assert.deepEqual(parseUdpAnnounceResponse(packet, 7, { ipv6: true }).peers, [
      { host: "::1", port: 6881 },
    ]);
  });
  await t.step("no peers", () => {
    assert.deepEqual(parseUdpAnnounceResponse(Uint8Array.fromHex(header), 7).peers, []);
  });
  await t.step("misaligned peers", () => {
    assert.throws(
      () => parseUdpAnnounceResponse(Uint8Array.fromHex(header + "7f00000100"), 7),
      /multiple of 6/,
    );
  });
  await t.step("short header", () => {
    assert.throws(
      () => parseUdpAnnounceResponse(Uint8Array.fromHex(header.slice(0, 32)), 7),
      TrackerError,
    );
  });
});

Deno.test("an error action becomes TrackerFailureError with the message", () => {
  const packet = new Uint8Array([
    0,
    0,
    0,
    3, // action: error
    0,
    0,
    0,
    9, // transaction id
    ...new TextEncoder().encode("unknown torrent"), // message
  ]);
  assert.deepEqual(readHeader(packet), { action: 3, transactionId: 9 });
  for (
    const parse of [
      () => parseConnectResponse(packet, 9),
      () => parseUdpAnnounceResponse(packet, 9),
    ]
  ) {
    assert.throws(parse, (error) => {
      assert.ok(error instanceof TrackerFailureError);
      assert.equal(error.reason, "unknown torrent");
      return true;
    });
  }
  assert.equal(readHeader(new Uint8Array(7)), undefined);
});
