/**
 * Seeding and creating torrents over loopback: the `create` and `seed` commands as
 * subprocesses, `seedTorrent` in-process, a swarm where a one-slot seeder's pieces spread
 * between leechers, and `ut_metadata` served to magnet users.
 */
import assert from "node:assert/strict";
import {
  choosePieceLength,
  createTorrent,
  parseMagnet,
  parseMetainfo,
} from "../lib/metainfo/mod.ts";
import { extensionHandshake, fetchMetadata } from "../lib/peer/metadata_exchange.ts";
import { Bitfield } from "../lib/piece/mod.ts";
import { MemoryStorage } from "../lib/storage/mod.ts";
import { PeerListener, Torrent } from "../lib/torrent/mod.ts";
import { downloadTorrent } from "../lib/client/download.ts";
import { seedTorrent } from "../lib/client/seed.ts";
import { createTorrentFile } from "../lib/client/create.ts";
import { startHttpTracker } from "./_helpers/http_tracker.ts";
import { assertOneLineError, runCli } from "./_helpers/run_cli.ts";
import { deterministicBytes } from "./_helpers/fixtures.ts";
import { RawPeer } from "./_helpers/scripted_peer.ts";
import { startSeedCommand } from "./_helpers/seed_command.ts";

/** A directory with a small multi-file tree: a file boundary inside a piece, an empty file. */
async function makeTree(root: string): Promise<void> {
  await Deno.mkdir(`${root}/album/disc 1`, { recursive: true });
  await Deno.writeFile(`${root}/album/a.bin`, deterministicBytes(70_000, 1));
  await Deno.writeFile(`${root}/album/disc 1/b.bin`, deterministicBytes(45_000, 2));
  await Deno.writeFile(`${root}/album/empty.txt`, new Uint8Array(0));
  await Deno.writeTextFile(`${root}/album/note.txt`, "hello\0world\n");
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "seed_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function infoHashLine(stdout: string): string {
  const match = /^Info Hash: ([0-9a-f]{40})$/m.exec(stdout);
  assert.ok(match, stdout);
  return match[1]!;
}

