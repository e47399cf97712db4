import assert from "node:assert/strict";
import { decode, decodePrefix, rawDictValue } from "./decode.ts";
import { BencodeSyntaxError } from "./errors.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("decode() reads every value kind", async (t) => {
  await t.step("byte string", () => assert.deepEqual(decode(text("5:hello")), text("hello")));
  await t.step("empty string", () => assert.deepEqual(decode(text("0:")), new Uint8Array()));
  await t.step("integer", () => assert.equal(decode(text("i4294967300e")), 4294967300));
  await t.step("negative", () => assert.equal(decode(text("i-52e")), -52));
  await t.step("zero", () => assert.equal(decode(text("i0e")), 0));
  await t.step("list", () => assert.deepEqual(decode(text("l5:helloi52ee")), [text("hello"), 52]));
  await t.step("nested list", () => assert.deepEqual(decode(text("lli4eei5ee")), [[4], 5]));
  await t.step("dictionary", () => {
    const dict = decode(text("d3:foo3:bar5:helloi52ee"));
    assert.deepEqual({ ...(dict as object) }, { foo: text("bar"), hello: 52 });
    assert.equal(Object.getPrototypeOf(dict), null);
  });
});

Deno.test("decode() keeps integers beyond 2^53 exact as bigint", () => {
  assert.equal(decode(text("i9007199254740993e")), 9007199254740993n);
  assert.equal(decode(text("i-18446744073709551616e")), -18446744073709551616n);
  // 16 digits that still fit a safe integer stay a number.
  assert.equal(decode(text("i1000000000000000e")), 1000000000000000);
});

Deno.test("decode() returns views into the input, not copies", () => {
  const input = text("3:abc");
  const value = decode(input) as Uint8Array;
  assert.equal(value.buffer, input.buffer);
  assert.equal(value.byteOffset, 2);
});

Deno.test("decode() rejects malformed input with the offset of the problem", async (t) => {
  const cases: [string, string, number][] = [
    ["i03e", "leading zero", 0],
    ["i-0e", "negative zero", 0],
    ["i-e", "no digits", 0],
    ["ie", "no digits", 0],
    ["i12", "unterminated integer", 0],
    ["i1.5e", "unexpected byte 0x2e", 2],
    ["i5ei6e", "trailing bytes", 3],
    ["03:abc", "leading zero in length", 0],
    ["5:abc", "length 5 exceeds the 3 bytes left", 0],
    ["99999999999999999999:x", "length exceeds the input", 0],
    ["3abc", "unexpected byte 0x61 in length", 1],
    ["l1:a", "unterminated list", 0],
    ["d1:a", "unexpected end of input", 4],
    ["d1:ai1e", "unterminated dictionary", 0],
    ["di1ei2ee", "key is not a byte string", 1],
    ["d1:bi1e1:ai2ee", "keys are not sorted", 7],
    ["d1:ai1e1:ai2ee", "duplicate key", 7],
    ["d1:ae", "key has no value", 4],
    ["x", "unexpected byte 0x78", 0],
    ["", "unexpected end of input", 0],
  ];
  for (const [input, message, offset] of cases) {
    await t.step(JSON.stringify(input), () => {
      assert.throws(() => decode(text(input)), (caught) => {
        assert.ok(caught instanceof BencodeSyntaxError);
        assert.ok(caught.message.includes(message), caught.message);
        assert.equal(caught.offset, offset);
        return true;
      });
    });
  }
});

Deno.test("decode() rejects dictionary keys that are not UTF-8", () => {
  const input = new Uint8Array([...text("d1:"), 0xff, ...text("i1ee")]);
  assert.throws(() => decode(input), /key is not valid UTF-8 at offset 1/);
});

Deno.test("decode() caps nesting depth", () => {
  const deep = text("l".repeat(300) + "e".repeat(300));
  assert.throws(() => decode(deep), /nesting deeper than 256/);
  assert.deepEqual(decode(text("l".repeat(3) + "e".repeat(3)), { maxDepth: 3 }), [[[]]]);
  assert.throws(() => decode(text("llllee" + "ee"), { maxDepth: 3 }), BencodeSyntaxError);
  // A hostile, very deep input fails fast instead of overflowing the stack.
  assert.throws(() => decode(text("l".repeat(1_000_000))), BencodeSyntaxError);
});

Deno.test("decode() rejects integers with absurdly many digits", () => {
  assert.throws(() => decode(text(`i${"9".repeat(2000)}e`)), /more than 1024 digits/);
});

Deno.test("decode() accepts unsorted keys only when asked, never duplicates", () => {
  const unsorted = text("d1:bi1e1:ai2ee");
  const dict = decode(unsorted, { allowUnsortedKeys: true }) as Record<string, number>;
  assert.equal(dict.a, 2);
  assert.throws(
    () => decode(text("d1:bi1e1:ai2e1:bi3ee"), { allowUnsortedKeys: true }),
    /duplicate key/,
  );
});

Deno.test("decode() treats __proto__ as an ordinary key", () => {
  const dict = decode(text("d9:__proto__i1ee")) as Record<string, unknown>;
  assert.equal(Object.hasOwn(dict, "__proto__"), true);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("decodePrefix() reports the length of the leading value", () => {
  const { value, length } = decodePrefix(text("d8:msg_typei1e5:piecei0eeDATA"));
  assert.equal((value as Record<string, number>).piece, 0);
  assert.equal(length, 25);
});

Deno.test("rawDictValue() returns the exact original bytes", async (t) => {
  await t.step("info value", () => {
    const input = text("d8:announce3:url4:infod6:lengthi3e4:name1:xee");
    assert.equal(new TextDecoder().decode(rawDictValue(input, "info")), "d6:lengthi3e4:name1:xe");
  });
  await t.step("nested keys named info are not top-level", () => {
    assert.equal(rawDictValue(text("d1:ad4:infoi1eee"), "info"), undefined);
  });
  await t.step("not a dictionary", () => {
    assert.throws(() => rawDictValue(text("li1ee"), "info"), TypeError);
  });
  await t.step("invalid input", () => {
    assert.throws(() => rawDictValue(text("d4:infoi1e"), "info"), BencodeSyntaxError);
  });
});
