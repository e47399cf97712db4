// End-to-end tests of `download`: the CLI as a subprocess (and `downloadTorrent` in process
// where engine events are needed) against real servers on loopback: HTTP and UDP trackers,
// our own serving peers holding parts of the torrent, and scripted misbehaving peers.
import assert from "node:assert/strict";
import { encode } from "../lib/bencode/mod.ts";
import { downloadTorrent } from "../lib/client/mod.ts";
import { createTorrent, type CreateTorrentFile, type Metainfo } from "../lib/metainfo/mod.ts";
import { parseMetainfo } from "../lib/metainfo/mod.ts";
import { Bitfield } from "../lib/piece/mod.ts";
import { MemoryStorage } from "../lib/storage/mod.ts";
import { type ServedTorrent, serveTorrent, type TorrentEvent } from "../lib/torrent/mod.ts";
import { deterministicBytes, multiFileTorrent } from "./_helpers/fixtures.ts";
import { type HttpTracker, startHttpTracker } from "./_helpers/http_tracker.ts";
import { assertOneLineError, runCli } from "./_helpers/run_cli.ts";
import { ScriptedSeeder } from "./_helpers/scripted_peer.ts";
import { startUdpTracker } from "./_helpers/udp_tracker.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const LOOPBACK = "127.0.0.1";

/** A torrent plus its content, written as `<dir>/t.torrent`. */
interface Fixture {
  dir: string;
  torrentPath: string;
  metainfo: Metainfo;
  data: Uint8Array;
  files: CreateTorrentFile[];
}

/** Builds a single-file torrent of `length` deterministic bytes in a fresh temp dir. */
async function singleFile(
  length: number,
  pieceLength: number,
  announce?: string | string[][],
): Promise<Fixture> {
  const data = deterministicBytes(length, length);
  const { torrent, metainfo } = await createTorrent({ name: "payload.bin", data }, {
    pieceLength,
    ...(announce ? { announce } : {}),
  });
  const dir = await Deno.makeTempDir({ prefix: "dt-download-" });
  await Deno.writeFile(`${dir}/t.torrent`, torrent);
  return {
    dir,
    torrentPath: `${dir}/t.torrent`,
    metainfo,
    data,
    files: [{ path: ["payload.bin"], data }],
  };
}

/**
 * A multi-file torrent whose files fall inside pieces: with 16 KiB pieces, piece 1 spans
 * `b/one.bin`, the empty `b/zero.dat` and `c.txt` (three files and a zero-length one).
 */
async function multiFile(announce?: string | string[][]): Promise<Fixture> {
  const files: CreateTorrentFile[] = [
    { path: ["a.bin"], data: deterministicBytes(20_000, 1) }, // 0..20000 (pieces 0-1)
    { path: ["b", "one.bin"], data: deterministicBytes(5_000, 2) }, // 20000..25000 (piece 1)
    { path: ["b", "zero.dat"], data: new Uint8Array(0) }, // 25000 (piece 1)
    { path: ["c.txt"], data: deterministicBytes(30_000, 3) }, // 25000..55000 (pieces 1-3)
    { path: ["d", "e", "f.bin"], data: deterministicBytes(12_345, 4) }, // 55000..67345 (3-4)
  ];
  const { torrent, metainfo } = await createTorrent({ name: "album", files }, {
    pieceLength: 16384,
    ...(announce ? { announce } : {}),
  });
  const dir = await Deno.makeTempDir({ prefix: "dt-download-" });
  await Deno.writeFile(`${dir}/t.torrent`, torrent);
  const data = new Uint8Array(files.reduce((sum, file) => sum + file.data.length, 0));
  let offset = 0;
  for (const file of files) {
    data.set(file.data, offset);
    offset += file.data.length;
  }
  return { dir, torrentPath: `${dir}/t.torrent`, metainfo, data, files };
}