Deno.test("cli create is deterministic and prints the info hash and the magnet link", async () => {
  await withTempDir(async (dir) => {
    await makeTree(dir);
    const announce = "http://127.0.0.1:6969/announce";
    const first = await runCli(["create", "--announce", announce, `${dir}/album`], { cwd: dir });
    assert.equal(first.code, 0, first.stderr);
    const lines = first.stdout.trim().split("\n");
    assert.equal(lines.length, 2, "stdout has only the info hash and the magnet link");
    const hash = infoHashLine(first.stdout);
    const magnet = parseMagnet(lines[1]!.replace(/^Magnet: /, ""));
    assert.equal(magnet.infoHash.toHex(), hash);
    assert.equal(magnet.displayName, "album");
    assert.deepEqual(magnet.trackers, [announce]);

    // Default output: <name>.torrent in the working directory.
    const metainfo = parseMetainfo(await Deno.readFile(`${dir}/album.torrent`));
    assert.equal(metainfo.infoHash.toHex(), hash);
    assert.equal(metainfo.pieceLength, choosePieceLength(metainfo.totalLength));
    assert.deepEqual(metainfo.files.map((file) => file.path.join("/")), [
      "a.bin",
      "disc 1/b.bin",
      "empty.txt",
      "note.txt",
    ]);

    // Same input, other options outside `info`: same info hash.
    const second = await runCli([
      "create",
      "-o",
      `${dir}/again.torrent`,
      "--announce",
      "http://127.0.0.1:1/announce",
      "--comment",
      "again",
      `${dir}/album`,
    ]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(infoHashLine(second.stdout), hash);

    // Different piece length: a different info hash.
    const third = await runCli([
      "create",
      "-o",
      `${dir}/small.torrent`,
      "--piece-length",
      "16K",
      "--private",
      `${dir}/album`,
    ]);
    assert.equal(third.code, 0, third.stderr);
    const small = parseMetainfo(await Deno.readFile(`${dir}/small.torrent`));
    assert.equal(small.pieceLength, 16384);
    assert.equal(small.private, true);
    assert.notEqual(infoHashLine(third.stdout), hash);
  });
});

Deno.test("cli create fails in one line on bad input", async (t) => {
  await withTempDir(async (dir) => {
    await makeTree(dir);
    await t.step("existing output", async () => {
      await Deno.writeTextFile(`${dir}/taken.torrent`, "x");
      const result = await runCli(["create", "-o", `${dir}/taken.torrent`, `${dir}/album`]);
      assertOneLineError(result, 1, /already exists/);
      assert.equal(await Deno.readTextFile(`${dir}/taken.torrent`), "x");
    });
    await t.step("missing path", async () => {
      const result = await runCli(["create", "-o", `${dir}/x.torrent`, `${dir}/nothing`]);
      assertOneLineError(result, 1, /nothing/);
    });
    await t.step("piece length not a power of two", async () => {
      const result = await runCli(["create", "-o", `${dir}/y.torrent`, "-l", "20000", dir]);
      assertOneLineError(result, 2, /--piece-length must be a power of two/);
    });
    await t.step("piece length not a number", async () => {
      const result = await runCli(["create", "-l", "big", `${dir}/album`]);
      assertOneLineError(result, 2, /--piece-length/);
    });
  });
});

Deno.test("cli seed serves our download through a tracker and announces stopped on SIGINT", async () => {
  await withTempDir(async (dir) => {
    await makeTree(dir);
    await using tracker = await startHttpTracker({ interval: 60 });
    const created = await runCli([
      "create",
      "-o",
      `${dir}/album.torrent`,
      "--announce",
      tracker.url,
      "--piece-length",
      "16384",
      `${dir}/album`,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const metainfo = parseMetainfo(await Deno.readFile(`${dir}/album.torrent`));

    const seeder = await startSeedCommand(["--port", "0", "album.torrent", "album"], { cwd: dir });
    let stopped = false;
    try {
      assert.equal(
        seeder.readyLine,
        `Seeding album on port ${seeder.port} (${metainfo.pieceCount} pieces verified).`,
      );
      const result = await downloadTorrent(metainfo, {
        out: `${dir}/copy`,
        port: 0,
        hostname: "127.0.0.1",
      });
      assert.equal(result.complete, true);
      for (const file of ["a.bin", "disc 1/b.bin", "empty.txt", "note.txt"]) {
        assert.deepEqual(
          await Deno.readFile(`${dir}/copy/${file}`),
          await Deno.readFile(`${dir}/album/${file}`),
          file,
        );
      }
      const end = await seeder.stop();
      stopped = true;
      assert.equal(end.code, 0, end.stderr);
      assert.equal(end.stdout, "", "stdout stays clean");
      assert.match(end.stderr, /Stopped seeding album: uploaded \d+ bytes to 1 peer\./);
    } finally {
      if (!stopped) await seeder.stop();
    }
    const fromSeeder = tracker.announces.filter((a) => a.port === seeder.port);
    assert.deepEqual(fromSeeder.map((a) => a.event), ["started", "stopped"]);
    assert.ok(fromSeeder.every((a) => a.left === 0 && a.downloaded === 0), "a seeder");
    assert.ok(fromSeeder[1]!.uploaded >= metainfo.totalLength, "upload reported");
  });
});

Deno.test("cli seed refuses missing data in one line and seeds a partial copy", async (t) => {
  await withTempDir(async (dir) => {
    await makeTree(dir);
    const { metainfo } = await createTorrentFile(`${dir}/album`, {
      out: `${dir}/album.torrent`,
      pieceLength: 16384,
    });
    await t.step("missing directory", async () => {
      const result = await runCli(["seed", `${dir}/album.torrent`, `${dir}/nowhere`]);
      assertOneLineError(result, 1, /Cannot seed "album" from ".*nowhere": it does not exist/);
    });
    await t.step("missing file", async () => {
      await Deno.mkdir(`${dir}/other`);
      const result = await runCli(["seed", `${dir}/album.torrent`, `${dir}/other`]);
      assertOneLineError(result, 1, /"a\.bin" is missing/);
    });
    await t.step("nothing verifies", async () => {
      await Deno.mkdir(`${dir}/zeros/disc 1`, { recursive: true });
      for (const file of metainfo.files) {
        await Deno.writeFile(`${dir}/zeros/${file.path.join("/")}`, new Uint8Array(file.length));
      }
      const result = await runCli(["seed", "--port", "0", `${dir}/album.torrent`, `${dir}/zeros`]);
      assertOneLineError(result, 1, /none of its \d+ pieces matches/);
    });
    await t.step("partial copy: seeds what verifies and says so", async () => {
      const bytes = await Deno.readFile(`${dir}/album/a.bin`);
      bytes[20_000] = bytes[20_000]! ^ 0xff; // piece 1
      await Deno.writeFile(`${dir}/album/a.bin`, bytes);
      const seeder = await startSeedCommand(
        ["--port", "0", "--no-trackers", "album.torrent", "album"],
        { cwd: dir },
      );
      const end = await seeder.stop();
      assert.match(
        seeder.readyLine,
        new RegExp(
          `^Seeding album on port \\d+ \\(${
            metainfo.pieceCount - 1
          } of ${metainfo.pieceCount} pieces verified; only those are served\\)\\.$`,
        ),
      );
      assert.equal(end.code, 0, end.stderr);
    });
  });
});

Deno.test("seedTorrent serves ut_metadata: magnet users get the info dictionary", async () => {
  await withTempDir(async (dir) => {
    await makeTree(dir);
    const { metainfo } = await createTorrentFile(`${dir}/album`, {
      out: `${dir}/album.torrent`,
      pieceLength: 16384,
    });
    await using seeder = await seedTorrent(metainfo, `${dir}/album`, {
      port: 0,
      hostname: "127.0.0.1",
      saveResume: false,
    });
    const address = { host: "127.0.0.1", port: seeder.port };
    const hello = await extensionHandshake(address, metainfo.infoHash);
    assert.deepEqual(hello.handshake.m, { ut_metadata: 1, ut_pex: 2 });
    assert.equal(hello.handshake.metadataSize, metainfo.infoBytes.length);
    assert.equal(hello.handshake.reqq, 500);
    assert.equal(hello.handshake.p, seeder.port);
    assert.match(hello.handshake.v ?? "", /^DenoTorrent/i);

    const info = await fetchMetadata([address], metainfo.infoHash, { timeoutMs: 5000 });
    assert.deepEqual(info, metainfo.infoBytes);
  });
});

Deno.test("seedTorrent serves multi-piece metadata from a big torrent", async () => {
  await withTempDir(async (dir) => {
    // 1500 pieces of 16 KiB: 30 000 bytes of piece hashes, two metadata pieces.
    await Deno.writeFile(`${dir}/big.bin`, deterministicBytes(1500 * 16384, 3));
    const { metainfo } = await createTorrentFile(`${dir}/big.bin`, {
      out: `${dir}/big.torrent`,
      pieceLength: 16384,
    });
    assert.ok(metainfo.infoBytes.length > 16384);
    await using seeder = await seedTorrent(metainfo, `${dir}/big.bin`, {
      port: 0,
      hostname: "127.0.0.1",
      saveResume: false,
    });
    const info = await fetchMetadata(
      [{ host: "127.0.0.1", port: seeder.port }],
      metainfo.infoHash,
      {
        timeoutMs: 5000,
      },
    );
    assert.deepEqual(info, metainfo.infoBytes);
  });
});

Deno.test("seedTorrent rejects the requests of a peer it chokes (BEP 6)", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/x.bin`, deterministicBytes(100_000, 4));
    const { metainfo } = await createTorrentFile(`${dir}/x.bin`, {
      out: `${dir}/x.torrent`,
      pieceLength: 16384,
    });
    await using seeder = await seedTorrent(metainfo, `${dir}/x.bin`, {
      port: 0,
      hostname: "127.0.0.1",
      uploadSlots: 1,
      saveResume: false,
    });
    const first = await RawPeer.connect(seeder.port, { infoHash: metainfo.infoHash, fast: true });
    const second = await RawPeer.connect(seeder.port, { infoHash: metainfo.infoHash, fast: true });
    try {
      await first.expect("have-all");
      await first.send({ type: "interested" });
      await first.expect("unchoke");
      await second.expect("have-all");
      await second.send(
        { type: "interested" },
        { type: "request", index: 0, begin: 0, length: 16384 },
      );
      const reply = await second.next();
      assert.deepEqual(reply, { type: "reject", index: 0, begin: 0, length: 16384 });
      // The unchoked peer is served.
      await first.send({ type: "request", index: 2, begin: 0, length: 16384 });
      const piece = await first.next();
      assert.ok(piece?.type === "piece");
      assert.deepEqual(piece.block, deterministicBytes(100_000, 4).subarray(32768, 49152));
    } finally {
      first.close();
      second.close();
    }
  });
});

Deno.test("a one-slot seeder and three leechers: all complete and the leechers trade", async () => {
  const data = deterministicBytes(4 * 1024 * 1024, 5);
  const { metainfo } = await createTorrent({ name: "swarm.bin", data }, { pieceLength: 16384 });
  const listeners: PeerListener[] = [];
  const torrents: Torrent[] = [];
  try {
    const source = new MemoryStorage(data.length);
    await source.write(0, data);
    const full = new Bitfield(metainfo.pieceCount);
    full.setAll();
    const seedListener = PeerListener.listen({ hostname: "127.0.0.1" });
    listeners.push(seedListener);
    const seeder = new Torrent({
      metainfo,
      storage: source,
      have: full,
      listener: seedListener,
      uploadSlots: 1,
      // Rotate the single slot quickly so that each leecher gets a different part first.
      rechokeIntervalMs: 100,
      tickMs: 50,
    });
    torrents.push(seeder);
    seeder.start();

    const leechers: { torrent: Torrent; storage: MemoryStorage; port: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const listener = PeerListener.listen({ hostname: "127.0.0.1" });
      listeners.push(listener);
      const storage = new MemoryStorage(data.length);
      const torrent = new Torrent({ metainfo, storage, listener, tickMs: 50 });
      torrents.push(torrent);
      leechers.push({ torrent, storage, port: listener.port });
    }
    // Leechers meet first (each dials the later ones), then all find the seeder.
    for (const [i, { torrent }] of leechers.entries()) {
      torrent.start();
      torrent.addPeers(
        leechers.slice(i + 1).map((other) => ({ host: "127.0.0.1", port: other.port })),
      );
    }
    while (leechers.some(({ torrent }) => torrent.stats().peersConnected < 2)) await delay(10);
    for (const { torrent } of leechers) {
      torrent.addPeers([{ host: "127.0.0.1", port: seedListener.port }]);
    }
    await Promise.all(leechers.map(({ torrent }) => torrent.done));
    for (const { storage } of leechers) assert.deepEqual(storage.bytes, data);

    const uploadedByLeechers = leechers.reduce((sum, l) => sum + l.torrent.stats().uploaded, 0);
    const uploadedBySeeder = seeder.stats().uploaded;
    assert.ok(uploadedByLeechers > 0, "leechers uploaded to each other");
    // Three copies went out, mostly from the leechers (measured: the seeder sent 1.1-1.5 copies).
    assert.ok(uploadedBySeeder < 2.5 * data.length, `seeder sent ${uploadedBySeeder}`);
    assert.ok(uploadedBySeeder + uploadedByLeechers >= 3 * data.length);
  } finally {
    for (const torrent of torrents) await torrent.close();
    for (const listener of listeners) await listener.close();
  }
});

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("seedTorrent keeps a peer that sends its bitfield after have-none (aria2 does)", async () => {
  await withTempDir(async (dir) => {
    const data = deterministicBytes(100_000, 6);
    await Deno.writeFile(`${dir}/x.bin`, data);
    const { metainfo } = await createTorrentFile(`${dir}/x.bin`, {
      out: `${dir}/x.torrent`,
      pieceLength: 16384,
    });
    await using seeder = await seedTorrent(metainfo, `${dir}/x.bin`, {
      port: 0,
      hostname: "127.0.0.1",
      saveResume: false,
    });
    const peer = await RawPeer.connect(seeder.port, { infoHash: metainfo.infoHash, fast: true });
    try {
      await peer.expect("have-all");
      await peer.send(
        { type: "have-none" },
        // Pieces 0 and 1 (7 pieces: one byte, spare bits zero).
        { type: "bitfield", bitfield: new Uint8Array([0b1100_0000]) },
        { type: "interested" },
      );
      await peer.expect("unchoke");
      await peer.send({ type: "request", index: 3, begin: 0, length: 16384 });
      const piece = await peer.next();
      assert.ok(piece?.type === "piece", "still connected and served");
      assert.deepEqual(piece.block, data.subarray(3 * 16384, 4 * 16384));
      assert.equal(seeder.torrent.peers()[0]?.piecesHave, 2);
    } finally {
      peer.close();
    }
  });
});
