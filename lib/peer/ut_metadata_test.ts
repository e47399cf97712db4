import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { PeerProtocolError } from "./errors.ts";
import {
  decodeMetadataMessage,
  encodeMetadataMessage,
  METADATA_PIECE_LENGTH,
  MetadataAssembler,
  metadataPieceCount,
  metadataPieceLength,
} from "./ut_metadata.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function sha1(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(data).digest());
}

Deno.test("metadataPieceCount() and metadataPieceLength() split in 16 KiB pieces", () => {
  assert.equal(METADATA_PIECE_LENGTH, 16384);
  assert.equal(metadataPieceCount(1), 1);
  assert.equal(metadataPieceCount(32768), 2);
  assert.equal(metadataPieceCount(32769), 3);
  assert.equal(metadataPieceLength(32769, 1), 16384);
  assert.equal(metadataPieceLength(32769, 2), 1);
  assert.throws(() => metadataPieceLength(32769, 3), RangeError);
  assert.throws(() => metadataPieceLength(32769, -1), RangeError);
  assert.throws(() => metadataPieceCount(-1), RangeError);
  assert.throws(() => metadataPieceCount(0.5), RangeError);
});

Deno.test("encodeMetadataMessage() writes BEP 9 messages", async (t) => {
  await t.step("request", () => {
    assert.equal(
      text(encodeMetadataMessage({ type: "request", piece: 5 })),
      "d" + "8:msg_typei0e" + /* request */ "5:piecei5e" + /* piece 5 */ "e",
    );
  });
  await t.step("reject", () => {
    assert.equal(
      text(encodeMetadataMessage({ type: "reject", piece: 1 })),
      "d" + "8:msg_typei2e" + /* reject */ "5:piecei1e" + /* piece 1 */ "e",
    );
  });
  await t.step("data, last piece", () => {
    const data = new Uint8Array(100).fill(0x61);
    const payload = encodeMetadataMessage({ type: "data", piece: 1, totalSize: 16484, data });
    assert.deepEqual(
      payload,
      concat(
        bytes(
          "d" +
            "8:msg_typei1e" + // data
            "5:piecei1e" + // piece 1
            "10:total_sizei16484e" + // total_size: 16 KiB + 100
            "e",
        ),
        data, // the last piece's 100 bytes, after the dictionary
      ),
    );
  });
  await t.step("bad values", () => {
    assert.throws(() => encodeMetadataMessage({ type: "request", piece: -1 }), RangeError);
    assert.throws(() => encodeMetadataMessage({ type: "reject", piece: 0.5 }), RangeError);
    // Data of the wrong length for its piece.
    assert.throws(
      () =>
        encodeMetadataMessage({
          type: "data",
          piece: 0,
          totalSize: 20000,
          data: new Uint8Array(100),
        }),
      RangeError,
    );
    assert.throws(
      () =>
        encodeMetadataMessage({ type: "data", piece: 2, totalSize: 20000, data: new Uint8Array() }),
      RangeError,
    );
    assert.throws(() => encodeMetadataMessage({ type: "unknown", msgType: 9 }), TypeError);
  });
});

Deno.test("decodeMetadataMessage() reads BEP 9 messages", async (t) => {
  await t.step("request", () => {
    assert.deepEqual(decodeMetadataMessage(bytes("d8:msg_typei0e5:piecei0ee")), {
      type: "request",
      piece: 0,
    });
  });
  await t.step("reject, keys unsorted", () => {
    assert.deepEqual(decodeMetadataMessage(bytes("d5:piecei3e8:msg_typei2ee")), {
      type: "reject",
      piece: 3,
    });
  });
  await t.step("data: full piece, view into the payload", () => {
    const head = bytes("d8:msg_typei1e5:piecei0e10:total_sizei16385ee");
    const piece = new Uint8Array(16384).fill(7);
    const payload = concat(head, piece);
    const message = decodeMetadataMessage(payload);
    assert.equal(message.type, "data");
    if (message.type !== "data") return;
    assert.equal(message.piece, 0);
    assert.equal(message.totalSize, 16385);
    assert.deepEqual(message.data, piece);
    assert.equal(message.data.buffer, payload.buffer);
  });
  await t.step("data: short last piece", () => {
    const payload = bytes("d8:msg_typei1e5:piecei1e10:total_sizei16385eeZ");
    const message = decodeMetadataMessage(payload, { metadataSize: 16385 });
    assert.deepEqual(message, { type: "data", piece: 1, totalSize: 16385, data: bytes("Z") });
  });
  await t.step("unknown keys are ignored", () => {
    assert.deepEqual(decodeMetadataMessage(bytes("d8:msg_typei0e5:piecei1e4:zzzzi1ee")), {
      type: "request",
      piece: 1,
    });
  });
  await t.step("unknown msg_type", () => {
    assert.deepEqual(decodeMetadataMessage(bytes("d8:msg_typei7ee")), {
      type: "unknown",
      msgType: 7,
    });
  });
});

