import assert from "node:assert/strict";
import { buildAnnounceUrl, parseAnnounceResponse, percentEncodeBytes } from "./http_codec.ts";
import { type AnnounceRequest, TrackerError, TrackerFailureError } from "./announce.ts";

const text = new TextEncoder();

/** Concatenates text and byte parts into one body. */
function bytes(...parts: (string | number[])[]): Uint8Array {
  return new Uint8Array(
    parts.flatMap((part) => typeof part === "string" ? [...text.encode(part)] : part),
  );
}

// One byte of every class: unreserved kept, reserved/space/controls/high bytes escaped.
const EVERY_CLASS = Uint8Array.fromHex(
  "00" + // NUL -> %00
    "20" + // space -> %20 (never "+")
    "2d2e5f7e" + // - . _ ~ unreserved punctuation, kept
    "3039" + // 0 9 digits, kept
    "415a" + // A Z, kept
    "617a" + // a z, kept
    "25" + // % -> %25
    "2b" + // + -> %2B
    "2f" + // / -> %2F
    "3d" + // = -> %3D
    "26" + // & -> %26
    "80" + // high bit -> %80
    "ff" + // 0xff -> %FF
    "0a", // newline -> %0A
);

const REQUEST: AnnounceRequest = {
  infoHash: EVERY_CLASS,
  peerId: text.encode("-DT0001-0123456789ab"),
  port: 6881,
  uploaded: 1,
  downloaded: 2,
  left: 3,
};

Deno.test("percentEncodeBytes() keeps unreserved bytes and escapes the rest in upper case", () => {
  assert.equal(EVERY_CLASS.length, 20);
  assert.equal(percentEncodeBytes(EVERY_CLASS), "%00%20-._~09AZaz%25%2B%2F%3D%26%80%FF%0A");
  // Every byte value round-trips through decodeURIComponent-style unescaping.
  const all = new Uint8Array(256).map((_, i) => i);
  const encoded = percentEncodeBytes(all);
  const decoded = Uint8Array.from(
    encoded.match(/%[0-9A-F]{2}|./g)!.map((t) =>
      t.length === 3 ? parseInt(t.slice(1), 16) : t.charCodeAt(0)
    ),
  );
  assert.deepEqual(decoded, all);
  assert.equal(/%[0-9A-F]{2}/.test(encoded) && !/%[0-9A-F][a-f]|%[a-f]/.test(encoded), true);
});

Deno.test("buildAnnounceUrl() writes every parameter", async (t) => {
  await t.step("minimal request", () => {
    assert.equal(
      buildAnnounceUrl("http://127.0.0.1:6969/announce", REQUEST),
      "http://127.0.0.1:6969/announce?info_hash=%00%20-._~09AZaz%25%2B%2F%3D%26%80%FF%0A" +
        "&peer_id=-DT0001-0123456789ab&port=6881&uploaded=1&downloaded=2&left=3&compact=1",
    );
  });
  await t.step("all optional fields", () => {
    const url = buildAnnounceUrl("https://t.example/a", {
      ...REQUEST,
      infoHash: new Uint8Array(20).fill(0x61), // "a" x 20
      event: "completed",
      numWant: 50,
      key: 0xdeadbeef,
      trackerId: "id 1",
    });
    assert.equal(
      url,
      "https://t.example/a?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=-DT0001-0123456789ab" +
        "&port=6881&uploaded=1&downloaded=2&left=3&compact=1&event=completed&numwant=50" +
        "&key=DEADBEEF&trackerid=id%201",
    );
  });
  await t.step("existing query string is kept", () => {
    const url = buildAnnounceUrl("http://t/announce.php?passkey=x1", REQUEST);
    assert.ok(url.startsWith("http://t/announce.php?passkey=x1&info_hash=%00"));
    const trailing = buildAnnounceUrl("http://t/announce?", REQUEST);
    assert.ok(trailing.startsWith("http://t/announce?info_hash="));
    const fragment = buildAnnounceUrl("http://t/announce?a=1#frag", REQUEST);
    assert.ok(fragment.startsWith("http://t/announce?a=1&info_hash="));
    assert.ok(!fragment.includes("#"));
  });
  await t.step("bad arguments", () => {
    assert.throws(
      () => buildAnnounceUrl("http://t/", { ...REQUEST, infoHash: new Uint8Array(19) }),
      TypeError,
    );
    assert.throws(
      () => buildAnnounceUrl("http://t/", { ...REQUEST, peerId: new Uint8Array(21) }),
      TypeError,
    );
    assert.throws(() => buildAnnounceUrl("http://t/", { ...REQUEST, port: 65536 }), RangeError);
    assert.throws(() => buildAnnounceUrl("http://t/", { ...REQUEST, left: -1 }), RangeError);
    assert.throws(() => buildAnnounceUrl("udp://t:1", REQUEST), TypeError);
  });
});

