// Property-based fuzz tests for lib/metainfo: parseMetainfo() and parseMagnet() either return
// a value that satisfies their documented invariants or throw their own error class.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { type BencodeValue, encode } from "../../lib/bencode/mod.ts";
import {
  formatMagnet,
  MagnetError,
  type MagnetLink,
  type Metainfo,
  MetainfoError,
  parseMagnet,
  parseMetainfo,
} from "../../lib/metainfo/mod.ts";
import { assertProperty, expectOnly, MAX_MS_PER_INPUT, thrownBy, withinTime } from "./_config.ts";
import {
  bencodeValueArb,
  bytes,
  canonicalIPv6,
  ipv4Arb,
  ipv6BytesArb,
  loadTorrentFixtures,
  mutatedArb,
  TRICKY_STRINGS,
} from "./_arbitraries.ts";

const fixtures = loadTorrentFixtures();

// ---- parseMetainfo ----

/** Independent statement of the BEP 3 path rules parseMetainfo enforces. */
function componentIsValid(component: string): boolean {
  return component !== "" && component !== "." && component !== ".." &&
    !/[/\\\0]/.test(component) && !/^[A-Za-z]:$/.test(component);
}

/** True if one path equals another or is a directory of it (component-wise prefix). */
function pathsConflict(paths: readonly (readonly string[])[]): boolean {
  for (let i = 0; i < paths.length; i++) {
    for (let j = i + 1; j < paths.length; j++) {
      const a = paths[i]!;
      const b = paths[j]!;
      const n = Math.min(a.length, b.length);
      let k = 0;
      while (k < n && a[k] === b[k]) k++;
      if (k === n) return true;
    }
  }
  return false;
}

/** Checks every invariant a parsed Metainfo promises. */
function checkMetainfo(meta: Metainfo): void {
  assert.equal(meta.infoHash.length, 20);
  assert.equal(
    meta.infoHash.toHex(),
    createHash("sha1").update(meta.infoBytes).digest("hex"),
    "infoHash is not the SHA-1 of infoBytes",
  );
  assert.ok(componentIsValid(meta.name), `bad name ${JSON.stringify(meta.name)}`);
  assert.ok(Number.isSafeInteger(meta.pieceLength) && meta.pieceLength > 0);
  assert.ok(meta.pieceLength <= 2 ** 31);
  assert.equal(meta.pieceHashes.length, meta.pieceCount * 20);
  assert.ok(Number.isSafeInteger(meta.totalLength) && meta.totalLength >= 0);
  assert.equal(meta.pieceCount, Math.ceil(meta.totalLength / meta.pieceLength));
  assert.ok(meta.files.length > 0);
  let offset = 0;
  for (const file of meta.files) {
    assert.equal(file.offset, offset);
    assert.ok(Number.isSafeInteger(file.length) && file.length >= 0);
    assert.ok(file.path.length > 0);
    for (const component of file.path) {
      assert.ok(componentIsValid(component), `bad component ${JSON.stringify(component)}`);
    }
    offset += file.length;
  }
  assert.equal(offset, meta.totalLength);
  assert.ok(
    !pathsConflict(meta.files.filter((f) => !f.padding).map((f) => f.path)),
    "colliding paths",
  );
  for (const tier of meta.announceList) {
    assert.ok(tier.length > 0);
    for (const url of tier) assert.ok(typeof url === "string" && url !== "");
  }
  assert.equal(typeof meta.private, "boolean");
}

function checkParse(input: Uint8Array): Metainfo | undefined {
  let meta: Metainfo | undefined;
  const error = thrownBy(() => {
    meta = withinTime(() => parseMetainfo(input), MAX_MS_PER_INPUT, "parseMetainfo()");
  });
  expectOnly(error, [MetainfoError]);
  if (meta !== undefined) checkMetainfo(meta);
  return meta;
}

/** Path components: plain names, the tricky strings and the forbidden ones. */
const componentArb = fc.oneof(
  { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 8 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 6 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      ...TRICKY_STRINGS,
      ".",
      "..",
      "/",
      "a/b",
      "\\",
      "C:",
      "c:",
      "/etc",
      "a\0b",
      "x".repeat(100),
    ),
  },
);

interface GeneratedTorrent {
  torrent: Record<string, BencodeValue>;
  files: { path: string[]; length: number }[] | undefined;
  name: string;
}

