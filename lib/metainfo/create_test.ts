import assert from "node:assert/strict";
import { decode, isDict } from "../bencode/mod.ts";
import {
  deterministicBytes,
  multiFileTorrent,
  TESTDATA_DIR,
} from "../../tests/_helpers/fixtures.ts";
import { choosePieceLength, createTorrent, PieceHasher } from "./create.ts";
import { parseMetainfo, pieceHash, pieceLength } from "./metainfo.ts";

async function sha1(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-1", bytes as Uint8Array<ArrayBuffer>));
}

async function expectedHashes(data: Uint8Array, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(Math.ceil(data.length / size) * 20);
  for (let i = 0; i * size < data.length; i++) {
    out.set(await sha1(data.subarray(i * size, (i + 1) * size)), i * 20);
  }
  return out;
}

Deno.test("PieceHasher hashes the same for any chunking", async (t) => {
  const data = deterministicBytes(1000, 7);
  const expected = await expectedHashes(data, 64);
  const chunkings: [string, number[]][] = [
    ["one chunk", [1000]],
    ["1-byte chunks", Array(1000).fill(1)],
    ["piece-aligned", Array(15).fill(64).concat([40])],
    ["straddling", [63, 2, 127, 1, 300, 507]],
    ["with empty chunks", [0, 500, 0, 500, 0]],
  ];
  for (const [name, sizes] of chunkings) {
    await t.step(name, async () => {
      const hasher = new PieceHasher(64, { maxInFlight: 2 });
      let position = 0;
      for (const size of sizes) {
        await hasher.update(data.subarray(position, position + size));
        position += size;
      }
      assert.equal(position, 1000);
      assert.deepEqual(await hasher.digest(), expected);
      assert.equal(hasher.pieceCount, 16);
    });
  }
});

Deno.test("PieceHasher lets the caller reuse its chunk buffer", async () => {
  const data = deterministicBytes(300, 9);
  const hasher = new PieceHasher(100);
  const scratch = new Uint8Array(70);
  for (let position = 0; position < data.length; position += 70) {
    const chunk = data.subarray(position, position + 70);
    scratch.set(chunk);
    await hasher.update(scratch.subarray(0, chunk.length));
    scratch.fill(0xee); // clobber before the next chunk
  }
  assert.deepEqual(await hasher.digest(), await expectedHashes(data, 100));
});

Deno.test("PieceHasher hashes no data to no pieces and refuses use after digest", async () => {
  const hasher = new PieceHasher(16);
  assert.deepEqual(await hasher.digest(), new Uint8Array(0));
  await assert.rejects(() => hasher.update(new Uint8Array(1)), TypeError);
  await assert.rejects(() => hasher.digest(), TypeError);
  assert.throws(() => new PieceHasher(0), RangeError);
  assert.throws(() => new PieceHasher(2 ** 31 + 1), RangeError);
  assert.throws(() => new PieceHasher(16, { maxInFlight: 0 }), RangeError);
});

Deno.test("choosePieceLength() aims at 1000-2000 pieces within 16 KiB..16 MiB", async (t) => {
  await t.step("clamped low", () => {
    assert.equal(choosePieceLength(0), 16 * 1024);
    assert.equal(choosePieceLength(1), 16 * 1024);
    assert.equal(choosePieceLength(2000 * 16 * 1024), 16 * 1024);
  });
  await t.step("just over a boundary doubles", () => {
    assert.equal(choosePieceLength(2000 * 16 * 1024 + 1), 32 * 1024);
  });
  await t.step("typical sizes", () => {
    for (const size of [100e6, 700e6, 4.7e9, 25e9]) {
      const length = choosePieceLength(size);
      assert.equal(length & (length - 1), 0, "power of two");
      const pieces = Math.ceil(size / length);
      assert.ok(pieces > 1000 && pieces <= 2000, `${size}: ${pieces} pieces`);
    }
  });
  await t.step("clamped high", () => {
    assert.equal(choosePieceLength(1e15), 16 * 1024 * 1024);
  });
  await t.step("bad input", () => {
    assert.throws(() => choosePieceLength(-1), RangeError);
    assert.throws(() => choosePieceLength(1.5), RangeError);
  });
});

Deno.test("createTorrent() round-trips a single file through parseMetainfo()", async () => {
  const data = deterministicBytes(50_000, 4);
  const { torrent, metainfo } = await createTorrent({ name: "data.bin", data }, {
    pieceLength: 16384,
    announce: [["http://127.0.0.1:1/announce", "http://127.0.0.1:2/announce"], [
      "udp://127.0.0.1:3",
    ]],
    private: true,
    comment: "a comment",
    createdBy: "create_test",
    creationDate: 1234567890,
    urlList: ["http://127.0.0.1:8080/data.bin"],
  });
  assert.deepEqual(parseMetainfo(torrent), metainfo);
  assert.equal(metainfo.multiFile, false);
  assert.equal(metainfo.name, "data.bin");
  assert.equal(metainfo.totalLength, 50_000);
  assert.equal(metainfo.pieceCount, 4);
  assert.equal(metainfo.private, true);
  assert.equal(metainfo.announce, "http://127.0.0.1:1/announce");
  assert.deepEqual(metainfo.announceList, [
    ["http://127.0.0.1:1/announce", "http://127.0.0.1:2/announce"],
    ["udp://127.0.0.1:3"],
  ]);
  assert.equal(metainfo.comment, "a comment");
  assert.equal(metainfo.createdBy, "create_test");
  assert.equal(metainfo.creationDate, 1234567890);
  assert.deepEqual(metainfo.urlList, ["http://127.0.0.1:8080/data.bin"]);
  assert.deepEqual(metainfo.pieceHashes, await expectedHashes(data, 16384));
  // The info dictionary holds exactly the BEP 3 keys plus private.
  const top = decode(torrent);
  assert.ok(isDict(top) && isDict(top.info));
  assert.deepEqual(Object.keys(top.info), ["length", "name", "piece length", "pieces", "private"]);
});