Deno.test("decodeMetadataMessage() rejects malformed messages", async (t) => {
  const cases: [string, Uint8Array, { maxMetadataSize?: number; metadataSize?: number }?][] = [
    ["empty payload", bytes("")],
    ["garbage", bytes("\xff\x00garbage")],
    ["a list", bytes("li0ei0ee")],
    ["truncated dictionary", bytes("d8:msg_typei0e5:piecei0e")],
    ["missing msg_type", bytes("d5:piecei0ee")],
    ["msg_type as string", bytes("d8:msg_type1:05:piecei0ee")],
    ["missing piece", bytes("d8:msg_typei0ee")],
    ["piece as string", bytes("d8:msg_typei0e5:piece1:0e")],
    ["negative piece", bytes("d8:msg_typei0e5:piecei-1ee")],
    ["piece past metadata_size", bytes("d8:msg_typei2e5:piecei1ee"), { metadataSize: 16384 }],
    // 16 MiB / 16 KiB = 1024 pieces at most.
    ["piece past the cap", bytes("d8:msg_typei0e5:piecei1024ee")],
    ["request with trailing bytes", bytes("d8:msg_typei0e5:piecei0eeXX")],
    ["data without total_size", bytes("d8:msg_typei1e5:piecei0eeA")],
    ["data with total_size 0", bytes("d8:msg_typei1e5:piecei0e10:total_sizei0eeA")],
    ["data with negative total_size", bytes("d8:msg_typei1e5:piecei0e10:total_sizei-1ee")],
    [
      "data with oversized total_size",
      bytes("d8:msg_typei1e5:piecei0e10:total_sizei16777217eeA"),
    ],
    [
      "data above a smaller cap",
      bytes("d8:msg_typei1e5:piecei0e10:total_sizei200eeA"),
      { maxMetadataSize: 100 },
    ],
    [
      "data with huge total_size",
      bytes("d8:msg_typei1e5:piecei0e10:total_sizei99999999999999999999eeA"),
    ],
    [
      "data with total_size unlike metadata_size",
      bytes("d8:msg_typei1e5:piecei0e10:total_sizei2eeAB"),
      { metadataSize: 3 },
    ],
    ["data past the last piece", bytes("d8:msg_typei1e5:piecei1e10:total_sizei3eeABC")],
    ["data too short", bytes("d8:msg_typei1e5:piecei0e10:total_sizei3eeAB")],
    ["data too long", bytes("d8:msg_typei1e5:piecei0e10:total_sizei3eeABCD")],
    [
      "short non-last piece",
      concat(bytes("d8:msg_typei1e5:piecei0e10:total_sizei20000ee"), new Uint8Array(16383)),
    ],
  ];
  for (const [name, payload, options] of cases) {
    await t.step(name, () => {
      assert.throws(() => decodeMetadataMessage(payload, options), PeerProtocolError);
    });
  }
});

Deno.test("encodeMetadataMessage() and decodeMetadataMessage() round-trip", () => {
  const data = new Uint8Array(16384).map((_, i) => i);
  for (
    const message of [
      { type: "request", piece: 1023 },
      { type: "reject", piece: 0 },
      { type: "data", piece: 2, totalSize: 3 * 16384, data },
    ] as const
  ) {
    assert.deepEqual(decodeMetadataMessage(encodeMetadataMessage(message)), message);
  }
});

function fixtureInfo(size: number): { info: Uint8Array; infoHash: Uint8Array } {
  const info = new Uint8Array(size).map((_, i) => (i * 31 + 7) & 0xff);
  return { info, infoHash: sha1(info) };
}

function pieceOf(info: Uint8Array, piece: number): Uint8Array {
  return info.subarray(piece * 16384, (piece + 1) * 16384);
}