/** A torrent built from random names, lengths and piece length, with the right piece count. */
const torrentArb: fc.Arbitrary<GeneratedTorrent> = fc.record({
  name: componentArb,
  pieceLength: fc.oneof(
    fc.constantFrom(4096, 16384, 32768, 1 << 20),
    fc.integer({ min: 4096, max: 1 << 21 }),
  ),
  multi: fc.boolean(),
  files: fc.array(
    fc.record({
      path: fc.array(componentArb, { minLength: 1, maxLength: 3 }),
      length: fc.oneof(fc.nat({ max: 1 << 20 }), fc.constant(0)),
    }),
    { minLength: 1, maxLength: 5 },
  ),
  announce: fc.option(fc.webUrl(), { nil: undefined }),
  isPrivate: fc.option(fc.nat({ max: 2 }), { nil: undefined }),
}).map(({ name, pieceLength, multi, files, announce, isPrivate }) => {
  const total = multi ? files.reduce((sum, f) => sum + f.length, 0) : files[0]!.length;
  const pieceCount = Math.ceil(total / pieceLength);
  const info: Record<string, BencodeValue> = {
    name: bytes(name),
    "piece length": pieceLength,
    pieces: new Uint8Array(pieceCount * 20).fill(0xab),
  };
  if (multi) {
    info.files = files.map((f) => ({ length: f.length, path: f.path.map(bytes) }));
  } else {
    info.length = files[0]!.length;
  }
  if (isPrivate !== undefined) info.private = isPrivate;
  const torrent: Record<string, BencodeValue> = { info };
  if (announce !== undefined) torrent.announce = bytes(announce);
  return {
    torrent,
    files: multi ? files.map((f) => ({ path: f.path, length: f.length })) : undefined,
    name,
  };
});

Deno.test("fuzz: parseMetainfo() accepts generated torrents exactly when their paths are valid", async (t) => {
  await assertProperty(
    t,
    fc.property(torrentArb, ({ torrent, files, name }) => {
      const paths = files?.map((f) => f.path) ?? [[name]];
      const valid = componentIsValid(name) && paths.every((p) => p.every(componentIsValid)) &&
        !pathsConflict(paths);
      const meta = checkParse(encode(torrent));
      assert.equal(
        meta !== undefined,
        valid,
        "accepted an invalid torrent or rejected a valid one",
      );
      if (meta === undefined) return;
      assert.equal(meta.name, name);
      const expected = files ??
        [{ path: [name], length: (torrent.info as { length: number }).length }];
      assert.deepEqual(
        meta.files.map((f) => [f.path, f.length]),
        expected.map((f) => [f.path, f.length]),
      );
      assert.equal(meta.multiFile, files !== undefined);
    }),
    { runs: 6000 },
  );
});

/** Field paths of a torrent to overwrite with a random value (or delete). */
const FIELD_PATHS: readonly (readonly (string | number)[])[] = [
  [],
  ["info"],
  ["info", "name"],
  ["info", "name.utf-8"],
  ["info", "piece length"],
  ["info", "pieces"],
  ["info", "length"],
  ["info", "files"],
  ["info", "files", 0],
  ["info", "files", 0, "length"],
  ["info", "files", 0, "path"],
  ["info", "files", 0, "path", 0],
  ["info", "files", 0, "path.utf-8"],
  ["info", "files", 0, "attr"],
  ["info", "private"],
  ["announce"],
  ["announce-list"],
  ["announce-list", 0],
  ["url-list"],
  ["comment"],
  ["created by"],
  ["creation date"],
];

function withField(
  root: Record<string, BencodeValue>,
  path: readonly (string | number)[],
  value: BencodeValue | undefined,
): BencodeValue {
  if (path.length === 0) return value ?? root;
  const copy = structuredClone(root) as Record<string, unknown>;
  let node: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || next instanceof Uint8Array) {
      return copy as never;
    }
    node = next as Record<string | number, unknown>;
  }
  const last = path[path.length - 1]!;
  // Only edit lists by index and dictionaries by key (never an array's "length").
  if (Array.isArray(node) !== (typeof last === "number")) return copy as never;
  if (value !== undefined) node[last] = value;
  else if (Array.isArray(node) && typeof last === "number") node.splice(last, 1);
  else delete node[last];
  return copy as never;
}

