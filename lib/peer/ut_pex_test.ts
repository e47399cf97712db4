import assert from "node:assert/strict";
import { PeerProtocolError } from "./errors.ts";
import { decodePexMessage, encodePexMessage, PEX_FLAGS, PexState } from "./ut_pex.ts";

const ascii = (text: string) => new TextEncoder().encode(text);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

Deno.test("encodePexMessage() writes compact IPv4 and IPv6 lists", () => {
  const payload = encodePexMessage({
    added: [
      { host: "10.0.0.1", port: 6881, flags: PEX_FLAGS.seed | PEX_FLAGS.reachable },
      { host: "2001:db8::1", port: 443 },
      { host: "example.org", port: 80 }, // a name: skipped
    ],
    dropped: [{ host: "192.168.0.9", port: 1 }, { host: "::1", port: 2 }],
  });
  assert.deepEqual(
    payload,
    concat(
      ascii("d"),
      ascii("5:added6:"),
      Uint8Array.fromHex("0a000001" + "1ae1"), // 10.0.0.1, port 6881
      ascii("7:added.f1:"),
      Uint8Array.fromHex("12"), // seed | reachable
      ascii("6:added618:"),
      Uint8Array.fromHex("20010db8000000000000000000000001" + "01bb"), // 2001:db8::1, port 443
      ascii("8:added6.f1:"),
      Uint8Array.fromHex("00"), // no flags
      ascii("7:dropped6:"),
      Uint8Array.fromHex("c0a80009" + "0001"), // 192.168.0.9, port 1
      ascii("8:dropped618:"),
      Uint8Array.fromHex("00000000000000000000000000000001" + "0002"), // ::1, port 2
      ascii("e"),
    ),
  );
});

Deno.test("encodePexMessage() leaves out empty lists", () => {
  assert.deepEqual(encodePexMessage({}), ascii("de"));
});

Deno.test("encodePexMessage() caps the lists at 50 peers", () => {
  const added = Array.from({ length: 60 }, (_, i) => ({ host: `10.0.0.${i}`, port: 1000 + i }));
  const decoded = decodePexMessage(encodePexMessage({ added, dropped: added }), {
    maxAdded: 100,
    maxDropped: 100,
  });
  assert.equal(decoded.added.length, 50);
  assert.equal(decoded.dropped.length, 50);
  assert.deepEqual(decoded.added[49], { host: "10.0.0.49", port: 1049, flags: 0 });
  const small = decodePexMessage(encodePexMessage({ added }, { maxAdded: 3 }));
  assert.equal(small.added.length, 3);
});

Deno.test("encodePexMessage() checks ports and flags", () => {
  assert.throws(() => encodePexMessage({ added: [{ host: "1.2.3.4", port: 0 }] }), RangeError);
  assert.throws(
    () => encodePexMessage({ dropped: [{ host: "1.2.3.4", port: 70000 }] }),
    RangeError,
  );
  assert.throws(
    () => encodePexMessage({ added: [{ host: "1.2.3.4", port: 1, flags: 256 }] }),
    RangeError,
  );
});

Deno.test("decodePexMessage() reads peers and flags", () => {
  const payload = concat(
    ascii("d"),
    ascii("5:added12:"),
    Uint8Array.fromHex("7f000001" + "1ae1"), // 127.0.0.1:6881
    Uint8Array.fromHex("01020304" + "0000"), // port 0: skipped, its flag too
    ascii("7:added.f2:"),
    Uint8Array.fromHex("01" + "02"), // prefers encryption; seed (for the skipped one)
    ascii("6:added636:"),
    Uint8Array.fromHex("fe800000000000000000000000000001" + "0050"), // fe80::1:80
    Uint8Array.fromHex("00000000000000000000ffff01020304" + "0051"), // ::ffff:1.2.3.4, port 81
    ascii("8:dropped618:"),
    Uint8Array.fromHex("20010db8000000010000000000000000" + "ffff"), // 2001:db8:0:1::, port 65535
    ascii("7:unknown6:abcdef"), // unknown key: ignored
    ascii("e"),
  );
  assert.deepEqual(decodePexMessage(payload), {
    added: [
      { host: "127.0.0.1", port: 6881, flags: PEX_FLAGS.preferEncryption },
      { host: "fe80::1", port: 80, flags: 0 }, // no added6.f: flags 0
      { host: "::ffff:1.2.3.4", port: 81, flags: 0 },
    ],
    dropped: [{ host: "2001:db8:0:1::", port: 65535 }],
  });
});

Deno.test("decodePexMessage() is lenient about types and order", () => {
  // Unsorted keys, `added` as an integer (ignored), short `added6.f`.
  const payload = concat(
    ascii("d6:added618:"),
    Uint8Array.fromHex("00000000000000000000000000000002" + "0001"),
    ascii("8:added6.f0:5:addedi5ee"),
  );
  assert.deepEqual(decodePexMessage(payload), {
    added: [{ host: "::2", port: 1, flags: 0 }],
    dropped: [],
  });
});