/** Serves `pieces` (all by default) of the fixture from memory on 127.0.0.1. */
async function seed(fixture: Fixture, pieces?: readonly number[]): Promise<ServedTorrent> {
  const { metainfo, data } = fixture;
  const storage = new MemoryStorage(data.length);
  await storage.write(0, data);
  const have = new Bitfield(metainfo.pieceCount);
  for (const index of pieces ?? Array.from({ length: metainfo.pieceCount }, (_, i) => i)) {
    have.set(index);
  }
  return await serveTorrent({ metainfo, storage, have, hostname: LOOPBACK });
}

function peerArg(port: number): string[] {
  return ["--peer", `${LOOPBACK}:${port}`];
}

/** Asserts every file of the fixture is at `out` (the file, or the top dir) byte for byte. */
async function assertOutput(fixture: Fixture, out: string): Promise<void> {
  if (!fixture.metainfo.multiFile) {
    assert.deepEqual(await Deno.readFile(out), fixture.data);
    return;
  }
  for (const file of fixture.files) {
    const path = `${out}/${file.path.join("/")}`;
    assert.deepEqual(await Deno.readFile(path), file.data, path);
  }
}

function eventsOf(tracker: HttpTracker): string[] {
  return tracker.announces.map((announce) => announce.event ?? "");
}

