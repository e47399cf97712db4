/**
 * Generators and helpers shared by the fuzz tests: bencode values, bencode-like byte soup,
 * byte-level mutations of real inputs, and a structural comparison for decoded values.
 *
 * @module
 */

import fc from "fast-check";
import type { BencodeDict, BencodeValue } from "../../lib/bencode/mod.ts";

const utf8 = new TextEncoder();

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Bytes of an ASCII/UTF-8 string. */
export function bytes(text: string): Uint8Array {
  return utf8.encode(text);
}

/**
 * Strings that have broken parsers before: a byte-order mark (stripped by default UTF-8
 * decoders), prototype keys, separators, case-mapping oddities and control characters.
 */
export const TRICKY_STRINGS: readonly string[] = [
  "",
  "\uFEFF",
  "\uFEFFinfo",
  "__proto__",
  "constructor",
  "toString",
  "info",
  "a",
  "b",
  "\0",
  "\u0085",
  "\u202E",
  "\uFFFD",
  "ß",
  "ı",
  "ſ",
  "ﬀ",
  "é",
  "😀",
];

/** Dictionary keys: short text, any code points (well-formed), and the tricky strings. */
export const keyArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.string({ unit: "binary", maxLength: 4 }),
  fc.constantFrom(...TRICKY_STRINGS),
);

/** Integers as `decode` returns them: `number` when safe, otherwise `bigint`. */
export const bencodeIntegerArb: fc.Arbitrary<number | bigint> = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }),
  fc.maxSafeInteger(),
  fc.constantFrom(0, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 31, 2 ** 32),
  fc.bigInt({ min: -(1n << 200n), max: 1n << 200n }).map(normalizeInteger),
  fc.constantFrom(2n ** 53n, -(2n ** 53n), 2n ** 64n, 10n ** 15n, 10n ** 16n).map(
    normalizeInteger,
  ),
);

/** Maps a bigint to a number when it is a safe integer, as `decode` does. */
export function normalizeInteger(value: bigint): number | bigint {
  const asNumber = Number(value);
  return Number.isSafeInteger(asNumber) ? asNumber : value;
}

/** Byte strings: arbitrary bytes or UTF-8 text. */
export const byteStringArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 32 }),
  fc.string({ maxLength: 12 }).map(bytes),
);

/** Builds a null-prototype dictionary, as `decode` returns. */
export function makeDict(entries: Iterable<readonly [string, BencodeValue]>): BencodeDict {
  const dict: BencodeDict = Object.create(null);
  for (const [key, value] of entries) dict[key] = value;
  return dict;
}

/** Dictionary arbitrary from a value arbitrary (unique keys, null prototype). */
export function dictArb(
  valueArb: fc.Arbitrary<BencodeValue>,
  maxKeys = 5,
): fc.Arbitrary<BencodeDict> {
  return fc.uniqueArray(fc.tuple(keyArb, valueArb), {
    maxLength: maxKeys,
    selector: ([key]) => key,
  }).map(makeDict);
}

/** Any bencode value, nested a few levels, in the exact shape `decode` produces. */
export const bencodeValueArb: fc.Arbitrary<BencodeValue> = fc.letrec<{
  value: BencodeValue;
  list: BencodeValue[];
  dict: BencodeDict;
}>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    bencodeIntegerArb,
    byteStringArb,
    tie("list"),
    tie("dict"),
  ),
  list: fc.array(tie("value"), { maxLength: 5 }),
  dict: fc.uniqueArray(fc.tuple(keyArb, tie("value")), {
    maxLength: 5,
    selector: ([key]) => key,
  }).map(makeDict),
})).value;

/**
 * A structural form of a bencode value for `deepStrictEqual`: tags each kind, keeps number
 * versus bigint apart, renders bytes as hex and records whether dictionaries have a null
 * prototype (the decoder's contract).
 */
export function comparable(value: unknown): unknown {
  if (typeof value === "number") return ["int", value];
  if (typeof value === "bigint") return ["bigint", value.toString()];
  if (value instanceof Uint8Array) return ["bytes", value.toHex()];
  if (Array.isArray(value)) return ["list", ...value.map(comparable)];
  if (typeof value === "object" && value !== null) {
    const keys = Object.keys(value).sort();
    return [
      "dict",
      Object.getPrototypeOf(value) === null ? "null-prototype" : "object-prototype",
      ...keys.map((key) => [key, comparable((value as Record<string, unknown>)[key])]),
    ];
  }
  return ["other", typeof value, String(value)];
}

/** Single bytes and short tokens from which bencode is made, to reach deep parser states. */
const TOKENS: readonly Uint8Array[] = [
  "i",
  "e",
  "l",
  "d",
  ":",
  "-",
  "0",
  "1",
  "9",
  "1:",
  "2:",
  "4:",
  "i0e",
  "i-0e",
  "i01e",
  "0:",
  "00:",
  "le",
  "de",
  "1:a",
  "1:b",
  "4:info",
  "99999999999999999999:",
  "i99999999999999999999999e",
].map(bytes).concat([new Uint8Array([0xef, 0xbb, 0xbf]), new Uint8Array([0xff])]);

