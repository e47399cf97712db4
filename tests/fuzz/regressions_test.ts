// Minimal inputs for bugs the fuzz properties found in library modules, kept as regression tests
// now that the bugs are fixed. The comment above each says what the bug was.

import assert from "node:assert/strict";
import { decode, encode } from "../../lib/bencode/mod.ts";
import { MagnetError, parseMagnet, parseMetainfo } from "../../lib/metainfo/mod.ts";
import { resolveInside } from "../../lib/storage/path.ts";
import { parseAnnounceResponse, TrackerError, TrackerFailureError } from "../../lib/tracker/mod.ts";

const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

// Fixed: lib/bencode/_scanner.ts decodes keys with
// `new TextDecoder("utf-8", { fatal: true })`, which strips a leading byte-order mark, so the
// key bytes EF BB BF 69 6E 66 6F ("\uFEFFinfo") are read as "info". A torrent can then carry
// an info dictionary under a key other clients do not see as "info" (or two keys that collide).
// Fix: pass `ignoreBOM: true` to that TextDecoder.
Deno.test({
  name: "decode() keeps a byte-order mark at the start of a dictionary key",

  fn() {
    const input = latin1(
      "d" +
        "7:\xEF\xBB\xBFinfo" + // key: BOM + "info" (7 bytes)
        "i1e" + // value: 1
        "e",
    );
    const value = decode(input) as Record<string, unknown>;
    assert.deepEqual(Object.keys(value), ["\uFEFFinfo"]);
    assert.deepEqual(encode(decode(input)), input);
  },
});

// Same root cause, strict path: "a" sorts before "\uFEFFa", so both keys pass the order check
// and the second silently overwrites the first.
Deno.test({
  name: "decode() does not merge keys that differ only by a leading byte-order mark",

  fn() {
    const input = latin1(
      "d" +
        "1:a" + "i1e" + // "a" = 1
        "4:\xEF\xBB\xBFa" + "i2e" + // "\uFEFFa" = 2
        "e",
    );
    assert.equal(Object.keys(decode(input)).length, 2);
  },
});

// Fixed: lib/metainfo/metainfo.ts decodes names with
// `new TextDecoder("utf-8")` (lenientUtf8), which strips a leading BOM: a torrent named
// "\uFEFFn" is stored as "n". Fix: `new TextDecoder("utf-8", { ignoreBOM: true })` (also for
// strictUtf8). The same default decoder is used in lib/tracker/http_codec.ts (failure reason,
// warning, tracker id), lib/dht/krpc.ts (error text) and lib/peer/extension.ts (`v`).
Deno.test({
  name: "parseMetainfo() keeps a byte-order mark at the start of a name",

  fn() {
    const torrent = encode({
      info: {
        length: 5,
        name: new TextEncoder().encode("\uFEFFn"),
        "piece length": 16384,
        pieces: new Uint8Array(20),
      },
    });
    assert.equal(parseMetainfo(torrent).name, "\uFEFFn");
  },
});

// Fixed: lib/bencode/encode.ts turns keys into UTF-8 with TextEncoder,
// which maps every lone surrogate to U+FFFD, so two distinct keys become the same bytes and the
// output has a duplicate key that decode() rejects. encode() should throw a TypeError for a key
// that is not well-formed (or at least for the collision).
Deno.test({
  name: "encode() never writes duplicate keys for keys with lone surrogates",

  fn() {
    let encoded: Uint8Array | undefined;
    try {
      encoded = encode(Object.fromEntries([["\uD800", 1], ["\uDC00", 2]]));
    } catch (error) {
      assert.ok(error instanceof TypeError, `expected TypeError, got ${error}`);
      return;
    }
    decode(encoded);
  },
});

// Fixed (second case): encode() turns Map keys into bytes with
// TextEncoder.encode(key), which stringifies non-strings, so `1` and `"1"` (or two objects,
// "[object Object]") become the same key. encode() should throw a TypeError for a Map key that
// is not a string (the type already says ReadonlyMap<string, ...>).
Deno.test({
  name: "encode() rejects Map keys that are not strings",

  fn() {
    const map = new Map<unknown, number>([[1, 1], ["1", 2]]);
    assert.throws(() => encode(map as unknown as Map<string, number>), TypeError);
  },
});

// Fixed: lib/metainfo/magnet.ts decodeBase32() upper-cases the
// text before the alphabet check; "ß".toUpperCase() is "SS" and "ı" (dotless i) is "I", so a
// 32-character hash with such a letter is accepted (with "ß", 33 symbols: the extra bits are
// dropped). Fix: test /^[A-Za-z2-7]{32}$/ before decoding, as the hex path does.
Deno.test({
  name: "parseMagnet() rejects base32 info hashes with letters that case-map into the alphabet",

  fn() {
    for (const odd of ["ß", "ı", "ſ", "ﬀ"]) {
      const hash = "A".repeat(31) + odd; // 32 UTF-16 units
      assert.throws(() => parseMagnet(`magnet:?xt=urn:btih:${hash}`), MagnetError, odd);
    }
  },
});

// Fixed: lib/storage/path.ts resolveInside() treats any relative path that
// starts with ".." as an escape, so the safe name "..foo" (a file inside the root) throws a
// RangeError and such a torrent cannot be stored. Fix: reject only `relative === ".."` or
// `relative.startsWith(".." + nodePath.sep)` (plus the existing absolute and empty checks).
Deno.test({
  name: "resolveInside() accepts a name that starts with two dots",

  fn() {
    assert.equal(resolveInside("/data", ["..foo"]), "/data/..foo");
    assert.equal(resolveInside("/data", ["a", "...b"]), "/data/a/...b");
  },
});

// Fixed: lib/tracker/http_codec.ts parseAnnounceResponse() formats a
// non-byte-string `failure reason` with String(value); for a (null-prototype) dictionary, or a
// list holding one, that throws a bare TypeError ("Cannot convert object to primitive value")
// instead of TrackerError. Fix: throw TrackerError when the failure reason is not a byte string
// (or describe it with kind()).
Deno.test({
  name: "parseAnnounceResponse() rejects a dictionary failure reason with a typed error",

  fn() {
    for (
      const body of [
        "d14:failure reasondee", // failure reason = {}
        "d14:failure reasonldeee", // failure reason = [{}]
      ]
    ) {
      assert.throws(
        () => parseAnnounceResponse(latin1(body)),
        (error) => error instanceof TrackerError || error instanceof TrackerFailureError,
        body,
      );
    }
  },
});
