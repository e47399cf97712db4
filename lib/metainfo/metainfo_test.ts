import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { BencodeSyntaxError, decode, encode } from "../bencode/mod.ts";
import {
  concat,
  greetingTorrent,
  invalidFixtures,
  multiFileTorrent,
  TESTDATA_DIR,
  unsortedKeysTorrent,
} from "../../tests/_helpers/fixtures.ts";
import { MetainfoError, parseMetainfo, pieceHash, pieceLength } from "./metainfo.ts";

const ANNOUNCE = "http://127.0.0.1:6969/announce";

function sha1(bytes: Uint8Array): string {
  return createHash("sha1").update(bytes).digest("hex");
}

async function sha1Subtle(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-1", bytes as Uint8Array<ArrayBuffer>));
}

Deno.test("parseMetainfo() reads the committed single-file fixture", async () => {
  const bytes = await Deno.readFile(new URL("single.torrent", TESTDATA_DIR));
  const data = await Deno.readFile(new URL("single.bin", TESTDATA_DIR));
  const meta = parseMetainfo(bytes);
  // Hash computed by libtorrent 2.0.8 (python3-libtorrent): torrent_info(...).info_hashes().v1
  assert.equal(meta.infoHash.toHex(), "1836b987a00460cb747f924d635f5527d2800665");
  assert.equal(meta.name, "single.bin");
  assert.equal(meta.multiFile, false);
  assert.equal(meta.pieceLength, 32 * 1024);
  assert.equal(meta.pieceCount, 4);
  assert.equal(meta.totalLength, 100 * 1024);
  assert.deepEqual(meta.files, [{ path: ["single.bin"], length: 100 * 1024, offset: 0 }]);
  assert.equal(meta.announce, ANNOUNCE);
  assert.deepEqual(meta.announceList, [[ANNOUNCE]]);
  assert.equal(meta.comment, "denotorrent test fixture");
  assert.equal(meta.createdBy, "denotorrent fixtures");
  assert.equal(meta.creationDate, 1_700_000_000);
  assert.equal(meta.private, false);
  assert.deepEqual(meta.urlList, []);
  for (let i = 0; i < meta.pieceCount; i++) {
    const start = i * meta.pieceLength;
    const piece = data.subarray(start, start + pieceLength(meta, i));
    assert.deepEqual(await sha1Subtle(piece), pieceHash(meta, i), `piece ${i}`);
  }
  assert.equal(pieceLength(meta, 3), 100 * 1024 - 3 * 32 * 1024);
});

Deno.test("parseMetainfo() reads the committed multi-file fixtures", async (t) => {
  await t.step("ours", async () => {
    const meta = parseMetainfo(await Deno.readFile(new URL("multi.torrent", TESTDATA_DIR)));
    assert.equal(meta.multiFile, true);
    assert.equal(meta.name, "multi");
    assert.deepEqual(
      meta.files.map((f) => [f.path.join("/"), f.length, f.offset]),
      [
        ["alpha.txt", 1150, 0],
        ["beta/one.bin", 40000, 1150],
        ["beta/two.bin", 30, 41150],
        ["empty.dat", 0, 41180],
        ["zeta.bin", 50000, 41180],
      ],
    );
    assert.equal(meta.totalLength, 91180);
    assert.equal(meta.pieceCount, 3);
  });
  await t.step("made by mktorrent: the same info hash as ours", async () => {
    const mk = parseMetainfo(
      await Deno.readFile(new URL("mktorrent_multi.torrent", TESTDATA_DIR)),
    );
    const ours = parseMetainfo(await Deno.readFile(new URL("multi.torrent", TESTDATA_DIR)));
    // Obtained once with /usr/bin/python3 and libtorrent 2.0.8:
    //   lt.torrent_info("testdata/mktorrent_multi.torrent").info_hashes().v1
    // (tests/interop/metainfo_interop_test.ts checks it live).
    assert.equal(mk.infoHash.toHex(), "345d3a9c7f41c897c752bb41576fa106ae917620");
    assert.deepEqual(ours.infoHash, mk.infoHash);
    assert.equal(mk.createdBy, "mktorrent 1.1");
    assert.equal(mk.creationDate, undefined);
  });
});

