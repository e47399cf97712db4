import assert from "node:assert/strict";
import { blockRequests, PieceAssembler, pieceLengthAt } from "./assembler.ts";
import { PieceHashMismatchError, sha1 } from "./verify.ts";

Deno.test("blockRequests() splits pieces into 16 KiB blocks", () => {
  assert.deepEqual(blockRequests(20000), [
    { begin: 0, length: 16384 },
    { begin: 16384, length: 3616 },
  ]);
  assert.deepEqual(blockRequests(32768).map((r) => r.length), [16384, 16384]);
  assert.deepEqual(blockRequests(1), [{ begin: 0, length: 1 }]);
  assert.deepEqual(blockRequests(0), []);
  assert.deepEqual(blockRequests(10, 4), [
    { begin: 0, length: 4 },
    { begin: 4, length: 4 },
    { begin: 8, length: 2 },
  ]);
  assert.throws(() => blockRequests(-1), RangeError);
  assert.throws(() => blockRequests(10, 0), RangeError);
});

Deno.test("pieceLengthAt() makes only the last piece short", () => {
  const geometry = { pieceLength: 16384, totalLength: 40000 };
  assert.equal(pieceLengthAt(0, geometry), 16384);
  assert.equal(pieceLengthAt(1, geometry), 16384);
  assert.equal(pieceLengthAt(2, geometry), 7232);
  assert.throws(() => pieceLengthAt(3, geometry), RangeError);
  assert.throws(() => pieceLengthAt(-1, geometry), RangeError);
  assert.equal(pieceLengthAt(1, { pieceLength: 8, totalLength: 16 }), 8);
  assert.throws(() => pieceLengthAt(0, { pieceLength: 0, totalLength: 16 }), RangeError);
});

Deno.test("PieceAssembler assembles blocks in any order", async () => {
  const piece = new PieceAssembler(5, 10, { blockSize: 4 });
  assert.equal(piece.isComplete, false);
  assert.equal(piece.addBlock(8, new Uint8Array([9, 10])), true);
  assert.equal(piece.addBlock(0, new Uint8Array([1, 2, 3, 4])), true);
  assert.deepEqual(piece.missingBlocks(), [{ begin: 4, length: 4 }]);
  await assert.rejects(() => piece.verify(new Uint8Array(20)), RangeError);
  assert.equal(piece.addBlock(4, new Uint8Array([5, 6, 7, 8])), true);
  assert.equal(piece.isComplete, true);
  const expected = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(piece.bytes, expected);
  const verified = await piece.verify(await sha1(expected));
  assert.equal(verified, piece.bytes); // no copy on the way out
});

Deno.test("PieceAssembler copies each block once and ignores duplicates", () => {
  const piece = new PieceAssembler(0, 8, { blockSize: 4 });
  const block = new Uint8Array([1, 1, 1, 1]);
  piece.addBlock(0, block);
  block.fill(7); // the caller may reuse its buffer
  assert.equal(piece.addBlock(0, new Uint8Array([2, 2, 2, 2])), false);
  assert.deepEqual(piece.bytes.subarray(0, 4), new Uint8Array([1, 1, 1, 1]));
  assert.equal(piece.receivedBlocks, 1);
  assert.equal(piece.hasBlock(0), true);
  assert.equal(piece.hasBlock(4), false);
});

Deno.test("PieceAssembler rejects bad blocks", async (t) => {
  const piece = new PieceAssembler(0, 20000);
  await t.step("misaligned", () => {
    assert.throws(() => piece.addBlock(1, new Uint8Array(16384)), RangeError);
  });
  await t.step("out of range", () => {
    assert.throws(() => piece.addBlock(20000, new Uint8Array(1)), RangeError);
    assert.throws(() => piece.addBlock(-16384, new Uint8Array(16384)), RangeError);
    assert.throws(() => piece.addBlock(32768, new Uint8Array(16384)), RangeError);
  });
  await t.step("wrong length", () => {
    assert.throws(() => piece.addBlock(0, new Uint8Array(16383)), RangeError);
    assert.throws(() => piece.addBlock(16384, new Uint8Array(16384)), RangeError);
    assert.throws(() => piece.addBlock(16384, new Uint8Array(3615)), RangeError);
  });
  assert.equal(piece.receivedBlocks, 0);
  assert.throws(() => new PieceAssembler(0, 0), RangeError);
});

Deno.test("PieceAssembler.verify() throws PieceHashMismatchError on a bad piece", async () => {
  const piece = new PieceAssembler(7, 3);
  piece.addBlock(0, new Uint8Array([1, 2, 3]));
  const wrong = await sha1(new Uint8Array([1, 2, 4]));
  await assert.rejects(() => piece.verify(wrong), PieceHashMismatchError);
  try {
    await piece.verify(wrong);
    assert.fail("expected a mismatch");
  } catch (e) {
    assert.ok(e instanceof PieceHashMismatchError);
    assert.equal(e.pieceIndex, 7);
  }
  piece.reset();
  assert.equal(piece.isComplete, false);
  assert.deepEqual(piece.missingBlocks(), [{ begin: 0, length: 3 }]);
});
