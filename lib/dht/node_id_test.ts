import assert from "node:assert/strict";
import {
  commonPrefixLength,
  compareDistance,
  compareIds,
  idsEqual,
  idWithPrefix,
  randomNodeId,
  xorDistance,
} from "./node_id.ts";

function id(...head: number[]): Uint8Array {
  const out = new Uint8Array(20);
  out.set(head);
  return out;
}

Deno.test("randomNodeId() makes distinct 20-byte ids", () => {
  const a = randomNodeId();
  const b = randomNodeId();
  assert.equal(a.length, 20);
  assert.equal(idsEqual(a, b), false);
});

Deno.test("xorDistance() and compareDistance() order ids by XOR metric", () => {
  assert.deepEqual(xorDistance(id(0xf0, 0x0f), id(0x0f, 0x0f)), id(0xff, 0x00));
  assert.throws(() => xorDistance(new Uint8Array(20), new Uint8Array(19)), TypeError);
  const target = id(0x80);
  // 0x81 differs in the last bit of byte 0: closer than 0x00 which differs in the first.
  assert.ok(compareDistance(target, id(0x81), id(0x00)) < 0);
  assert.ok(compareDistance(target, id(0x00), id(0x81)) > 0);
  assert.equal(compareDistance(target, id(0x12), id(0x12)), 0);
  const sorted = [id(0x00), id(0xff), id(0x80, 1), id(0x80)].sort((a, b) =>
    compareDistance(target, a, b)
  );
  assert.deepEqual(sorted, [id(0x80), id(0x80, 1), id(0xff), id(0x00)]);
});

Deno.test("compareIds() compares as big-endian integers", () => {
  assert.ok(compareIds(id(1), id(0, 255)) > 0);
  assert.equal(compareIds(id(7, 7), id(7, 7)), 0);
});

Deno.test("commonPrefixLength() counts shared leading bits", () => {
  assert.equal(commonPrefixLength(id(0x80), id(0x00)), 0);
  assert.equal(commonPrefixLength(id(0x00), id(0x40)), 1);
  assert.equal(commonPrefixLength(id(0x00), id(0x01)), 7);
  assert.equal(commonPrefixLength(id(0x00, 0x00), id(0x00, 0x80)), 8);
  assert.equal(commonPrefixLength(id(5, 6, 7), id(5, 6, 7)), 160);
});

Deno.test("idWithPrefix() makes ids inside a bucket's range", () => {
  const own = randomNodeId();
  for (let prefix = 0; prefix < 160; prefix += 7) {
    assert.equal(commonPrefixLength(own, idWithPrefix(own, prefix)), prefix);
    assert.ok(commonPrefixLength(own, idWithPrefix(own, prefix, { exact: false })) >= prefix);
  }
  assert.deepEqual(idWithPrefix(own, 160), own);
  assert.throws(() => idWithPrefix(own, 161), RangeError);
});
