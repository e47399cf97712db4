// Property-based fuzz tests for lib/bencode: hostile bytes never throw anything but
// BencodeSyntaxError, decoding is bounded in time and depth, and encode/decode round-trip.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BencodeSyntaxError,
  type BencodeValue,
  decode,
  type DecodeOptions,
  decodePrefix,
  encode,
  rawDictValue,
} from "../../lib/bencode/mod.ts";
import { assertProperty, expectOnly, MAX_MS_PER_INPUT, thrownBy, withinTime } from "./_config.ts";
import {
  bencodeValueArb,
  bytes,
  byteSoupArb,
  comparable,
  concatBytes,
  dictArb,
  loadTorrentFixtures,
  mutatedArb,
} from "./_arbitraries.ts";

const fixtures = loadTorrentFixtures();
const allFixtures = [...fixtures.valid, ...fixtures.invalid];

const decodeOptionsArb: fc.Arbitrary<DecodeOptions> = fc.record(
  { maxDepth: fc.integer({ min: 0, max: 300 }), allowUnsortedKeys: fc.boolean() },
  { requiredKeys: [] },
);

/**
 * Decodes hostile input and checks the contract: only BencodeSyntaxError, bounded time, and a
 * strict decode only accepts the canonical encoding (so re-encoding gives the same bytes).
 */
function checkHostile(input: Uint8Array, options: DecodeOptions): void {
  let value: BencodeValue | undefined;
  const error = thrownBy(() => {
    value = withinTime(() => decode(input, options), MAX_MS_PER_INPUT, "decode()");
  });
  expectOnly(error, [BencodeSyntaxError]);
  if (error instanceof BencodeSyntaxError) {
    assert.ok(
      Number.isInteger(error.offset) && error.offset >= 0 && error.offset <= input.length,
      `offset ${error.offset} is outside the ${input.length}-byte input`,
    );
    return;
  }
  if (!options.allowUnsortedKeys) {
    assert.equal(
      encode(value!).toHex(),
      input.toHex(),
      "strict decode accepted a non-canonical input",
    );
  }
}

Deno.test("fuzz: decode() throws only BencodeSyntaxError on random bytes", async (t) => {
  await assertProperty(
    t,
    fc.property(fc.uint8Array({ maxLength: 256 }), decodeOptionsArb, checkHostile),
    { runs: 8000 },
  );
});

Deno.test("fuzz: decode() throws only BencodeSyntaxError on bencode-like byte soup", async (t) => {
  await assertProperty(t, fc.property(byteSoupArb, decodeOptionsArb, checkHostile), {
    runs: 12000,
  });
});

Deno.test("fuzz: decode() throws only BencodeSyntaxError on mutated torrents", async (t) => {
  await assertProperty(t, fc.property(mutatedArb(allFixtures), decodeOptionsArb, checkHostile), {
    runs: 6000,
  });
});

Deno.test("fuzz: decode() throws only BencodeSyntaxError on mutated encodings", async (t) => {
  const mutatedEncodingArb = bencodeValueArb.chain((value) => mutatedArb([encode(value)], 3));
  await assertProperty(t, fc.property(mutatedEncodingArb, decodeOptionsArb, checkHostile), {
    runs: 8000,
  });
});

Deno.test("fuzz: decode(encode(x)) deep-equals x for generated values", async (t) => {
  await assertProperty(
    t,
    fc.property(bencodeValueArb, (value) => {
      assert.deepStrictEqual(comparable(decode(encode(value))), comparable(value));
    }),
    { runs: 6000 },
  );
});

Deno.test("fuzz: encode(decode(b)) is byte-exact for canonical b = encode(x)", async (t) => {
  await assertProperty(
    t,
    fc.property(bencodeValueArb, fc.boolean(), (value, lenient) => {
      const canonical = encode(value);
      const again = encode(decode(canonical, { allowUnsortedKeys: lenient }));
      assert.equal(again.toHex(), canonical.toHex());
    }),
    { runs: 6000 },
  );
});

Deno.test("fuzz: decodePrefix() reads one value and stops before trailing bytes", async (t) => {
  await assertProperty(
    t,
    fc.property(bencodeValueArb, fc.uint8Array({ maxLength: 16 }), (value, tail) => {
      const encoded = encode(value);
      const { value: decoded, length } = decodePrefix(concatBytes([encoded, tail]));
      assert.equal(length, encoded.length);
      assert.deepStrictEqual(comparable(decoded), comparable(value));
      if (tail.length > 0) {
        assert.throws(() => decode(concatBytes([encoded, tail])), BencodeSyntaxError);
      }
    }),
    { runs: 4000 },
  );
});

