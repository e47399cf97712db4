import assert from "node:assert/strict";
import { decode } from "./decode.ts";
import { encode } from "./encode.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("encode() writes each kind canonically", async (t) => {
  await t.step("integers", () => {
    assert.equal(str(encode(0)), "i0e");
    assert.equal(str(encode(-52)), "i-52e");
    assert.equal(str(encode(2n ** 64n)), "i18446744073709551616e");
  });
  await t.step("strings are UTF-8 with a byte length", () => {
    assert.equal(str(encode("héllo")), "6:héllo");
    assert.deepEqual(encode(new Uint8Array([0, 255])), new Uint8Array([0x32, 0x3a, 0, 255]));
  });
  await t.step("lists", () => assert.equal(str(encode(["a", [1]])), "l1:ali1eee"));
  await t.step("dictionary keys sorted by raw bytes", () => {
    // "Z" (0x5a) sorts before "a" (0x61); "é" (0xc3 0xa9) after both.
    assert.equal(str(encode({ a: 1, "é": 2, Z: 3 })), "d1:Zi3e1:ai1e2:éi2ee");
  });
  await t.step("Map and undefined entries", () => {
    assert.equal(str(encode(new Map([["b", 1], ["a", undefined]]))), "d1:bi1ee");
    assert.equal(str(encode({ x: undefined, y: "z" })), "d1:y1:ze");
  });
});

Deno.test("encode() rejects values bencode cannot hold", () => {
  assert.throws(() => encode(1.5), /1.5 is not a safe integer/);
  assert.throws(() => encode(2 ** 60), TypeError);
  assert.throws(() => encode(true as unknown as number), TypeError);
  assert.throws(() => encode(null as unknown as number), TypeError);
});

Deno.test("decode(encode(x)) equals x and canonical input round-trips byte-exactly", () => {
  const inputs = [
    "d3:cow3:moo4:spaml1:a1:bee",
    "d4:infod6:lengthi3e4:name1:x12:piece lengthi16384e6:pieces0:ee",
    "li-1ei0ei9007199254740993e0:le" + "dee",
  ];
  for (const input of inputs) {
    const bytes = text(input);
    assert.deepEqual(encode(decode(bytes)), bytes);
  }
});