Deno.test("parseAnnounceResponse() reads compact peers and all counters", () => {
  const body = bytes(
    "d",
    "8:complete",
    "i5e", // seeders
    "10:incomplete",
    "i7e", // leechers
    "8:interval",
    "i1800e",
    "12:min interval",
    "i60e",
    "5:peers",
    "12:",
    [10, 0, 0, 1, 0x1a, 0xe1], // 10.0.0.1:6881
    [192, 168, 1, 255, 0xff, 0xff], // 192.168.1.255:65535
    "10:tracker id",
    "3:abc",
    "15:warning message",
    "4:slow",
    "e",
  );
  assert.deepEqual(parseAnnounceResponse(body), {
    interval: 1800,
    minInterval: 60,
    complete: 5,
    incomplete: 7,
    trackerId: "abc",
    warning: "slow",
    peers: [{ host: "10.0.0.1", port: 6881 }, { host: "192.168.1.255", port: 65535 }],
  });
});

Deno.test("parseAnnounceResponse() reads dictionary-model peers", () => {
  const body = bytes(
    "d8:intervali900e5:peersl",
    "d2:ip9:127.0.0.17:peer id20:-XX0001-abcdefghijkl4:porti6881ee", // with peer id
    "d2:ip3:::14:porti51413ee", // IPv6, no peer id
    "d2:ip5:[::2]4:porti7ee", // bracketed IPv6
    "ee",
  );
  assert.deepEqual(parseAnnounceResponse(body).peers, [
    { host: "127.0.0.1", port: 6881 },
    { host: "::1", port: 51413 },
    { host: "::2", port: 7 },
  ]);
});

Deno.test("parseAnnounceResponse() reads peers6 (BEP 7) and formats IPv6 compactly", () => {
  const body = bytes(
    "d8:intervali60e5:peers0:6:peers636:",
    [...new Uint8Array(15), 1, 0x1a, 0xe1], // ::1 port 6881
    [0x20, 0x01, 0x0d, 0xb8, ...new Uint8Array(10), 0, 5, 0, 80], // 2001:db8::5 port 80
    "e",
  );
  assert.deepEqual(parseAnnounceResponse(body).peers, [
    { host: "::1", port: 6881 },
    { host: "2001:db8::5", port: 80 },
  ]);
});

Deno.test("parseAnnounceResponse() accepts unsorted keys from lax trackers", () => {
  const body = bytes("d5:peers0:8:intervali30ee"); // "peers" before "interval"
  assert.deepEqual(parseAnnounceResponse(body), { interval: 30, peers: [] });
});

Deno.test("parseAnnounceResponse() throws TrackerFailureError for a failure reason", () => {
  const body = bytes("d14:failure reason17:torrent not founde");
  assert.throws(() => parseAnnounceResponse(body), (error) => {
    assert.ok(error instanceof TrackerFailureError);
    assert.equal(error.reason, "torrent not found");
    assert.equal(error.message, "Tracker refused the announce: torrent not found");
    return true;
  });
});

Deno.test("parseAnnounceResponse() rejects malformed bodies with TrackerError", async (t) => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["HTML instead of bencode", bytes("<html>oops</html>"), /Cannot parse tracker response/],
    ["empty body", bytes(""), /Cannot parse tracker response/],
    ["not a dictionary", bytes("li1ee"), /dictionary/],
    ["missing interval", bytes("d5:peers0:e"), /interval/],
    ["compact peers not a multiple of 6", bytes("d8:intervali1e5:peers5:abcdee"), /multiple of 6/],
    ["peers6 not a multiple of 18", bytes("d8:intervali1e6:peers66:abcdefe"), /multiple of 18/],
    ["dict peer without port", bytes("d8:intervali1e5:peersld2:ip1:xeee"), /port/],
    ["trailing garbage", bytes("d8:intervali1e5:peers0:eXX"), /Cannot parse/],
  ];
  for (const [name, body, pattern] of cases) {
    await t.step(name, () => {
      assert.throws(() => parseAnnounceResponse(body), (error) => {
        assert.ok(error instanceof TrackerError, `${name}: got ${error}`);
        assert.match(error.message, pattern);
        return true;
      });
    });
  }
});