Deno.test("fuzz: parseMetainfo() throws only MetainfoError on torrents with a field replaced", async (t) => {
  await assertProperty(
    t,
    fc.property(
      torrentArb,
      fc.array(
        fc.tuple(fc.constantFrom(...FIELD_PATHS), fc.option(bencodeValueArb, { nil: undefined })),
        { minLength: 1, maxLength: 3 },
      ),
      ({ torrent }, edits) => {
        let value: BencodeValue = torrent;
        for (const [path, replacement] of edits) {
          if (typeof value !== "object" || value instanceof Uint8Array || Array.isArray(value)) {
            break;
          }
          value = withField(value as Record<string, BencodeValue>, path, replacement);
        }
        checkParse(encode(value));
      },
    ),
    { runs: 8000 },
  );
});

Deno.test("fuzz: parseMetainfo() throws only MetainfoError on mutated torrent files", async (t) => {
  await assertProperty(
    t,
    fc.property(mutatedArb([...fixtures.valid, ...fixtures.invalid]), (input) => {
      checkParse(input);
    }),
    { runs: 8000 },
  );
});

Deno.test("fuzz: parseMetainfo() throws only MetainfoError on mutated generated torrents", async (t) => {
  await assertProperty(
    t,
    fc.property(torrentArb.chain(({ torrent }) => mutatedArb([encode(torrent)], 3)), (input) => {
      checkParse(input);
    }),
    { runs: 8000 },
  );
});

Deno.test("fuzz: parseMetainfo() throws only MetainfoError on random bytes", async (t) => {
  await assertProperty(
    t,
    fc.property(fc.uint8Array({ maxLength: 200 }), (input) => {
      checkParse(input);
    }),
    { runs: 8000 },
  );
});

// ---- parseMagnet ----

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** Independent base32 (RFC 4648, no padding) decoder for 32 characters. */
function base32Decode(text: string): Uint8Array {
  let bits = 0n;
  for (const char of text.toUpperCase()) bits = (bits << 5n) | BigInt(BASE32.indexOf(char));
  return Uint8Array.fromHex(bits.toString(16).padStart(40, "0"));
}

function uriDecode(text: string): string {
  return decodeURIComponent(text.replaceAll("+", " "));
}

/** Checks a parsed magnet link against the URI it came from. */
function checkMagnet(uri: string, link: MagnetLink): void {
  assert.equal(link.infoHash.length, 20);
  // The first xt with urn:btih: defines the hash, and its text must be strictly hex or base32.
  const topics = uri.slice(8).split("&").filter((p) => p !== "").map((part) => {
    const eq = part.indexOf("=");
    return [
      uriDecode(eq < 0 ? part : part.slice(0, eq)).replace(/\.\d+$/, ""),
      uriDecode(eq < 0 ? "" : part.slice(eq + 1)),
    ] as const;
  }).filter(([key, value]) => key === "xt" && value.toLowerCase().startsWith("urn:btih:"));
  assert.ok(topics.length > 0, "accepted a link without urn:btih:");
  const hash = topics[0]![1].slice(9);
  if (/^[0-9a-fA-F]{40}$/.test(hash)) {
    assert.equal(link.infoHash.toHex(), hash.toLowerCase());
  } else {
    assert.match(hash, /^[A-Za-z2-7]{32}$/, "accepted an info hash that is neither hex nor base32");
    assert.equal(link.infoHash.toHex(), base32Decode(hash).toHex());
  }
  for (const peer of link.peers) {
    assert.ok(Number.isInteger(peer.port) && peer.port >= 1 && peer.port <= 65535);
    assert.ok(peer.host.length > 0);
  }
  if (link.exactLength !== undefined) {
    assert.ok(Number.isSafeInteger(link.exactLength) && link.exactLength >= 0);
  }
  assert.equal(new Set(link.trackers).size, link.trackers.length);
  assert.ok(!link.trackers.includes("") && !link.webSeeds.includes(""));
}

/** Characters that case-map into the base32 alphabet, or break percent-decoding. */
const MAGNET_CHARS = ["ß", "ı", "ſ", "ﬀ", "K", "%", "%zz", "%C3", "%00", "+", "&", "=", "#", " "];

const hashTextArb = fc.oneof(
  fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => b.toHex()),
  fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => b.toHex().toUpperCase()),
  fc.string({
    unit: fc.constantFrom(...BASE32, ...BASE32.toLowerCase()),
    minLength: 32,
    maxLength: 32,
  }),
  // Nearly valid: 31 or 39 good characters and one odd one.
  fc.tuple(
    fc.string({ unit: fc.constantFrom(...BASE32), minLength: 31, maxLength: 31 }),
    fc.constantFrom(...MAGNET_CHARS, "0", "1", "8", "9", "="),
    fc.nat({ max: 31 }),
  ).map(([s, c, at]) => s.slice(0, at) + c + s.slice(at)),
  fc.tuple(
    fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => b.toHex().slice(1)),
    fc.constantFrom(...MAGNET_CHARS, "g", "G", "ä"),
  ).map(([s, c]) => s + c),
  fc.string({ maxLength: 48 }),
);

