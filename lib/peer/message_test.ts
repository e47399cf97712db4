import assert from "node:assert/strict";
import { PeerProtocolError } from "./errors.ts";
import {
  decodeMessage,
  encodedLength,
  encodeMessage,
  encodeMessageInto,
  encodeMessages,
  type PeerMessage,
} from "./message.ts";

/** Joins hex fields (one per argument, so each can carry a comment) into bytes. */
function hex(...fields: string[]): Uint8Array {
  const text = fields.join("");
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** Each message with its exact frame, including the length prefix. */
const FIXTURES: [string, PeerMessage, Uint8Array][] = [
  ["keep-alive", { type: "keep-alive" }, hex("00000000")], // length 0, no id
  ["choke", { type: "choke" }, hex("00000001", "00")], // length 1 | id 0
  ["unchoke", { type: "unchoke" }, hex("00000001", "01")], // length 1 | id 1
  ["interested", { type: "interested" }, hex("00000001", "02")], // length 1 | id 2
  ["not-interested", { type: "not-interested" }, hex("00000001", "03")], // length 1 | id 3
  [
    "have",
    { type: "have", index: 0x01020304 },
    hex(
      "00000005", // length 5
      "04", // id 4
      "01020304", // piece index
    ),
  ],
  [
    "bitfield",
    { type: "bitfield", bitfield: new Uint8Array([0xff, 0x80]) },
    hex(
      "00000003", // length 3
      "05", // id 5
      "ff80", // bitfield: pieces 0-8
    ),
  ],
  [
    "request",
    { type: "request", index: 1, begin: 0x4000, length: 0x4000 },
    hex(
      "0000000d", // length 13
      "06", // id 6
      "00000001", // piece index 1
      "00004000", // begin 16384
      "00004000", // length 16384
    ),
  ],
  [
    "piece",
    { type: "piece", index: 2, begin: 0x8000, block: new Uint8Array([0xde, 0xad, 0xbe]) },
    hex(
      "0000000c", // length 12
      "07", // id 7
      "00000002", // piece index 2
      "00008000", // begin 32768
      "deadbe", // block
    ),
  ],
  [
    "cancel",
    { type: "cancel", index: 0xffffffff, begin: 0, length: 1 },
    hex(
      "0000000d", // length 13
      "08", // id 8
      "ffffffff", // piece index 2^32-1
      "00000000", // begin 0
      "00000001", // length 1
    ),
  ],
  [
    "port",
    { type: "port", port: 6881 },
    hex(
      "00000003", // length 3
      "09", // id 9 (BEP 5)
      "1ae1", // port 6881
    ),
  ],
  [
    "suggest",
    { type: "suggest", index: 7 },
    hex(
      "00000005", // length 5
      "0d", // id 13 (BEP 6)
      "00000007", // piece index 7
    ),
  ],
  ["have-all", { type: "have-all" }, hex("00000001", "0e")], // length 1 | id 14 (BEP 6)
  ["have-none", { type: "have-none" }, hex("00000001", "0f")], // length 1 | id 15 (BEP 6)
  [
    "reject",
    { type: "reject", index: 3, begin: 0x4000, length: 0x0e20 },
    hex(
      "0000000d", // length 13
      "10", // id 16 (BEP 6)
      "00000003", // piece index 3
      "00004000", // begin 16384
      "00000e20", // length 3616
    ),
  ],
  [
    "allowed-fast",
    { type: "allowed-fast", index: 42 },
    hex(
      "00000005", // length 5
      "11", // id 17 (BEP 6)
      "0000002a", // piece index 42
    ),
  ],
  [
    "extended",
    { type: "extended", id: 0, payload: hex("6465") },
    hex(
      "00000004", // length 4
      "14", // id 20 (BEP 10)
      "00", // extended id 0 = extension handshake
      "6465", // payload "de" (empty bencoded dict)
    ),
  ],
];

Deno.test("encodeMessage() produces the exact frame of every message type", async (t) => {
  for (const [name, message, frame] of FIXTURES) {
    await t.step(name, () => {
      assert.deepEqual(encodeMessage(message), frame);
      assert.equal(encodedLength(message), frame.length);
    });
  }
});

Deno.test("decodeMessage() decodes the exact frame of every message type", async (t) => {
  for (const [name, message, frame] of FIXTURES) {
    await t.step(name, () => {
      assert.deepEqual(decodeMessage(frame.subarray(4)), message);
    });
  }
});

Deno.test("decodeMessage() round-trips encodeMessage()", () => {
  const messages: PeerMessage[] = [
    { type: "piece", index: 0, begin: 0, block: new Uint8Array(16384).fill(7) },
    { type: "piece", index: 1, begin: 16384, block: new Uint8Array(0) },
    { type: "bitfield", bitfield: new Uint8Array(0) },
    { type: "extended", id: 255, payload: new Uint8Array(0) },
    { type: "port", port: 65535 },
    { type: "unknown", id: 99, payload: new Uint8Array([1, 2, 3]) },
  ];
  for (const message of messages) {
    assert.deepEqual(decodeMessage(encodeMessage(message).subarray(4)), message);
  }
});

Deno.test("decodeMessage() returns views, not copies, for blocks and bitfields", () => {
  const piece = hex("07", "00000000", "00000000", "aabbcc"); // id 7 | index 0 | begin 0 | block
  const decodedPiece = decodeMessage(piece);
  assert.equal(decodedPiece.type, "piece");
  if (decodedPiece.type !== "piece") return;
  assert.equal(decodedPiece.block.buffer, piece.buffer);
  assert.equal(decodedPiece.block.byteOffset, 9);
  piece[9] = 0x11;
  assert.equal(decodedPiece.block[0], 0x11);

  const bitfield = hex("05", "f0"); // id 5 | bitfield
  const decodedBitfield = decodeMessage(bitfield);
  assert.equal(decodedBitfield.type, "bitfield");
  if (decodedBitfield.type !== "bitfield") return;
  assert.equal(decodedBitfield.bitfield.buffer, bitfield.buffer);
  assert.equal(decodedBitfield.bitfield.byteOffset, 1);
});

Deno.test("decodeMessage() decodes unknown ids instead of throwing", () => {
  assert.deepEqual(decodeMessage(hex("63", "0102")), { // id 99 | payload
    type: "unknown",
    id: 99,
    payload: new Uint8Array([1, 2]),
  });
  assert.deepEqual(decodeMessage(hex("0a")), { // id 10: unassigned
    type: "unknown",
    id: 10,
    payload: new Uint8Array(0),
  });
});

Deno.test("decodeMessage() rejects wrong payload sizes", async (t) => {
  const cases: [string, Uint8Array, string][] = [
    ["have, 3 bytes", hex("04", "000001"), "have message: payload is 3 bytes, expected 4"],
    ["have, 5 bytes", hex("04", "0000000100"), "have message: payload is 5 bytes, expected 4"],
    ["choke with payload", hex("00", "00"), "choke message: payload is 1 bytes, expected 0"],
    ["unchoke with payload", hex("01", "00"), "unchoke message: payload is 1 bytes, expected 0"],
    ["interested with payload", hex("02", "00"), "interested message: payload is 1 bytes"],
    ["not-interested with payload", hex("03", "00"), "not-interested message: payload is 1"],
    ["request, 11 bytes", hex("06", "0000000000000000000000"), "request message: payload is 11"],
    ["request, 13 bytes", hex("06", "00000000000000000000000000"), "expected 12"],
    [
      "piece, 7 bytes",
      hex("07", "00000000000000"),
      "piece message: payload is 7 bytes, expected at least 8",
    ],
    ["cancel, 0 bytes", hex("08"), "cancel message: payload is 0 bytes, expected 12"],
    ["port, 1 byte", hex("09", "1a"), "port message: payload is 1 bytes, expected 2"],
    ["suggest, 2 bytes", hex("0d", "0000"), "suggest message: payload is 2 bytes, expected 4"],
    ["have-all with payload", hex("0e", "ff"), "have-all message: payload is 1 bytes, expected 0"],
    [
      "have-none with payload",
      hex("0f", "ff"),
      "have-none message: payload is 1 bytes, expected 0",
    ],
    ["reject, 8 bytes", hex("10", "0000000000000000"), "reject message: payload is 8 bytes"],
    ["allowed-fast, 0 bytes", hex("11"), "allowed-fast message: payload is 0 bytes, expected 4"],
    ["extended without id", hex("14"), "extended message: payload is 0 bytes, expected at least 1"],
  ];
  for (const [name, payload, message] of cases) {
    await t.step(name, () => {
      assert.throws(
        () => decodeMessage(payload),
        (error: unknown) =>
          error instanceof PeerProtocolError && error.message.startsWith("Cannot decode ") &&
          error.message.includes(message),
      );
    });
  }
});

Deno.test("encodeMessage() rejects out-of-range fields", async (t) => {
  const cases: [string, PeerMessage][] = [
    ["negative index", { type: "have", index: -1 }],
    ["index above 2^32-1", { type: "request", index: 2 ** 32, begin: 0, length: 1 }],
    ["fractional begin", { type: "cancel", index: 0, begin: 0.5, length: 1 }],
    ["NaN length", { type: "reject", index: 0, begin: 0, length: NaN }],
    ["piece begin", { type: "piece", index: 0, begin: -5, block: new Uint8Array(1) }],
    ["port above 65535", { type: "port", port: 65536 }],
    ["extended id above 255", { type: "extended", id: 256, payload: new Uint8Array(0) }],
    ["unknown id above 255", { type: "unknown", id: 300, payload: new Uint8Array(0) }],
  ];
  for (const [name, message] of cases) {
    await t.step(name, () => {
      assert.throws(() => encodeMessage(message), RangeError);
    });
  }
});

Deno.test("encodeMessageInto() writes at an offset and reports the bytes written", () => {
  const target = new Uint8Array(20).fill(0xee);
  const written = encodeMessageInto({ type: "have", index: 5 }, target, 3);
  assert.equal(written, 9);
  assert.deepEqual(
    target,
    hex(
      "eeeeee", // untouched
      "00000005", // length 5
      "04", // id 4
      "00000005", // piece index 5
      "eeeeeeeeeeeeeeee", // untouched
    ),
  );
});

Deno.test("encodeMessageInto() rejects a target that is too small", () => {
  const target = new Uint8Array(8);
  assert.throws(() => encodeMessageInto({ type: "have", index: 5 }, target, 0), RangeError);
  assert.throws(() => encodeMessageInto({ type: "choke" }, target, 4), RangeError);
  assert.throws(() => encodeMessageInto({ type: "choke" }, target, -1), RangeError);
  assert.deepEqual(target, new Uint8Array(8));
});

Deno.test("encodeMessages() concatenates frames into one buffer", () => {
  assert.deepEqual(
    encodeMessages([
      { type: "interested" },
      { type: "request", index: 0, begin: 0, length: 16384 },
    ]),
    hex(
      "00000001", // length 1
      "02", // id 2 = interested
      "0000000d", // length 13
      "06", // id 6 = request
      "00000000", // piece index 0
      "00000000", // begin 0
      "00004000", // length 16384
    ),
  );
  assert.deepEqual(encodeMessages([]), new Uint8Array(0));
});