Deno.test("download writes a single-file torrent to -o from a --peer", async () => {
  const fixture = await singleFile(100_000, 16384);
  try {
    await using seeder = await seed(fixture);
    const out = `${fixture.dir}/out.bin`;
    const result = await runCli([
      "download",
      "-o",
      out,
      "--port",
      "0",
      ...peerArg(seeder.port),
      fixture.torrentPath,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `Downloaded ${fixture.torrentPath} to ${out}.\n`);
    assert.doesNotMatch(result.stderr, /\r/, "no redraws without a terminal");
    await assertOutput(fixture, out);
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("download writes a multi-file torrent under -o, a piece spanning three files and an empty one", async () => {
  const fixture = await multiFile();
  try {
    await using seeder = await seed(fixture);
    const out = `${fixture.dir}/top`;
    const result = await runCli([
      "download",
      "--quiet",
      "-o",
      out,
      "--port",
      "0",
      ...peerArg(seeder.port),
      fixture.torrentPath,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "", "--quiet prints nothing on stderr");
    assert.equal(result.stdout, `Downloaded ${fixture.torrentPath} to ${out}.\n`);
    await assertOutput(fixture, out);
    assert.equal((await Deno.stat(`${out}/b/zero.dat`)).size, 0);
    const names = [];
    for await (const entry of Deno.readDir(out)) names.push(entry.name);
    assert.deepEqual(names.sort(), ["a.bin", "b", "c.txt", "d"]);
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("download without -o writes the torrent's name in the current directory", async (t) => {
  await t.step("tiny multi-file torrent, 8-byte pieces, a piece over three files", async () => {
    const { torrent, metainfo, files } = await multiFileTorrent();
    const dir = await Deno.makeTempDir({ prefix: "dt-download-" });
    try {
      await Deno.writeFile(`${dir}/t.torrent`, torrent);
      const data = new Uint8Array(files.reduce((n, f) => n + f.data.length, 0));
      let at = 0;
      for (const file of files) {
        data.set(file.data, at);
        at += file.data.length;
      }
      const fixture = { dir, torrentPath: `${dir}/t.torrent`, metainfo, data, files };
      await using seeder = await seed(fixture);
      const result = await runCli(
        ["download", "-q", "--no-trackers", "--port", "0", ...peerArg(seeder.port), "t.torrent"],
        { cwd: dir },
      );
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "Downloaded t.torrent to multi.\n");
      await assertOutput(fixture, `${dir}/multi`);
      assert.equal((await Deno.stat(`${dir}/multi/empty.dat`)).size, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
  await t.step("single file", async () => {
    const fixture = await singleFile(40_000, 16384);
    try {
      await using seeder = await seed(fixture);
      const result = await runCli(
        ["download", "-q", "--port", "0", ...peerArg(seeder.port), "t.torrent"],
        { cwd: fixture.dir },
      );
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "Downloaded t.torrent to payload.bin.\n");
      await assertOutput(fixture, `${fixture.dir}/payload.bin`);
    } finally {
      await Deno.remove(fixture.dir, { recursive: true });
    }
  });
});

Deno.test("download finds a swarm of partial peers through an HTTP tracker; --json; events", async () => {
  await using tracker = await startHttpTracker();
  const fixture = await singleFile(12 * 16384 - 100, 16384, tracker.url);
  try {
    // Three peers each holding a third of the pieces; none has them all.
    const seeders = await Promise.all(
      [0, 1, 2].map((k) =>
        seed(fixture, [...Array(fixture.metainfo.pieceCount).keys()].filter((i) => i % 3 === k))
      ),
    );
    try {
      tracker.setPeers(
        fixture.metainfo.infoHash,
        seeders.map((s) => ({ host: LOOPBACK, port: s.port })),
      );
      const out = `${fixture.dir}/out.bin`;
      const result = await runCli([
        "download",
        "--json",
        "-o",
        out,
        "--port",
        "0",
        fixture.torrentPath,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, "");
      const lines = result.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
      assert.ok(lines.length >= 1);
      const last = lines.at(-1)!;
      assert.equal(last.type, "done");
      assert.equal(last.verifiedBytes, fixture.data.length);
      assert.equal(last.piecesDone, fixture.metainfo.pieceCount);
      await assertOutput(fixture, out);
      for (const seeder of seeders) assert.ok(seeder.torrent.stats().uploaded > 0);
      assert.deepEqual(eventsOf(tracker), ["started", "completed", "stopped"]);
      const [started, completed, stopped] = tracker.announces;
      assert.equal(started!.left, fixture.data.length);
      assert.equal(completed!.left, 0);
      assert.ok(completed!.downloaded >= fixture.data.length);
      assert.equal(stopped!.left, 0);
    } finally {
      for (const seeder of seeders) await seeder.close();
    }
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("download over a UDP tracker sends started, completed and stopped", async () => {
  await using tracker = await startUdpTracker();
  const fixture = await multiFile(tracker.url);
  try {
    await using seeder = await seed(fixture);
    tracker.setPeers(fixture.metainfo.infoHash, [{ host: LOOPBACK, port: seeder.port }]);
    const out = `${fixture.dir}/top`;
    const result = await runCli(["download", "-q", "-o", out, "--port", "0", fixture.torrentPath]);
    assert.equal(result.code, 0, result.stderr);
    await assertOutput(fixture, out);
    // BEP 15 events: 2 started, 1 completed, 3 stopped.
    assert.deepEqual(tracker.announces.map((a) => a.event), [2, 1, 3]);
    assert.equal(tracker.announces[0]!.left, BigInt(fixture.data.length));
    assert.equal(tracker.announces[2]!.left, 0n);
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("download fails over from a dead first tier to the next tiers", async () => {
  // A port nothing listens on: connection refused.
  const dead = await (async () => {
    const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
    const port = listener.addr.port;
    listener.close();
    return `http://${LOOPBACK}:${port}/announce`;
  })();
  await using udp = await startUdpTracker();
  await using http = await startHttpTracker();
  const fixture = await singleFile(50_000, 16384, [[dead], [udp.url], [http.url]]);
  try {
    await using seeder = await seed(fixture);
    // Only the last tier knows the seeder.
    http.setPeers(fixture.metainfo.infoHash, [{ host: LOOPBACK, port: seeder.port }]);
    const out = `${fixture.dir}/out.bin`;
    const result = await runCli(["download", "-q", "-o", out, "--port", "0", fixture.torrentPath]);
    assert.equal(result.code, 0, result.stderr);
    await assertOutput(fixture, out);
    assert.deepEqual(eventsOf(http), ["started", "completed", "stopped"]);
    assert.deepEqual(udp.announces.map((a) => a.event), [2, 1, 3]);
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});