/** Bencode-like byte soup: tokens, digits and random bytes glued together. */
export const byteSoupArb: fc.Arbitrary<Uint8Array> = fc.array(
  fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...TOKENS) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 4 }) },
    { weight: 1, arbitrary: fc.nat({ max: 40 }).map((n) => bytes(`${n}:`)) },
  ),
  { maxLength: 60 },
).map(concatBytes);

/** One byte-level edit of an input. Positions are reduced modulo the input length. */
export type Mutation =
  | { op: "set"; at: number; byte: number }
  | { op: "insert"; at: number; bytes: Uint8Array }
  | { op: "delete"; at: number; count: number }
  | { op: "truncate"; at: number }
  | { op: "copy"; from: number; count: number; to: number }
  | { op: "number"; at: number; text: string };

/** Mutations weighted towards the ones that hit bencode structure. */
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("set" as const), at: fc.nat(), byte: fc.nat({ max: 255 }) }),
  fc.record({
    op: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.oneof(fc.constantFrom(...TOKENS), fc.uint8Array({ minLength: 1, maxLength: 8 })),
  }),
  fc.record({
    op: fc.constant("delete" as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 8 }),
  }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    op: fc.constant("copy" as const),
    from: fc.nat(),
    count: fc.integer({ min: 1, max: 64 }),
    to: fc.nat(),
  }),
  fc.record({
    op: fc.constant("number" as const),
    at: fc.nat(),
    text: fc.oneof(
      fc.constantFrom("0", "00", "01", "-0", "-1", "20", "2147483648", "4294967296"),
      fc.constantFrom("9007199254740993", "99999999999999999999999", ""),
      fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }).map(String),
    ),
  }),
);

/** Applies mutations in order; each works on the result of the previous one. */
export function applyMutations(input: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out = input;
  for (const m of mutations) out = applyMutation(out, m);
  return out;
}

function applyMutation(input: Uint8Array, m: Mutation): Uint8Array {
  const n = input.length;
  if (n === 0) return m.op === "insert" ? m.bytes.slice() : input;
  switch (m.op) {
    case "set": {
      const out = input.slice();
      out[m.at % n] = m.byte;
      return out;
    }
    case "insert": {
      const at = m.at % (n + 1);
      return concatBytes([input.subarray(0, at), m.bytes, input.subarray(at)]);
    }
    case "delete": {
      const at = m.at % n;
      return concatBytes([input.subarray(0, at), input.subarray(at + m.count)]);
    }
    case "truncate":
      return input.slice(0, m.at % n);
    case "copy": {
      const from = m.from % n;
      const to = m.to % (n + 1);
      return concatBytes([
        input.subarray(0, to),
        input.subarray(from, from + m.count),
        input.subarray(to),
      ]);
    }
    case "number": {
      // Replace the run of ASCII digits at or after the position (a length or an integer).
      let start = m.at % n;
      while (start < n && !isDigit(input[start]!)) start++;
      if (start === n) return input;
      while (start > 0 && isDigit(input[start - 1]!)) start--;
      let end = start;
      while (end < n && isDigit(input[end]!)) end++;
      return concatBytes([input.subarray(0, start), bytes(m.text), input.subarray(end)]);
    }
  }
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

/** An input and up to `max` mutations of it. */
export function mutatedArb(
  inputs: readonly Uint8Array[],
  max = 4,
): fc.Arbitrary<Uint8Array> {
  return fc.tuple(
    fc.constantFrom(...inputs),
    fc.array(mutationArb, { minLength: 1, maxLength: max }),
  ).map(([input, mutations]) => applyMutations(input, mutations));
}

const TESTDATA = new URL("../../testdata/", import.meta.url);

/** Every `.torrent` fixture: valid ones in `testdata/` and the `testdata/invalid/` corpus. */
export function loadTorrentFixtures(): { valid: Uint8Array[]; invalid: Uint8Array[] } {
  const read = (dir: URL) =>
    [...Deno.readDirSync(dir)]
      .filter((entry) => entry.isFile && entry.name.endsWith(".torrent"))
      .map((entry) => entry.name)
      .sort()
      .map((name) => Deno.readFileSync(new URL(name, dir)));
  return { valid: read(TESTDATA), invalid: read(new URL("invalid/", TESTDATA)) };
}

/** Random 4-byte IPv4 text. */
export const ipv4Arb: fc.Arbitrary<string> = fc.tuple(
  fc.nat({ max: 255 }),
  fc.nat({ max: 255 }),
  fc.nat({ max: 255 }),
  fc.nat({ max: 255 }),
).map((octets) => octets.join("."));

/** 16 random bytes, biased to addresses with zero runs and IPv4-mapped ones. */
export const ipv6BytesArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc.array(fc.constantFrom(0, 0, 0, 1, 0xff), { minLength: 16, maxLength: 16 }).map((a) =>
    Uint8Array.from(a)
  ),
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((v4) =>
    Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4])
  ),
);

/**
 * Canonical text of an IPv6 address given as bytes or text, via the WHATWG URL parser (an
 * oracle independent of the library's own formatting).
 */
export function canonicalIPv6(address: Uint8Array | string): string {
  let text = address;
  if (text instanceof Uint8Array) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((text[i]! << 8) | text[i + 1]!).toString(16));
    text = groups.join(":");
  }
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/** Canonical text of a host: IPv4 unchanged, IPv6 via {@linkcode canonicalIPv6}. */
export function canonicalHost(host: string): string {
  return host.includes(":") ? canonicalIPv6(host) : host;
}