const magnetParamArb = fc.tuple(
  fc.oneof(
    fc.constantFrom("xt", "xt.1", "xt.2", "dn", "tr", "tr.1", "ws", "x.pe", "xl", "as", "kt", "XT"),
    fc.string({ maxLength: 4 }),
  ),
  fc.oneof(
    hashTextArb.map((h) => `urn:btih:${h}`),
    fc.constantFrom("urn:btmh:1220abcd", "urn:sha1:abc", ""),
    fc.string({ unit: "binary", maxLength: 12 }).map(encodeURIComponent),
    fc.string({ maxLength: 12 }),
    fc.constantFrom(...MAGNET_CHARS, "1.2.3.4:80", "[::1]:6881", "host:0", "x:65536", "123", "-1"),
    fc.nat().map(String),
  ),
  fc.boolean(),
).map(([key, value, withEquals]) => withEquals ? `${key}=${value}` : key);

const magnetArb = fc.tuple(
  fc.constantFrom("magnet:?", "MAGNET:?", "magnet:", "magnet:?&", ""),
  fc.array(magnetParamArb, { maxLength: 6 }),
).map(([prefix, params]) => prefix + params.join("&"));

function checkMagnetParse(uri: string): void {
  let link: MagnetLink | undefined;
  const error = thrownBy(() => {
    link = withinTime(() => parseMagnet(uri), MAX_MS_PER_INPUT, "parseMagnet()");
  });
  expectOnly(error, [MagnetError]);
  if (link !== undefined) checkMagnet(uri, link);
}

Deno.test("fuzz: parseMagnet() throws only MagnetError and returns checked links", async (t) => {
  await assertProperty(
    t,
    fc.property(magnetArb, (uri) => {
      checkMagnetParse(uri);
    }),
    { runs: 20000 },
  );
});

Deno.test("fuzz: parseMagnet() throws only MagnetError on arbitrary text", async (t) => {
  await assertProperty(
    t,
    fc.property(
      fc.oneof(fc.string({ unit: "binary", maxLength: 80 }), fc.string({ maxLength: 80 })),
      (text) => {
        checkMagnetParse(text);
        checkMagnetParse("magnet:?" + text);
        checkMagnetParse("magnet:?xt=urn:btih:" + text);
      },
    ),
    { runs: 12000 },
  );
});

const peerHostArb = fc.oneof(
  ipv4Arb,
  ipv6BytesArb.map(canonicalIPv6),
  fc.domain(),
);

const magnetLinkArb: fc.Arbitrary<MagnetLink> = fc.record({
  infoHash: fc.uint8Array({ minLength: 20, maxLength: 20 }),
  displayName: fc.string({ unit: "binary", maxLength: 20 }),
  trackers: fc.uniqueArray(
    fc.oneof(fc.webUrl(), fc.constantFrom("udp://127.0.0.1:6969/announce", "http://x/a?b=c&d=e+f")),
    { maxLength: 3 },
  ),
  peers: fc.array(
    fc.record({ host: peerHostArb, port: fc.integer({ min: 1, max: 65535 }) }),
    { maxLength: 3 },
  ),
  exactLength: fc.maxSafeNat(),
  webSeeds: fc.uniqueArray(fc.webUrl(), { maxLength: 2 }),
}, { requiredKeys: ["infoHash", "trackers", "peers", "webSeeds"] });

Deno.test("fuzz: parseMagnet(formatMagnet(link)) round-trips generated links", async (t) => {
  await assertProperty(
    t,
    fc.property(magnetLinkArb, (link) => {
      const parsed = parseMagnet(formatMagnet(link));
      assert.equal(parsed.infoHash.toHex(), link.infoHash.toHex());
      assert.equal(parsed.displayName, link.displayName);
      assert.deepEqual(parsed.trackers, link.trackers);
      assert.deepEqual(parsed.webSeeds, link.webSeeds);
      assert.equal(parsed.exactLength, link.exactLength);
      assert.deepEqual(parsed.peers, link.peers.map((peer) => ({ ...peer })));
    }),
    { runs: 6000 },
  );
});
