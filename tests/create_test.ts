/**
 * End to end: a torrent made from files on disk by `createTorrentFromPath` is served from those
 * files and downloaded over loopback into another directory, byte for byte.
 */
import assert from "node:assert/strict";
import { createTorrentFromPath } from "../lib/metainfo/create_from_path.ts";
import { FsStorage } from "../lib/storage/mod.ts";
import { serveTorrent, Torrent } from "../lib/torrent/mod.ts";
import { differingFiles, makePayload, tempDir } from "./_helpers/interop/mod.ts";

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// File boundaries inside pieces, a zero-length file, nesting, and a hidden file.
const FILES = [
  { path: "album/cover.jpg", size: 100_000 },
  { path: "album/disc 1/01.flac", size: 250_001 },
  { path: "album/disc 1/02.flac", size: 3 },
  { path: "album/.nfo", size: 0 },
  { path: "album/notes.txt", size: 65_536 },
];

Deno.test("createTorrentFromPath() torrents serve from the source files and download intact", async () => {
  await using dir = await tempDir({ prefix: "create_e2e_" });
  await makePayload(dir.join("source"), FILES);
  const { metainfo } = await createTorrentFromPath(dir.join("source", "album"), {
    pieceLength: 32768,
    announce: "http://127.0.0.1:1/announce",
  });
  assert.equal(metainfo.totalLength, 415_540);
  assert.equal(metainfo.files.length, 5);

  // The creator and the storage layer agree on file order and offsets: serving straight from
  // the source directory, the seeder's check finds every piece.
  const entries = metainfo.files.map((file) => ({ path: file.path, length: file.length }));
  const source = await FsStorage.open({ root: dir.join("source", "album"), files: entries });
  const server = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
  const storage = await FsStorage.open({ root: dir.join("out", "album"), files: entries });
  const torrent = new Torrent({ metainfo, storage });
  try {
    assert.equal(server.torrent.have.count, metainfo.pieceCount);
    torrent.start();
    torrent.addPeers([{ host: "127.0.0.1", port: server.port }]);
    await withTimeout(torrent.done, 8000, "download");
  } finally {
    await torrent.close();
    await server.close();
    await storage.close();
    await source.close();
  }
  assert.deepEqual(
    await differingFiles(
      dir.join("source"),
      dir.join("out"),
      FILES.map((file) => file.path),
    ),
    [],
  );
});

Deno.test("createTorrentFromPath() pieces catch a changed byte in the source", async () => {
  await using dir = await tempDir({ prefix: "create_e2e_" });
  await makePayload(dir.join("source"), FILES);
  const { metainfo } = await createTorrentFromPath(dir.join("source", "album"), {
    pieceLength: 32768,
  });
  // Flip one byte of "disc 1/01.flac" (sorted after ".nfo" and "cover.jpg": offset 100 000).
  const path = dir.join("source", "album", "disc 1", "01.flac");
  const data = await Deno.readFile(path);
  data[5000] = data[5000]! ^ 0xff;
  await Deno.writeFile(path, data);
  const entries = metainfo.files.map((file) => ({ path: file.path, length: file.length }));
  const source = await FsStorage.open({ root: dir.join("source", "album"), files: entries });
  const server = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
  try {
    assert.equal(server.torrent.have.count, metainfo.pieceCount - 1);
    assert.equal(server.torrent.have.has(Math.floor(105_000 / 32768)), false);
  } finally {
    await server.close();
    await source.close();
  }
});