Deno.test("createTorrent() is deterministic and leaves out what is not given", async () => {
  const data = new TextEncoder().encode("same");
  const a = await createTorrent({ name: "x", data });
  const b = await createTorrent({ name: "x", data });
  assert.deepEqual(a.torrent, b.torrent);
  assert.equal(new TextDecoder().decode(a.torrent).includes("creation date"), false);
  assert.equal(a.metainfo.pieceLength, 16384);
  assert.equal(a.metainfo.private, false);
  assert.deepEqual(a.metainfo.announceList, []);
  assert.equal(a.metainfo.announce, undefined);
});

Deno.test("createTorrent() hashes multi-file data across file boundaries", async () => {
  const { metainfo, data } = await multiFileTorrent();
  assert.equal(metainfo.multiFile, true);
  for (let i = 0; i < metainfo.pieceCount; i++) {
    const start = i * metainfo.pieceLength;
    const piece = data.subarray(start, start + pieceLength(metainfo, i));
    assert.deepEqual(await sha1(piece), pieceHash(metainfo, i), `piece ${i}`);
  }
});

Deno.test("createTorrent() matches the committed multi.torrent (and so mktorrent)", async () => {
  const dir = new URL("multi/", TESTDATA_DIR);
  const paths = [["alpha.txt"], ["beta", "one.bin"], ["beta", "two.bin"], ["empty.dat"], [
    "zeta.bin",
  ]];
  const files = await Promise.all(
    paths.reverse().map(async (path) => ({
      path,
      data: await Deno.readFile(new URL(path.join("/"), dir)),
    })),
  );
  const { metainfo } = await createTorrent({ name: "multi", files }, { pieceLength: 32768 });
  const mk = parseMetainfo(await Deno.readFile(new URL("mktorrent_multi.torrent", TESTDATA_DIR)));
  assert.deepEqual(metainfo.infoHash, mk.infoHash);
});

Deno.test("createTorrent() sorts files by the UTF-8 bytes of the joined path, as mktorrent", async () => {
  const file = (...path: string[]) => ({ path, data: new Uint8Array(1) });
  const { metainfo } = await createTorrent({
    name: "d",
    files: [file("b"), file("a", "z"), file("a.txt"), file("\u{1F600}"), file("\uFFFD"), file("A")],
  });
  // "a.txt" < "a/z" as joined paths ("." is 0x2e, "/" 0x2f), the order mktorrent writes;
  // U+FFFD (EF BF BD) sorts before U+1F600 (F0 ...) in UTF-8, unlike in UTF-16.
  assert.deepEqual(metainfo.files.map((f) => f.path.join("/")), [
    "A",
    "a.txt",
    "a/z",
    "b",
    "\uFFFD",
    "\u{1F600}",
  ]);
});

Deno.test("createTorrent() rejects bad input", async (t) => {
  const data = new Uint8Array(1);
  await t.step("unsafe names and paths", async () => {
    for (const name of ["", ".", "..", "/abs", "a/b", "a\\b", "a\0b"]) {
      await assert.rejects(() => createTorrent({ name, data }), TypeError, name);
      await assert.rejects(
        () => createTorrent({ name: "d", files: [{ path: ["ok", name], data }] }),
        TypeError,
      );
    }
  });
  await t.step("empty file list or path", async () => {
    await assert.rejects(() => createTorrent({ name: "d", files: [] }), TypeError);
    await assert.rejects(
      () => createTorrent({ name: "d", files: [{ path: [], data }] }),
      TypeError,
    );
  });
  await t.step("colliding paths", async () => {
    await assert.rejects(
      () =>
        createTorrent({ name: "d", files: [{ path: ["a"], data }, { path: ["a", "b"], data }] }),
      /Cannot create torrent: path "a\/b" collides with "a"/,
    );
    await assert.rejects(
      () => createTorrent({ name: "d", files: [{ path: ["a"], data }, { path: ["a"], data }] }),
      TypeError,
    );
  });
  await t.step("piece length", async () => {
    for (const pieceLength of [0, -1, 1.5, 2 ** 31 + 1]) {
      await assert.rejects(() => createTorrent({ name: "a", data }, { pieceLength }), RangeError);
    }
  });
  await t.step("aborted", async () => {
    await assert.rejects(
      () => createTorrent({ name: "a", data }, { signal: AbortSignal.abort() }),
      (e: unknown) => e instanceof DOMException && e.name === "AbortError",
    );
  });
});
