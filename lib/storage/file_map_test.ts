import assert from "node:assert/strict";
import { FileMap } from "./file_map.ts";

// Layout (torrent offsets):
//   file 0 "a"     [0, 10)
//   file 1 "empty" [10, 10)  zero-length
//   file 2 "b"     [10, 13)
//   file 3 "c"     [13, 30)
//   file 4 "tail"  [30, 30)  zero-length, last
const files = [
  { path: ["a"], length: 10 },
  { path: ["empty"], length: 0 },
  { path: ["b"], length: 3 },
  { path: ["c"], length: 17 },
  { path: ["tail"], length: 0 },
];

Deno.test("FileMap computes offsets and total length", () => {
  const map = new FileMap(files);
  assert.equal(map.totalLength, 30);
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => map.fileOffset(i)), [0, 10, 10, 13, 30]);
  assert.throws(() => map.fileOffset(5), RangeError);
  assert.throws(() => new FileMap([{ path: ["x"], length: -1 }]), RangeError);
});

Deno.test("FileMap.extents() splits ranges across files", async (t) => {
  const map = new FileMap(files);
  await t.step("inside one file", () => {
    assert.deepEqual(map.extents(2, 5), [{ fileIndex: 0, fileOffset: 2, length: 5 }]);
  });
  await t.step("spans three files, skipping a zero-length one", () => {
    assert.deepEqual(map.extents(8, 8), [
      { fileIndex: 0, fileOffset: 8, length: 2 },
      { fileIndex: 2, fileOffset: 0, length: 3 },
      { fileIndex: 3, fileOffset: 0, length: 3 },
    ]);
  });
  await t.step("starts exactly at a boundary", () => {
    assert.deepEqual(map.extents(10, 3), [{ fileIndex: 2, fileOffset: 0, length: 3 }]);
    assert.deepEqual(map.extents(13, 17), [{ fileIndex: 3, fileOffset: 0, length: 17 }]);
  });
  await t.step("whole torrent", () => {
    assert.deepEqual(map.extents(0, 30).map((e) => e.fileIndex), [0, 2, 3]);
  });
  await t.step("zero length", () => {
    assert.deepEqual(map.extents(30, 0), []);
  });
  await t.step("past the end", () => {
    assert.throws(() => map.extents(29, 2), RangeError);
    assert.throws(() => map.extents(31, 0), RangeError);
    assert.throws(() => map.extents(-1, 1), RangeError);
  });
});

Deno.test("FileMap.pieceExtents() handles the short last piece", () => {
  const map = new FileMap(files);
  assert.deepEqual(map.pieceExtents(0, 12), [
    { fileIndex: 0, fileOffset: 0, length: 10 },
    { fileIndex: 2, fileOffset: 0, length: 2 },
  ]);
  assert.deepEqual(map.pieceExtents(2, 12), [{ fileIndex: 3, fileOffset: 11, length: 6 }]);
  assert.throws(() => map.pieceExtents(3, 12), RangeError);
  assert.throws(() => map.pieceExtents(0, 0), RangeError);
});

Deno.test("FileMap.filesForPiece() includes zero-length files at boundaries", () => {
  const map = new FileMap(files);
  assert.deepEqual(map.filesForPiece(0, 12), [0, 1, 2]);
  assert.deepEqual(map.filesForPiece(1, 12), [2, 3]);
  assert.deepEqual(map.filesForPiece(2, 12), [3, 4]);
  // Piece 0 ends exactly where "empty" sits: it belongs to both neighbours.
  assert.deepEqual(map.filesForPiece(0, 10), [0, 1]);
  assert.deepEqual(map.filesForPiece(1, 10), [1, 2, 3]);
  const leading = new FileMap([{ path: ["z"], length: 0 }, { path: ["x"], length: 4 }]);
  assert.deepEqual(leading.filesForPiece(0, 4), [0, 1]);
});

Deno.test("FileMap handles many files with binary search", () => {
  const many = Array.from({ length: 10_000 }, (_, i) => ({ path: [`f${i}`], length: i % 3 }));
  const map = new FileMap(many);
  // Lengths cycle 0, 1, 2: offsets of file i = sum of (j % 3) for j < i.
  assert.equal(map.totalLength, 3333 * 3);
  const extents = map.extents(4, 3);
  // Bytes 4..6: file 5 covers [4, 6), file 6 is empty, file 7 covers [6, 7).
  assert.deepEqual(extents, [
    { fileIndex: 5, fileOffset: 0, length: 2 },
    { fileIndex: 7, fileOffset: 0, length: 1 },
  ]);
  assert.deepEqual(map.extents(9998, 1), [{ fileIndex: 9998, fileOffset: 1, length: 1 }]);
});