Deno.test("parseMetainfo() rejects every invalid fixture with a specific MetainfoError", async (t) => {
  const fixtures = invalidFixtures();
  const onDisk = [...Deno.readDirSync(new URL("invalid/", TESTDATA_DIR))]
    .map((entry) => entry.name)
    .sort();
  assert.deepEqual(onDisk, fixtures.map((f) => f.file).sort(), "fixtures on disk == table");
  for (const fixture of fixtures) {
    await t.step(fixture.file, async () => {
      const bytes = await Deno.readFile(new URL(`invalid/${fixture.file}`, TESTDATA_DIR));
      assert.deepEqual(bytes, fixture.bytes, "committed file is up to date");
      const error = catchError(() => parseMetainfo(bytes));
      assert.ok(error instanceof MetainfoError, `got ${error}`);
      assert.equal(error.name, "MetainfoError");
      assert.equal(error.field, fixture.field);
      if (typeof fixture.message === "string") assert.equal(error.message, fixture.message);
      else assert.match(error.message, fixture.message);
      if (fixture.field === "torrent" && fixture.message instanceof RegExp) {
        assert.ok(error.cause instanceof BencodeSyntaxError, "wraps the bencode error");
      }
    });
  }
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail("expected an error");
}

Deno.test("parseMetainfo() hashes the raw info bytes, not a re-encoding", async () => {
  const { torrent, infoBytes } = unsortedKeysTorrent();
  const committed = await Deno.readFile(new URL("unsorted_keys.torrent", TESTDATA_DIR));
  assert.deepEqual(committed, torrent);
  const meta = parseMetainfo(torrent);
  assert.equal(meta.infoHash.toHex(), sha1(infoBytes));
  // Also what libtorrent 2.0.8 computes for testdata/unsorted_keys.torrent.
  assert.equal(meta.infoHash.toHex(), "224840c156c4296bad20916bc9c1635ff40458f2");
  assert.deepEqual(meta.infoBytes, infoBytes);
  const reencoded = encode(decode(infoBytes, { allowUnsortedKeys: true }));
  assert.notDeepEqual(reencoded, infoBytes, "a re-encoding sorts the keys");
  assert.notEqual(sha1(reencoded), meta.infoHash.toHex());
  assert.equal(meta.name, "unsorted.txt");
  assert.equal(meta.totalLength, 100);
});

Deno.test("parseMetainfo() copies infoBytes and pieceHashes out of the input", () => {
  const torrent = encode({
    info: { length: 5, name: "a", "piece length": 8, pieces: new Uint8Array(20).fill(1) },
  });
  const meta = parseMetainfo(torrent);
  const before = meta.infoBytes.slice();
  torrent.fill(0);
  assert.deepEqual(meta.infoBytes, before);
  assert.deepEqual(meta.pieceHashes, new Uint8Array(20).fill(1));
});

Deno.test("parseMetainfo() reads the greeting torrent built at test time", async () => {
  const { torrent, metainfo, data } = await greetingTorrent();
  assert.deepEqual(parseMetainfo(torrent), metainfo);
  assert.equal(metainfo.pieceCount, 4);
  assert.deepEqual([0, 1, 2, 3].map((i) => pieceLength(metainfo, i)), [8, 8, 8, 1]);
  assert.ok(data.includes(0));
  for (let i = 0; i < 4; i++) {
    const piece = data.subarray(i * 8, i * 8 + pieceLength(metainfo, i));
    assert.deepEqual(await sha1Subtle(piece), pieceHash(metainfo, i));
  }
});

Deno.test("parseMetainfo() lays out multi-file offsets across piece boundaries", async () => {
  const { metainfo, files, data } = await multiFileTorrent();
  assert.deepEqual(
    metainfo.files.map((f) => ({ path: f.path, length: f.length, offset: f.offset })),
    [
      { path: ["alpha.txt"], length: 5, offset: 0 },
      { path: ["beta", "one.bin"], length: 2, offset: 5 },
      { path: ["beta", "two.bin"], length: 4, offset: 7 },
      { path: ["empty.dat"], length: 0, offset: 11 },
      { path: ["zeta.bin"], length: 10, offset: 11 },
    ],
  );
  assert.deepEqual(files.map((f) => f.path), metainfo.files.map((f) => f.path));
  assert.equal(metainfo.totalLength, 21);
  assert.equal(data.length, 21);
  assert.deepEqual([0, 1, 2].map((i) => pieceLength(metainfo, i)), [8, 8, 5]);
  // Piece 0 spans alpha.txt, beta/one.bin and beta/two.bin: hashed over the concatenation.
  assert.deepEqual(await sha1Subtle(data.subarray(0, 8)), pieceHash(metainfo, 0));
});

Deno.test("pieceHash() and pieceLength() reject indexes out of range", async () => {
  const { metainfo } = await greetingTorrent();
  for (const index of [-1, 4, 1.5, NaN]) {
    assert.throws(() => pieceHash(metainfo, index), RangeError);
    assert.throws(() => pieceLength(metainfo, index), RangeError);
  }
});

Deno.test("parseMetainfo() reads the optional fields", async (t) => {
  const info = { length: 1, name: "a", "piece length": 4, pieces: new Uint8Array(20) };
  await t.step("announce-list tiers win, empty tiers and URLs dropped", () => {
    const meta = parseMetainfo(encode({
      announce: "http://a/announce",
      "announce-list": [["http://b/announce", "udp://c:1"], [], [""], ["http://a/announce"]],
      info,
    }));
    assert.equal(meta.announce, "http://a/announce");
    assert.deepEqual(meta.announceList, [
      ["http://b/announce", "udp://c:1"],
      ["http://a/announce"],
    ]);
  });
  await t.step("no trackers at all; empty announce is absent", () => {
    const meta = parseMetainfo(encode({ announce: "", info }));
    assert.equal("announce" in meta, false);
    assert.deepEqual(meta.announceList, []);
  });
  await t.step("url-list as a list or as one string", () => {
    assert.deepEqual(
      parseMetainfo(encode({ "url-list": ["http://w/1", "http://w/2"], info })).urlList,
      ["http://w/1", "http://w/2"],
    );
    assert.deepEqual(parseMetainfo(encode({ "url-list": "http://w/", info })).urlList, [
      "http://w/",
    ]);
  });
  await t.step("private flag", () => {
    assert.equal(parseMetainfo(encode({ info: { ...info, private: 1 } })).private, true);
    assert.equal(parseMetainfo(encode({ info: { ...info, private: 0 } })).private, false);
    assert.equal(parseMetainfo(encode({ info })).private, false);
  });
  await t.step("name.utf-8 and path.utf-8 are preferred", () => {
    const meta = parseMetainfo(encode({
      info: {
        files: [{ length: 1, path: [new Uint8Array([0xe9])], "path.utf-8": ["été"] }],
        name: new Uint8Array([0xe9, 0x74, 0xe9]),
        "name.utf-8": "été",
        "piece length": 4,
        pieces: new Uint8Array(20),
      },
    }));
    assert.equal(meta.name, "été");
    assert.deepEqual(meta.files[0]!.path, ["été"]);
  });
  await t.step("non-UTF-8 names are decoded with replacement characters", () => {
    const meta = parseMetainfo(encode({ info: { ...info, name: new Uint8Array([0x61, 0xff]) } }));
    assert.equal(meta.name, "a\uFFFD");
  });
  await t.step("unknown keys are ignored", () => {
    const meta = parseMetainfo(encode({
      info: { ...info, "x-custom": { deep: [1, 2, { x: "y" }] } },
      "x-top": 2n ** 80n,
    }));
    assert.equal(meta.name, "a");
  });
  await t.step("padding files (BEP 47) may share a path", () => {
    const meta = parseMetainfo(encode({
      info: {
        files: [
          { length: 1, path: ["a"] },
          { attr: "p", length: 3, path: [".pad", "3"] },
          { length: 4, path: ["b"] },
          { attr: "p", length: 3, path: [".pad", "3"] },
          { length: 1, path: ["c"] },
        ],
        name: "d",
        "piece length": 4,
        pieces: new Uint8Array(60),
      },
    }));
    assert.deepEqual(meta.files.map((f) => f.padding === true), [false, true, false, true, false]);
    assert.equal("padding" in meta.files[0]!, false);
  });
  await t.step("a zero-length single-file torrent has no pieces", () => {
    const meta = parseMetainfo(encode({ info: { ...info, length: 0, pieces: "" } }));
    assert.equal(meta.pieceCount, 0);
    assert.equal(meta.totalLength, 0);
  });
  await t.step("piece length 2^31 is the largest accepted", () => {
    const meta = parseMetainfo(encode({ info: { ...info, "piece length": 2 ** 31 } }));
    assert.equal(meta.pieceLength, 2 ** 31);
  });
});

Deno.test("parseMetainfo() enforces the file and piece limits", async (t) => {
  await t.step("pieces", () => {
    const torrent = encode({
      info: { length: 100, name: "a", "piece length": 1, pieces: new Uint8Array(2000) },
    });
    assert.throws(
      () => parseMetainfo(torrent, { maxPieces: 99 }),
      (e: unknown) =>
        e instanceof MetainfoError && e.field === "info.pieces" &&
        e.message === "Invalid torrent: info.pieces holds 100 hashes, more than the limit of 99",
    );
    assert.equal(parseMetainfo(torrent, { maxPieces: 100 }).pieceCount, 100);
  });
  await t.step("files", () => {
    const files = Array.from({ length: 11 }, (_, i) => ({ length: 1, path: [`f${i}`] }));
    const torrent = encode({
      info: { files, name: "d", "piece length": 16, pieces: new Uint8Array(20) },
    });
    assert.throws(
      () => parseMetainfo(torrent, { maxFiles: 10 }),
      (e: unknown) =>
        e instanceof MetainfoError && e.field === "info.files" &&
        e.message === "Invalid torrent: info.files has 11 entries, more than the limit of 10",
    );
    assert.equal(parseMetainfo(torrent, { maxFiles: 11 }).files.length, 11);
  });
  await t.step("50k files with deep shared directories parse in reasonable time", () => {
    const files = Array.from({ length: 50_000 }, (_, i) => ({
      length: 1,
      path: ["a", "b", "c", `d${i % 100}`, `f${i}`],
    }));
    const torrent = encode({
      info: { files, name: "d", "piece length": 1 << 20, pieces: new Uint8Array(20) },
    });
    const start = performance.now();
    assert.equal(parseMetainfo(torrent).files.length, 50_000);
    // Generous: ~0.3 s here; quadratic path checks would take minutes.
    assert.ok(performance.now() - start < 5000, "linear, not quadratic");
  });
});

Deno.test("parseMetainfo() rejects a non-Uint8Array argument with TypeError", () => {
  assert.throws(() => parseMetainfo("d4:infodee" as unknown as Uint8Array), TypeError);
});

Deno.test("parseMetainfo() steps over BEP 52 piece layers keyed by raw bytes", async (t) => {
  const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
  const info = encode({ length: 5, name: "a", "piece length": 4, pieces: new Uint8Array(40) });
  const layers = (tail = "") =>
    concat([
      latin1("12:piece layersd32:"),
      new Uint8Array(32).fill(0xff), // a raw SHA-256 root as key: not UTF-8
      latin1("32:"),
      new Uint8Array(32),
      latin1("e"),
      latin1(tail),
    ]);
  await t.step("hybrid-like torrent parses, hash over raw info", () => {
    const torrent = concat([latin1("d4:info"), info, layers(), latin1("e")]);
    const meta = parseMetainfo(torrent);
    assert.equal(meta.infoHash.toHex(), sha1(info));
    assert.equal(meta.pieceCount, 2);
  });
  await t.step("announce before, unknown after", () => {
    const torrent = concat([
      latin1("d8:announce13:http://x/anno4:info"),
      info,
      layers("5:zzzzzli1ee"),
      latin1("e"),
    ]);
    assert.equal(parseMetainfo(torrent).announce, "http://x/anno");
  });
  await t.step("structural errors are still reported", () => {
    for (
      const torrent of [
        concat([latin1("d4:info"), info, layers(), latin1("ex")]), // trailing bytes
        concat([latin1("d4:info"), info, layers("3:zzzi01e"), latin1("e")]), // leading zero
        concat([latin1("d4:info"), info, layers(), latin1("4:info"), info, latin1("e")]), // dup
        concat([latin1("d4:info"), info, layers()]), // unterminated
      ]
    ) {
      assert.throws(
        () => parseMetainfo(torrent),
        (e: unknown) =>
          e instanceof MetainfoError && e.field === "torrent" &&
          e.cause instanceof BencodeSyntaxError &&
          /^Invalid torrent: not bencode: /.test(e.message),
      );
    }
  });
  await t.step("a non-UTF-8 key inside info is an error", () => {
    const badInfo = concat([latin1("d2:"), new Uint8Array([0xff, 0xfe]), latin1("i1ee")]);
    const torrent = concat([latin1("d4:info"), badInfo, latin1("e")]);
    assert.throws(
      () => parseMetainfo(torrent),
      /^MetainfoError: Invalid torrent: not bencode: in info: .*not valid UTF-8/,
    );
  });
});