Deno.test("decodePexMessage() ignores peers past the caps", () => {
  const added = new Uint8Array(6 * 60);
  for (let i = 0; i < 60; i++) added.set([10, 0, 0, i, 0, 1], i * 6);
  const payload = concat(ascii("d5:added360:"), added, ascii("e"));
  assert.equal(decodePexMessage(payload).added.length, 50);
  assert.equal(decodePexMessage(payload, { maxAdded: 2 }).added.length, 2);
});

Deno.test("decodePexMessage() rejects malformed messages", async (t) => {
  for (
    const [name, payload] of [
      ["garbage", ascii("xyz")],
      ["a list", ascii("le")],
      ["truncated", ascii("d5:added6:abc")],
      ["added of 5 bytes", ascii("d5:added5:abcdee")],
      ["added6 of 6 bytes", ascii("d6:added66:abcdefe")],
      ["dropped of 7 bytes", ascii("d7:dropped7:abcdefge")],
    ] as const
  ) {
    await t.step(name, () => {
      assert.throws(() => decodePexMessage(payload), PeerProtocolError);
    });
  }
});

Deno.test("PexState sends the diff at most once per interval", () => {
  let now = 1_000;
  const state = new PexState({ now: () => now });
  const a = { host: "10.0.0.1", port: 1, flags: 0 };
  const b = { host: "10.0.0.2", port: 2, flags: PEX_FLAGS.seed };
  const c = { host: "2001:db8::3", port: 3 };

  assert.equal(state.next([]), undefined); // nothing to say: does not start the interval
  assert.deepEqual(state.next([a, b]), { added: [a, b], dropped: [] });
  assert.equal(state.lastSent, 1_000);

  now += 59_999;
  assert.equal(state.next([b, c]), undefined); // too early
  now += 1;
  assert.deepEqual(state.next([b, c]), {
    added: [{ ...c, flags: 0 }],
    dropped: [{ host: "10.0.0.1", port: 1 }],
  });

  now += 60_000;
  assert.equal(state.next([b, c]), undefined); // no change
  // Another spelling of the same IPv6 address is the same peer; a flag change is news.
  assert.deepEqual(
    state.next([{ ...b, flags: 0 }, { host: "2001:0db8:0:0:0:0:0:3", port: 3 }]),
    { added: [{ ...b, flags: 0 }], dropped: [] },
  );
});

Deno.test("PexState keeps what did not fit for the next message", () => {
  let now = 0;
  const state = new PexState({ now: () => now, maxAdded: 2, maxDropped: 1, intervalMs: 10 });
  const peers = Array.from({ length: 3 }, (_, i) => ({ host: `10.0.0.${i}`, port: 1, flags: 0 }));
  assert.deepEqual(state.next(peers)?.added, peers.slice(0, 2));
  now = 10;
  assert.deepEqual(state.next(peers), { added: peers.slice(2), dropped: [] });
  now = 20;
  assert.deepEqual(state.next([]), { added: [], dropped: [{ host: "10.0.0.0", port: 1 }] });
  now = 30;
  assert.equal(state.next([])?.dropped.length, 1);
  now = 40;
  assert.equal(state.next([])?.dropped.length, 1);
  now = 50;
  assert.equal(state.next([]), undefined);
});

Deno.test("PexState checks its options", () => {
  assert.throws(() => new PexState({ intervalMs: -1 }), RangeError);
  assert.throws(() => new PexState({ maxAdded: 0 }), RangeError);
  assert.throws(() => new PexState({ maxDropped: 1.5 }), RangeError);
});

Deno.test("encodePexMessage() and decodePexMessage() round-trip IPv6 spellings", () => {
  const hosts = ["::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:0:0:2::3", "::ffff:10.0.0.1", "fe80::"];
  const added = hosts.map((host, i) => ({ host, port: i + 1, flags: i }));
  assert.deepEqual(decodePexMessage(encodePexMessage({ added })).added, added);
  // Non-canonical spellings come back canonical; invalid ones are skipped like names.
  const odd = encodePexMessage({
    added: [
      { host: "0:0:0:0:0:0:0:1", port: 1 },
      { host: "FE80:0:0:0:0:0:0:0", port: 2 },
      { host: "1:2:3:4:5:6:7:8:9", port: 3 },
      { host: "1::2::3", port: 4 },
      { host: "1.2.3.256", port: 5 },
      { host: "01.2.3.4", port: 6 },
    ],
  });
  assert.deepEqual(decodePexMessage(odd).added, [
    { host: "::1", port: 1, flags: 0 },
    { host: "fe80::", port: 2, flags: 0 },
  ]);
});
