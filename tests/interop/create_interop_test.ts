/**
 * Interop: for the same files and piece length, `createTorrentFromPath` must give the info hash
 * that `mktorrent` and libtorrent's creator (v1 only, no pad files) give.
 */
import assert from "node:assert/strict";
import { createTorrentFromPath } from "../../lib/metainfo/create_from_path.ts";
import {
  interopAvailable,
  libtorrentCreateTorrent,
  makePayload,
  mktorrent,
  type PayloadFileSpec,
  tempDir,
} from "../_helpers/interop/mod.ts";

const hasMktorrent = interopAvailable(["mktorrent"]);
const hasLibtorrent = interopAvailable(["libtorrent"]);
const ANNOUNCE = "http://127.0.0.1:6969/announce";

/** Nested directories, a zero-length file, hidden files, and names whose order is tricky. */
const TREE: PayloadFileSpec[] = [
  { path: "a/x", size: 40_000 }, // "a/x" sorts after "a.txt" and "a-b/y" in mktorrent's order
  { path: "a.txt", size: 1 },
  { path: "a-b/y", size: 33_000 },
  { path: ".hidden", size: 100 },
  { path: ".hid/z", size: 5 },
  { path: "B/deep/er/file.bin", size: 131_072 },
  { path: "empty", size: 0 },
  { path: "with space", size: 70_001 },
  { path: "\u00e9t\u00e9/\u00fcber", size: 9_999 },
];

async function ourInfoHash(
  source: string,
  options: Parameters<typeof createTorrentFromPath>[1],
): Promise<string> {
  return (await createTorrentFromPath(source, options)).metainfo.infoHash.toHex();
}

Deno.test({
  name: "createTorrentFromPath() matches mktorrent's info hash",
  ignore: !hasMktorrent,
  async fn(t) {
    await using dir = await tempDir({ prefix: "create_interop_" });
    await makePayload(dir.join("tree"), TREE);
    await makePayload(dir.join("single"), [{ path: "file.bin", size: 1_000_003 }]);
    for (const log2 of [15, 18]) {
      await t.step(`directory, piece length 2^${log2}`, async () => {
        const theirs = await mktorrent(dir.join("tree"), {
          output: dir.join("m.torrent"),
          announce: [ANNOUNCE],
          pieceLength: 2 ** log2,
        });
        const ours = await ourInfoHash(dir.join("tree"), { pieceLength: 2 ** log2 });
        assert.equal(ours, theirs.infoHash);
      });
      await t.step(`single file, piece length 2^${log2}`, async () => {
        const theirs = await mktorrent(dir.join("single", "file.bin"), {
          output: dir.join("m.torrent"),
          announce: [ANNOUNCE],
          pieceLength: 2 ** log2,
        });
        const ours = await ourInfoHash(dir.join("single", "file.bin"), { pieceLength: 2 ** log2 });
        assert.equal(ours, theirs.infoHash);
      });
    }
    await t.step("symbolic links are followed as mktorrent follows them", async () => {
      await makePayload(dir.join("linked"), [{ path: "real/file", size: 50_000 }]);
      await Deno.symlink("real", dir.join("linked", "dirlink"));
      await Deno.symlink(dir.join("single", "file.bin"), dir.join("linked", "filelink"));
      const theirs = await mktorrent(dir.join("linked"), {
        output: dir.join("m.torrent"),
        pieceLength: 32768,
      });
      const ours = await createTorrentFromPath(dir.join("linked"), { pieceLength: 32768 });
      assert.equal(ours.metainfo.infoHash.toHex(), theirs.infoHash);
      assert.equal(ours.metainfo.files.length, 3);
    });
    await t.step("the whole file is the same with the same fields", async () => {
      const trackers = [ANNOUNCE, "udp://127.0.0.1:6969/announce"];
      const webSeeds = ["http://127.0.0.1:8080/a/", "http://127.0.0.1:8080/b/"];
      const theirs = await mktorrent(dir.join("tree"), {
        output: dir.join("m.torrent"),
        announce: trackers,
        pieceLength: 65536,
        name: "renamed",
        private: true,
        comment: "made twice",
        webSeeds,
      });
      const ours = await createTorrentFromPath(dir.join("tree"), {
        pieceLength: 65536,
        name: "renamed",
        announce: trackers.map((url) => [url]), // mktorrent: one tier per -a
        private: true,
        comment: "made twice",
        createdBy: "mktorrent 1.1",
        urlList: webSeeds,
      });
      assert.deepEqual(ours.torrent, theirs.bytes);
    });
  },
});

Deno.test({
  name: "createTorrentFromPath() matches mktorrent on data hashed by several workers",
  ignore: !hasMktorrent,
  async fn() {
    await using dir = await tempDir({ prefix: "create_interop_" });
    // 48 MiB in 1 MiB pieces: six 8 MiB jobs; file boundaries fall inside pieces.
    await makePayload(dir.join("data"), [
      { path: "one.bin", size: 20 * 1024 * 1024 + 123 },
      { path: "sub/two.bin", size: 28 * 1024 * 1024 - 123 },
    ]);
    const theirs = await mktorrent(dir.join("data"), {
      output: dir.join("m.torrent"),
      pieceLength: 1024 * 1024,
    });
    for (const threads of [1, 2]) {
      assert.equal(
        await ourInfoHash(dir.join("data"), { pieceLength: 1024 * 1024, threads }),
        theirs.infoHash,
        `threads: ${threads}`,
      );
    }
  },
});

Deno.test({
  name: "createTorrentFromPath() matches libtorrent's v1 creator",
  ignore: !hasLibtorrent,
  async fn(t) {
    await using dir = await tempDir({ prefix: "create_interop_" });
    await makePayload(dir.join("tree"), TREE);
    await makePayload(dir.join("single"), [{ path: "file.bin", size: 777_777 }]);
    for (const pieceLength of [16384, 262144]) {
      await t.step(`directory, piece length ${pieceLength}`, async () => {
        const theirs = await libtorrentCreateTorrent(dir.join("tree"), {
          output: dir.join("l.torrent"),
          pieceLength,
          trackers: [ANNOUNCE],
        });
        assert.equal(await ourInfoHash(dir.join("tree"), { pieceLength }), theirs.infoHash);
      });
      await t.step(`single file, piece length ${pieceLength}`, async () => {
        const source = dir.join("single", "file.bin");
        const theirs = await libtorrentCreateTorrent(source, {
          output: dir.join("l.torrent"),
          pieceLength,
        });
        assert.equal(await ourInfoHash(source, { pieceLength }), theirs.infoHash);
      });
    }
    await t.step("private flag", async () => {
      const theirs = await libtorrentCreateTorrent(dir.join("tree"), {
        output: dir.join("l.torrent"),
        pieceLength: 32768,
        private: true,
      });
      assert.equal(
        await ourInfoHash(dir.join("tree"), { pieceLength: 32768, private: true }),
        theirs.infoHash,
      );
    });
  },
});