Deno.test("fuzz: rawDictValue() returns the exact encoding of each top-level value", async (t) => {
  await assertProperty(
    t,
    fc.property(dictArb(bencodeValueArb), (dict) => {
      const encoded = encode(dict);
      for (const key of Object.keys(dict)) {
        assert.equal(rawDictValue(encoded, key)?.toHex(), encode(dict[key]!).toHex());
      }
      assert.equal(rawDictValue(encoded, "\u0000missing\u0000"), undefined);
    }),
    { runs: 4000 },
  );
});

Deno.test("fuzz: decode() accepts nesting up to maxDepth and rejects deeper", async (t) => {
  await assertProperty(
    t,
    fc.property(
      fc.integer({ min: 0, max: 600 }),
      fc.integer({ min: 0, max: 600 }),
      fc.boolean(),
      (depth, maxDepth, dicts) => {
        const open = dicts ? "d1:a" : "l";
        const input = bytes(open.repeat(depth) + "i0e" + "e".repeat(depth));
        const error = thrownBy(() => decode(input, { maxDepth }));
        expectOnly(error, [BencodeSyntaxError]);
        assert.equal(
          error === undefined,
          depth <= maxDepth,
          `depth ${depth}, maxDepth ${maxDepth}`,
        );
      },
    ),
    { runs: 1200 },
  );
});

Deno.test("fuzz: encode() throws only TypeError on arbitrary JavaScript values", async (t) => {
  await assertProperty(
    t,
    fc.property(fc.anything({ withMap: true, withBigInt: true, withTypedArray: true }), (value) => {
      let encoded: Uint8Array | undefined;
      const error = thrownBy(() => {
        encoded = encode(value as Parameters<typeof encode>[0]);
      });
      expectOnly(error, [TypeError]);
      // Whatever encode() writes must be bencode that decode() reads back.
      if (encoded !== undefined) {
        const decodeError = thrownBy(() => decode(encoded!, { maxDepth: 1024 }));
        expectOnly(decodeError, []);
      }
    }),
    { runs: 6000 },
  );
});

Deno.test("fuzz: decode() fails fast on hostile sizes (10^6-deep nesting, huge lengths)", async (t) => {
  const inputs: [string, Uint8Array][] = [
    ["10^6 open lists", bytes("l".repeat(1_000_000))],
    ["10^6 nested lists, closed", bytes("l".repeat(1_000_000) + "e".repeat(1_000_000))],
    ["10^6 nested dictionaries", bytes("d1:a".repeat(1_000_000))],
    ["a 10^20-byte string", bytes("100000000000000000000:abc")],
    ["a 10^6-digit integer", bytes("i" + "9".repeat(1_000_000) + "e")],
    ["a 10^6-digit length", bytes("9".repeat(1_000_000) + ":")],
  ];
  for (const [name, input] of inputs) {
    await t.step(name, () => {
      const before = Deno.memoryUsage().rss;
      const error = thrownBy(() => withinTime(() => decode(input), 1000, name));
      assert.ok(error instanceof BencodeSyntaxError, `expected BencodeSyntaxError, got ${error}`);
      const grown = Deno.memoryUsage().rss - before;
      assert.ok(grown < 64 * 1024 * 1024, `rss grew by ${grown} bytes`);
    });
  }
});

Deno.test("fuzz: encode() output decodes for dictionaries with any string keys", async (t) => {
  const keyWithSurrogatesArb = fc.string({
    unit: fc.constantFrom("a", "é", "\uD800", "\uDBFF", "\uDC00", "\uDFFF", "\uD83D\uDE00"),
    maxLength: 3,
  });
  await assertProperty(
    t,
    fc.property(fc.uniqueArray(keyWithSurrogatesArb, { maxLength: 6 }), (keys) => {
      const dict = Object.fromEntries(keys.map((key, i) => [key, i]));
      // Keys with lone surrogates cannot be written faithfully as UTF-8: encode() refuses them
      // with a TypeError instead of writing U+FFFD (which could make two keys collide).
      if (keys.some((key) => !key.isWellFormed())) {
        assert.throws(() => encode(dict), TypeError);
        return;
      }
      const decoded = decode(encode(dict));
      assert.equal(Object.keys(decoded).length, keys.length);
    }),
    { runs: 4000 },
  );
});
