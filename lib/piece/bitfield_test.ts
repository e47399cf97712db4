import assert from "node:assert/strict";
import { Bitfield } from "./bitfield.ts";

Deno.test("Bitfield uses BEP 3 bit order", () => {
  const bits = new Bitfield(12);
  bits.set(0);
  bits.set(7);
  bits.set(8);
  bits.set(11);
  assert.deepEqual(
    bits.toBytes(),
    new Uint8Array([
      0b1000_0001, // pieces 0 and 7
      0b1001_0000, // pieces 8 and 11, spare bits zero
    ]),
  );
  assert.deepEqual([...bits], [0, 7, 8, 11]);
});

Deno.test("Bitfield keeps count incrementally", () => {
  const bits = new Bitfield(9);
  assert.equal(bits.count, 0);
  assert.equal(bits.set(3), true);
  assert.equal(bits.set(3), false);
  assert.equal(bits.count, 1);
  assert.equal(bits.clear(4), false);
  assert.equal(bits.clear(3), true);
  assert.equal(bits.count, 0);
  assert.equal(bits.has(3), false);
});

Deno.test("Bitfield.setAll() leaves spare bits clear", () => {
  const bits = new Bitfield(10);
  bits.setAll();
  assert.equal(bits.count, 10);
  assert.equal(bits.isComplete, true);
  assert.deepEqual(bits.toBytes(), new Uint8Array([0xff, 0b1100_0000]));
  bits.clearAll();
  assert.equal(bits.count, 0);
  const exact = new Bitfield(16);
  exact.setAll();
  assert.deepEqual(exact.toBytes(), new Uint8Array([0xff, 0xff]));
  const empty = new Bitfield(0);
  empty.setAll();
  assert.equal(empty.isComplete, true);
  assert.deepEqual(empty.toBytes(), new Uint8Array(0));
});

Deno.test("Bitfield.fromBytes() validates length and spare bits", async (t) => {
  await t.step("accepts valid bytes and counts bits", () => {
    const bits = Bitfield.fromBytes(new Uint8Array([0xf0, 0x80]), 9);
    assert.equal(bits.count, 5);
    assert.deepEqual([...bits], [0, 1, 2, 3, 8]);
  });
  await t.step("copies its input", () => {
    const input = new Uint8Array([0x80]);
    const bits = Bitfield.fromBytes(input, 1);
    input[0] = 0;
    assert.equal(bits.has(0), true);
  });
  await t.step("rejects too few or too many bytes", () => {
    assert.throws(() => Bitfield.fromBytes(new Uint8Array(1), 9), RangeError);
    assert.throws(() => Bitfield.fromBytes(new Uint8Array(3), 9), RangeError);
  });
  await t.step("rejects spare bits", () => {
    assert.throws(() => Bitfield.fromBytes(new Uint8Array([0xff, 0x40]), 9), RangeError);
    assert.throws(() => Bitfield.fromBytes(new Uint8Array([0x01]), 7), RangeError);
    assert.equal(Bitfield.fromBytes(new Uint8Array([0xfe]), 7).count, 7);
  });
});

Deno.test("Bitfield bounds checks throw RangeError", () => {
  const bits = new Bitfield(8);
  assert.throws(() => bits.has(8), RangeError);
  assert.throws(() => bits.set(-1), RangeError);
  assert.throws(() => bits.clear(1.5), RangeError);
  assert.throws(() => new Bitfield(-1), RangeError);
});

Deno.test("Bitfield.toBytes() returns a copy", () => {
  const bits = new Bitfield(8);
  bits.toBytes()[0] = 0xff;
  assert.equal(bits.count, 0);
  assert.equal(bits.has(0), false);
});
