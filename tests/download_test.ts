// End-to-end tests of `download`: the CLI as a subprocess (and `downloadTorrent` in process
// where engine events are needed) against real servers on loopback: HTTP and UDP trackers,
// our own serving peers holding parts of the torrent, and scripted misbehaving peers.
import assert from "node:assert/strict";
import { encode } from "../lib/bencode/mod.ts";
import { downloadTorrent } from "../lib/client/mod.ts";
import { createTorrent, type CreateTorrentFile, type Metainfo } from "../lib/metainfo/mod.ts";
import { parseMetainfo } from "../lib/metainfo/mod.ts";
import { currentBootId, loadResumeData, resumePathFor } from "../lib/torrent/mod.ts";
import { Bitfield } from "../lib/piece/mod.ts";
import { MemoryStorage } from "../lib/storage/mod.ts";
import { type ServedTorrent, serveTorrent, type TorrentEvent } from "../lib/torrent/mod.ts";
import { deterministicBytes, multiFileTorrent } from "./_helpers/fixtures.ts";
import { type HttpTracker, startHttpTracker } from "./_helpers/http_tracker.ts";
import { assertOneLineError, runCli } from "./_helpers/run_cli.ts";
import { SlowSeeder } from "./_helpers/hostile_peer.ts";
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

Deno.test("download stamps an unsynced resume file with the boot; --fsync saves a synced one", async () => {
  const fixture = await singleFile(100_000, 16384);
  try {
    await using seeder = await seed(fixture);
    for (const fsync of [false, true]) {
      const out = `${fixture.dir}/out-${fsync}.bin`;
      const result = await runCli([
        "download",
        "-o",
        out,
        "--port",
        "0",
        ...(fsync ? ["--fsync"] : []),
        ...peerArg(seeder.port),
        fixture.torrentPath,
      ]);
      assert.equal(result.code, 0, result.stderr);
      await assertOutput(fixture, out);
      const resume = await loadResumeData(resumePathFor(out));
      // Without --fsync the data is trusted only until the machine restarts (Linux), or
      // synced anyway where the boot cannot be told.
      assert.equal(resume?.bootId, fsync ? undefined : currentBootId());
      // Either way a re-run finds it all there and fetches nothing.
      const again = await runCli([
        "download",
        "-o",
        out,
        "--port",
        "0",
        "--json",
        ...peerArg(seeder.port),
        fixture.torrentPath,
      ]);
      assert.equal(again.code, 0, again.stderr);
      const done = again.stdout.trim().split("\n").map((line) => JSON.parse(line))
        .find((record) => record.type === "done");
      assert.equal(done?.downloaded, 0, again.stdout);
      assert.equal(done?.percent, 100);
    }
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

Deno.test("download fails over from a dead first tier to the next tiers", async (t) => {
  await t.step("refused first tier, UDP second tier, HTTP third", async () => {
    // A port nothing listens on: connection refused.
    const dead = (() => {
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
      const result = await runCli(["download", "-o", out, "--port", "0", fixture.torrentPath]);
      assert.equal(result.code, 0, result.stderr);
      await assertOutput(fixture, out);
      assert.deepEqual(eventsOf(http), ["started", "completed", "stopped"]);
      assert.deepEqual(udp.announces.map((a) => a.event), [2, 1, 3]);
      // The dead tracker is reported once, as a warning.
      const warnings = result.stderr.split("\n").filter((line) => line.startsWith("warning: "));
      assert.equal(warnings.length, 1, result.stderr);
      assert.match(warnings[0]!, new RegExp(dead.replaceAll(".", "\\.")));
    } finally {
      await Deno.remove(fixture.dir, { recursive: true });
    }
  });

  await t.step(
    "a first tier that never answers does not hold up the download or the exit",
    async () => {
      await using hung = await startHttpTracker();
      hung.setResponse({ hang: true });
      await using http = await startHttpTracker();
      const fixture = await singleFile(50_000, 16384, [[hung.url], [http.url]]);
      try {
        await using seeder = await seed(fixture);
        http.setPeers(fixture.metainfo.infoHash, [{ host: LOOPBACK, port: seeder.port }]);
        const out = `${fixture.dir}/out.bin`;
        const started = performance.now();
        const result = await runCli([
          "download",
          "-q",
          "-o",
          out,
          "--port",
          "0",
          fixture.torrentPath,
        ]);
        const elapsed = performance.now() - started;
        assert.equal(result.code, 0, result.stderr);
        await assertOutput(fixture, out);
        assert.deepEqual(eventsOf(http), ["started", "completed", "stopped"]);
        assert.equal(hung.announces[0]?.event, "started");
        assert.ok(elapsed < 4_000, `took ${elapsed} ms`);
      } finally {
        await Deno.remove(fixture.dir, { recursive: true });
      }
    },
  );
});

/** Runs `downloadTorrent` in process into `<dir>/out`, collecting engine events. */
async function downloadInProcess(
  fixture: Fixture,
  options: Parameters<typeof downloadTorrent>[1] = {},
) {
  const events: TorrentEvent[] = [];
  const out = `${fixture.dir}/out`;
  const result = await downloadTorrent(fixture.metainfo, {
    out,
    port: 0,
    hostname: LOOPBACK,
    useTrackers: false,
    onEvent: (event) => events.push(event),
    ...options,
  });
  return { result, events, out };
}

function scriptedTorrent(metainfo: Metainfo) {
  const { infoHash, pieceLength, pieceCount, totalLength } = metainfo;
  return { infoHash, pieceLength, pieceCount, totalLength };
}

Deno.test("downloadTorrent's progress reports a download rate from the first report on", async () => {
  // About 2.5 s at 300 KB/s: two or three reports while the download runs.
  const fixture = await singleFile(48 * 16384, 65536);
  try {
    await using seeder = new SlowSeeder({
      geometry: fixture.metainfo,
      data: fixture.data,
      bytesPerSecond: 300_000,
    });
    const reports: { downloaded: number; downloadRate: number; complete: boolean }[] = [];
    const { result } = await downloadInProcess(fixture, {
      peers: [seeder.address],
      onProgress: ({ downloaded, downloadRate, complete }) =>
        reports.push({ downloaded, downloadRate, complete }),
    });
    assert.equal(result.complete, true);
    const running = reports.filter((r) => !r.complete);
    assert.ok(running.length >= 1, `${running.length} reports while downloading`);
    // Each report of a running download, the first included, comes after the sessions' rates
    // were measured: bytes arrived, so the rate is not 0.
    for (const report of running) {
      assert.ok(report.downloaded > 0);
      assert.ok(report.downloadRate > 0, `report ${JSON.stringify(report)}`);
    }
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("downloadTorrent re-fetches pieces a corrupting peer sent and bans it", async () => {
  const fixture = await singleFile(40 * 16384, 16384);
  try {
    // It unchokes at once, so it gets requests before the honest seeder does.
    await using liar = new ScriptedSeeder({
      torrent: scriptedTorrent(fixture.metainfo),
      data: fixture.data,
      corruptPieces: [...Array(fixture.metainfo.pieceCount).keys()],
    });
    await using honest = await seed(fixture);
    const { result, events, out } = await downloadInProcess(fixture, {
      peers: [liar.address, { host: LOOPBACK, port: honest.port }],
    });
    assert.equal(result.complete, true);
    await assertOutput(fixture, out);
    assert.ok(liar.blocksServed > 0, "the liar served blocks");
    assert.ok(events.some((e) => e.type === "piece-failed"));
    const bans = events.filter((e) => e.type === "peer-banned");
    assert.equal(bans.length, 1);
    assert.equal(bans[0]!.type === "peer-banned" && bans[0]!.address.port, liar.port);
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("downloadTorrent completes when a peer drops the connection mid-piece", async () => {
  // 64 KiB pieces of four blocks: the drop after three blocks leaves a piece half done.
  const fixture = await singleFile(10 * 65536 - 5000, 65536);
  try {
    await using dropper = new ScriptedSeeder({
      torrent: scriptedTorrent(fixture.metainfo),
      data: fixture.data,
      dropAfterBlocks: 3,
    });
    await using honest = await seed(fixture);
    const { result, events, out } = await downloadInProcess(fixture, {
      peers: [dropper.address, { host: LOOPBACK, port: honest.port }],
    });
    assert.equal(result.complete, true);
    await assertOutput(fixture, out);
    assert.ok(dropper.blocksServed >= 3);
    assert.ok(
      events.some((e) => e.type === "peer-disconnected" && e.address.port === dropper.port),
    );
    assert.ok(!events.some((e) => e.type === "piece-failed"));
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("downloadTorrent completes from a lone peer that chokes mid-transfer", async () => {
  const fixture = await singleFile(12 * 16384, 16384);
  try {
    await using choker = new ScriptedSeeder({
      torrent: scriptedTorrent(fixture.metainfo),
      data: fixture.data,
      chokeAfterBlocks: 4,
      unchokeAfterMs: 300,
    });
    const { result, out } = await downloadInProcess(fixture, { peers: [choker.address] });
    assert.equal(result.complete, true);
    await assertOutput(fixture, out);
    // Requests dropped by the choke were sent again after the unchoke.
    assert.ok(choker.requests.length > fixture.metainfo.pieceCount, choker.requests.join());
    assert.equal(choker.connections, 1);
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("downloadTorrent completes past a silent peer that never answers requests", async () => {
  const fixture = await singleFile(24 * 16384, 16384);
  try {
    await using silent = new ScriptedSeeder({
      torrent: scriptedTorrent(fixture.metainfo),
      data: fixture.data,
      silent: true,
    });
    await using honest = await seed(fixture);
    const started = performance.now();
    const { result, out } = await downloadInProcess(fixture, {
      peers: [silent.address, { host: LOOPBACK, port: honest.port }],
    });
    assert.equal(result.complete, true);
    await assertOutput(fixture, out);
    assert.ok(silent.requests.length > 0, "the silent peer held requests");
    assert.ok(performance.now() - started < 10_000, "not stuck on the silent peer");
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("downloadTorrent re-announces at the tracker's interval and uses the new peers", async () => {
  await using tracker = await startHttpTracker({ interval: 1 });
  const fixture = await singleFile(8 * 16384, 16384, tracker.url);
  try {
    await using seeder = await seed(fixture);
    // The first answer has no peers; the seeder shows up for the re-announce.
    tracker.setResponse((announce) => {
      if (announce.event !== "started") {
        tracker.setPeers(fixture.metainfo.infoHash, [{ host: LOOPBACK, port: seeder.port }]);
      }
      return { swarm: true };
    });
    const started = performance.now();
    const { result, out } = await downloadInProcess(fixture, {
      useTrackers: true,
      minAnnounceIntervalMs: 0,
    });
    assert.equal(result.complete, true);
    await assertOutput(fixture, out);
    assert.ok(performance.now() - started >= 900, "waited for the interval");
    assert.deepEqual(eventsOf(tracker), ["started", "", "completed", "stopped"]);
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("downloadTorrent out of peers asks the trackers again before the interval", async () => {
  // A 30-minute interval: only the starvation check can bring the re-announce forward.
  await using tracker = await startHttpTracker({ interval: 1800 });
  const fixture = await singleFile(4 * 16384, 16384, tracker.url);
  try {
    await using seeder = await seed(fixture);
    tracker.setResponse((announce) => {
      if (announce.event !== "started") {
        tracker.setPeers(fixture.metainfo.infoHash, [{ host: LOOPBACK, port: seeder.port }]);
      }
      return { swarm: true };
    });
    const { result, out } = await downloadInProcess(fixture, {
      useTrackers: true,
      minAnnounceIntervalMs: 500,
    });
    assert.equal(result.complete, true);
    await assertOutput(fixture, out);
    assert.deepEqual(eventsOf(tracker), ["started", "", "completed", "stopped"]);
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

/** Waits until `condition()` holds, polling every 20 ms, for at most `ms`. */
async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Spawns the CLI, waits for `ready()`, sends `signal`, and collects the output. */
async function interruptCli(
  args: string[],
  ready: () => boolean,
  signal: Deno.Signal,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let notReady: unknown;
  try {
    await waitFor(ready, 10_000, "the transfer to reach the interruption point");
    // Leaves the last block a moment to be verified and written.
    await new Promise((resolve) => setTimeout(resolve, 200));
  } catch (error) {
    notReady = error;
  }
  try {
    child.kill(signal);
  } catch (error) {
    // Already exited: the assertions on its output tell why.
    if (!(error instanceof TypeError)) throw error;
  }
  const output = await child.output();
  if (notReady !== undefined) {
    throw new Error(`${notReady}: ${new TextDecoder().decode(output.stderr)}`, {
      cause: notReady,
    });
  }
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("download interrupted by SIGINT, then SIGTERM, keeps its data; a re-run fetches only the rest", async () => {
  await using tracker = await startHttpTracker();
  // 32 KiB pieces of two blocks each.
  const fixture = await singleFile(10 * 32768 - 1234, 32768, tracker.url);
  const { pieceLength, pieceCount } = fixture.metainfo;
  const pieceBytes = (index: number) =>
    Math.min(pieceLength, fixture.data.length - index * pieceLength);
  try {
    const out = `${fixture.dir}/out.bin`;
    const args = ["download", "-o", out, "--port", "0", fixture.torrentPath];
    const stoppedWith =
      /^error: Stopped with (\d+) of 10 pieces verified in ".*out\.bin": run the same command again to resume$/;
    let verified: number;
    {
      // One peer has pieces 0-5; the other has 6-9 but chokes for good after three blocks,
      // so the run is cut with requests in flight and a piece half received.
      await using partial = await seed(fixture, [0, 1, 2, 3, 4, 5]);
      await using stingy = new ScriptedSeeder({
        torrent: scriptedTorrent(fixture.metainfo),
        data: fixture.data,
        pieces: [6, 7, 8, 9],
        chokeAfterBlocks: 3,
        unchokeAfterMs: 600_000,
      });
      tracker.setPeers(fixture.metainfo.infoHash, [
        { host: LOOPBACK, port: partial.port },
        stingy.address,
      ]);
      const result = await interruptCli(
        args,
        () => partial.torrent.stats().uploaded >= 6 * pieceLength && stingy.blocksServed >= 3,
        "SIGINT",
      );
      assertOneLineError(result, 1, stoppedWith);
      verified = Number(result.stderr.match(/Stopped with (\d+)/)![1]);
      assert.ok(verified === 6 || verified === 7, result.stderr);
      assert.equal(result.stdout, "");
      assert.deepEqual(eventsOf(tracker), ["started", "stopped"]);
      assert.ok((await Deno.stat(`${fixture.dir}/.out.bin.dtresume`)).isFile);
      const partialBytes = await Deno.readFile(out);
      assert.deepEqual(
        partialBytes.subarray(0, 6 * pieceLength),
        fixture.data.subarray(0, 6 * pieceLength),
      );

      // A second run resumes from the resume file, finds nothing new, and is terminated.
      await stingy.close();
      tracker.setPeers(fixture.metainfo.infoHash, [{ host: LOOPBACK, port: partial.port }]);
      const second = await interruptCli(
        args,
        () => tracker.announces.length >= 3,
        "SIGTERM",
      );
      assertOneLineError(second, 1, stoppedWith);
      assert.equal(Number(second.stderr.match(/Stopped with (\d+)/)![1]), verified);
      assert.deepEqual(eventsOf(tracker), ["started", "stopped", "started", "stopped"]);
    }

    await using full = await seed(fixture);
    tracker.setPeers(fixture.metainfo.infoHash, [{ host: LOOPBACK, port: full.port }]);
    const result = await runCli(args);
    assert.equal(result.code, 0, result.stderr);
    await assertOutput(fixture, out);
    // Only the missing pieces were served, each once.
    const have = new Set(Array.from({ length: pieceCount }, (_, i) => i).slice(0, 6));
    let missing = fixture.data.length;
    for (const index of have) missing -= pieceBytes(index);
    if (verified === 7) {
      // The piece that completed in the first run is not fetched again either.
      assert.ok(full.torrent.stats().uploaded < missing);
      assert.ok(missing - full.torrent.stats().uploaded <= pieceLength);
    } else {
      assert.equal(full.torrent.stats().uploaded, missing);
    }
    assert.deepEqual(eventsOf(tracker).slice(4), ["started", "completed", "stopped"]);
    assert.equal(tracker.announces[4]!.left, full.torrent.stats().uploaded);

    // A third run has nothing to fetch: it finishes from the resume file at once.
    const uploaded = full.torrent.stats().uploaded;
    const again = await runCli([
      "download",
      "-q",
      "--no-trackers",
      "-o",
      out,
      "--port",
      "0",
      fixture.torrentPath,
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(full.torrent.stats().uploaded, uploaded);
    await assertOutput(fixture, out);
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("download --seed serves the finished torrent to others until interrupted", async () => {
  await using tracker = await startHttpTracker();
  const fixture = await singleFile(6 * 16384 + 99, 16384, tracker.url);
  try {
    const out = `${fixture.dir}/out.bin`;
    const args = ["download", "-q", "--seed", "-o", out, "--port", "0", fixture.torrentPath];
    const leecherOut = `${fixture.dir}/leecher.bin`;
    const seeder = await seed(fixture);
    tracker.setPeers(fixture.metainfo.infoHash, [{ host: LOOPBACK, port: seeder.port }]);
    let leeching: Promise<unknown> | undefined;
    let leeched = false;
    const startLeecher = () => {
      // The original seeder leaves: the CLI is the only source now.
      const cliPort = tracker.announces[0]!.port;
      leeching = seeder.close()
        .then(() =>
          downloadInProcess(fixture, {
            out: leecherOut,
            peers: [{ host: LOOPBACK, port: cliPort }],
          })
        )
        .then(() => leeched = true);
    };
    let result;
    try {
      result = await interruptCli(args, () => {
        if (leeching === undefined && eventsOf(tracker).includes("completed")) startLeecher();
        return leeched;
      }, "SIGINT");
    } finally {
      await seeder.close();
      await leeching;
    }
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `Downloaded ${fixture.torrentPath} to ${out}.\n`);
    await assertOutput(fixture, out);
    await assertOutput(fixture, leecherOut);
    assert.deepEqual(eventsOf(tracker), ["started", "completed", "stopped"]);
    assert.ok(tracker.announces[2]!.uploaded >= fixture.data.length, "uploaded reported");
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

Deno.test("download rechecks a partial output without a resume file and fetches only what is missing", async () => {
  const fixture = await singleFile(10 * 16384, 16384);
  const pieceLength = fixture.metainfo.pieceLength;
  try {
    // Pieces 0-4 present, but one byte of piece 2 is wrong; 5-9 absent (file shorter).
    const present = fixture.data.slice(0, 5 * pieceLength);
    present[2 * pieceLength + 77]! ^= 1;
    const out = `${fixture.dir}/out.bin`;
    await Deno.writeFile(out, present);
    await using seeder = new ScriptedSeeder({
      torrent: scriptedTorrent(fixture.metainfo),
      data: fixture.data,
    });
    const result = await runCli([
      "download",
      "-q",
      "-o",
      out,
      "--port",
      "0",
      "--peer",
      `${LOOPBACK}:${seeder.port}`,
      fixture.torrentPath,
    ]);
    assert.equal(result.code, 0, result.stderr);
    await assertOutput(fixture, out);
    const pieces = [...new Set(seeder.requests.map((r) => Number(r.split(":")[0])))].sort((a, b) =>
      a - b
    );
    assert.deepEqual(pieces, [2, 5, 6, 7, 8, 9]);
  } finally {
    await Deno.remove(fixture.dir, { recursive: true });
  }
});

/** Every path under `dir`, relative, sorted (directories end in "/"). */
async function tree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) out.push(`${path}/`, ...await tree(dir, `${path}/`));
    else out.push(path);
  }
  return out.sort();
}

/** A raw v1 torrent of `files` (paths as given, unchecked) with correct piece hashes. */
async function rawTorrent(
  name: string,
  files: { path: string[]; data: Uint8Array }[],
  pieceLength: number,
): Promise<{ torrent: Uint8Array; data: Uint8Array }> {
  const data = new Uint8Array(files.reduce((n, f) => n + f.data.length, 0));
  let at = 0;
  for (const file of files) {
    data.set(file.data, at);
    at += file.data.length;
  }
  const hashes = new Uint8Array(Math.ceil(data.length / pieceLength) * 20);
  for (let i = 0; i * pieceLength < data.length; i++) {
    const piece = data.subarray(i * pieceLength, (i + 1) * pieceLength);
    hashes.set(new Uint8Array(await crypto.subtle.digest("SHA-1", piece)), i * 20);
  }
  const torrent = encode({
    info: {
      name,
      "piece length": pieceLength,
      pieces: hashes,
      files: files.map((file) => ({ length: file.data.length, path: file.path })),
    },
  });
  return { torrent, data };
}

Deno.test("download never writes outside the output directory", async (t) => {
  await t.step("paths parseMetainfo rejects fail with one line and write nothing", async () => {
    const dir = await Deno.makeTempDir({ prefix: "dt-download-" });
    try {
      await Deno.mkdir(`${dir}/work`);
      const cases: [string, string[]][] = [
        ["top", ["..", "..", "evil.txt"]],
        ["top", ["/etc", "evil.txt"]],
        ["top", ["sub/../../evil.txt"]],
        ["..", ["evil.txt"]],
        ["../evil", ["x"]],
      ];
      for (const [name, path] of cases) {
        const { torrent } = await rawTorrent(name, [{ path, data: new Uint8Array(3) }], 16);
        await Deno.writeFile(`${dir}/work/t.torrent`, torrent);
        const result = await runCli(
          ["download", "-q", "--no-trackers", "--port", "0", "t.torrent"],
          {
            cwd: `${dir}/work`,
          },
        );
        assertOneLineError(
          result,
          1,
          /^error: Invalid torrent: info\.(name|files\[0\]\.path\[\d\]) /,
        );
        assert.deepEqual(await tree(dir), ["work/", "work/t.torrent"]);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("names that reach the sanitiser land inside the output", async () => {
    const dir = await Deno.makeTempDir({ prefix: "dt-download-" });
    try {
      await Deno.mkdir(`${dir}/work`);
      const files = [
        { path: ["..foo"], data: deterministicBytes(10, 1) },
        { path: ["a:b"], data: deterministicBytes(5, 2) },
        { path: ["x\u0001y", "CON"], data: deterministicBytes(7, 3) },
        { path: ["trail. "], data: new Uint8Array(0) },
        { path: ["...", "~"], data: deterministicBytes(3, 4) },
      ];
      const { torrent, data } = await rawTorrent("...", files, 8);
      await Deno.writeFile(`${dir}/work/t.torrent`, torrent);
      const metainfo = parseMetainfo(torrent);
      const storage = new MemoryStorage(data.length);
      await storage.write(0, data);
      await using seeder = await serveTorrent({ metainfo, storage, hostname: LOOPBACK });
      const result = await runCli(
        ["download", "-q", "--no-trackers", "--port", "0", ...peerArg(seeder.port), "t.torrent"],
        { cwd: `${dir}/work` },
      );
      assert.equal(result.code, 0, result.stderr);
      // The name "..." has only trailing dots: it becomes "_".
      assert.equal(result.stdout, "Downloaded t.torrent to _.\n");
      assert.deepEqual(await tree(dir), [
        "work/",
        "work/._.dtresume",
        "work/_/",
        "work/_/..foo",
        "work/_/_/",
        "work/_/_/~",
        "work/_/a_b",
        "work/_/trail",
        "work/_/x_y/",
        "work/_/x_y/CON_",
        "work/t.torrent",
      ]);
      assert.deepEqual(await Deno.readFile(`${dir}/work/_/..foo`), files[0]!.data);
      assert.deepEqual(await Deno.readFile(`${dir}/work/_/x_y/CON_`), files[2]!.data);
      assert.equal((await Deno.stat(`${dir}/work/_/trail`)).size, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