Deno.test("MetadataAssembler assembles and verifies the metadata", () => {
  const { info, infoHash } = fixtureInfo(40000); // 3 pieces: 16384, 16384, 7232
  const assembler = new MetadataAssembler<string>(infoHash, info.length);
  assert.equal(assembler.pieceCount, 3);
  assert.equal(assembler.size, 40000);

  // Requests go out in order, each piece to one peer only.
  assert.equal(assembler.nextRequest("a"), 0);
  assert.equal(assembler.nextRequest("b"), 1);
  assert.equal(assembler.nextRequest("a", new Set([2])), undefined); // a rejected piece 2
  assert.equal(assembler.nextRequest("b"), 2);
  assert.equal(assembler.nextRequest("c"), undefined);

  // b goes away: its pieces can be asked again.
  assembler.releasePeer("b");
  assert.equal(assembler.nextRequest("c"), 1);
  assert.equal(assembler.nextRequest("c"), 2);

  assert.deepEqual(assembler.receive(2, pieceOf(info, 2), "c"), { status: "incomplete" });
  assert.deepEqual(assembler.receive(0, pieceOf(info, 0), "a"), { status: "incomplete" });
  // A duplicate is ignored.
  assert.deepEqual(assembler.receive(0, pieceOf(info, 0), "c"), { status: "incomplete" });
  assert.equal(assembler.receivedCount, 2);
  assert.deepEqual(assembler.neededPieces, [1]);
  assert.equal(assembler.complete, false);

  const result = assembler.receive(1, pieceOf(info, 1), "c");
  assert.equal(result.status, "complete");
  assert.deepEqual(result.status === "complete" && result.info, info);
  assert.equal(assembler.complete, true);
  assert.equal(assembler.nextRequest("a"), undefined);
});

Deno.test("MetadataAssembler names the peers behind a mismatch and starts over", () => {
  const { info, infoHash } = fixtureInfo(20000); // 2 pieces
  const assembler = new MetadataAssembler<string>(infoHash, info.length);
  const bad = pieceOf(info, 1).slice();
  bad[0]! ^= 1;
  assembler.nextRequest("honest");
  assembler.nextRequest("liar");
  assert.deepEqual(assembler.receive(0, pieceOf(info, 0), "honest"), { status: "incomplete" });
  assert.deepEqual(assembler.receive(1, bad, "liar"), {
    status: "mismatch",
    peers: ["honest", "liar"],
    pieces: ["honest", "liar"],
  });
  // Everything is needed again and nothing is requested.
  assert.equal(assembler.receivedCount, 0);
  assert.deepEqual(assembler.neededPieces, [0, 1]);
  assert.equal(assembler.nextRequest("honest"), 0);
  assert.equal(assembler.nextRequest("honest"), 1);
  assembler.receive(0, pieceOf(info, 0), "honest");
  const result = assembler.receive(1, pieceOf(info, 1), "honest");
  assert.equal(result.status, "complete");
});

Deno.test("MetadataAssembler with a single lying peer names only it", () => {
  const { info, infoHash } = fixtureInfo(100);
  const assembler = new MetadataAssembler<number>(infoHash, info.length);
  assert.deepEqual(assembler.receive(0, new Uint8Array(100), 7), {
    status: "mismatch",
    peers: [7],
    pieces: [7],
  });
});

Deno.test("MetadataAssembler checks its input", async (t) => {
  const { infoHash } = fixtureInfo(100);
  await t.step("info hash length", () => {
    assert.throws(() => new MetadataAssembler(new Uint8Array(19), 100), TypeError);
  });
  await t.step("metadata size", () => {
    assert.throws(() => new MetadataAssembler(infoHash, 0), RangeError);
    assert.throws(() => new MetadataAssembler(infoHash, -5), RangeError);
    assert.throws(() => new MetadataAssembler(infoHash, 16 * 1024 * 1024 + 1), RangeError);
    assert.throws(
      () => new MetadataAssembler(infoHash, 1000, { maxMetadataSize: 999 }),
      RangeError,
    );
  });
  await t.step("piece index and length", () => {
    const assembler = new MetadataAssembler(infoHash, 20000);
    assert.throws(() => assembler.receive(2, new Uint8Array(0), "a"), PeerProtocolError);
    assert.throws(() => assembler.receive(-1, new Uint8Array(16384), "a"), PeerProtocolError);
    assert.throws(() => assembler.receive(0, new Uint8Array(100), "a"), PeerProtocolError);
    assert.throws(() => assembler.receive(1, new Uint8Array(16384), "a"), PeerProtocolError);
  });
});
