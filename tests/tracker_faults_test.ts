/**
 * Tracker faults end to end: the CLI `download` with trackers that answer HTTP 500, garbage, a
 * redirect loop, or nothing at all, and one whose host does not resolve. Each failure is one
 * clear warning line; the download carries on with the other sources (a working tracker in
 * another tier or in the same tier, or a `--peer`), and a download with no working source at
 * all keeps retrying until stopped, then says how to resume.
 */
import assert from "node:assert/strict";
import { createTorrent, type Metainfo } from "../lib/metainfo/mod.ts";
import { MemoryStorage } from "../lib/storage/mod.ts";
import { serveTorrent } from "../lib/torrent/mod.ts";
import { deterministicBytes } from "./_helpers/fixtures.ts";
import {
  type HttpTracker,
  type HttpTrackerReply,
  startHttpTracker,
} from "./_helpers/http_tracker.ts";
import { sleep } from "./_helpers/hostile_peer.ts";
import { assertOneLineError, type CliResult, runCli } from "./_helpers/run_cli.ts";

const DNS_FAILURE = "http://nonexistent.invalid/announce";

interface Faults extends AsyncDisposable {
  /** URL of each faulty tracker, by fault name. */
  urls: Record<string, string>;
  trackers: HttpTracker[];
}

const FAULTS: [string, HttpTrackerReply][] = [
  ["http 500", { status: 500 }],
  ["garbage", { garbage: true }],
  ["redirect loop", { redirectLoop: true }],
  ["hang", { hang: true }],
];

async function startFaults(): Promise<Faults> {
  const trackers: HttpTracker[] = [];
  const urls: Record<string, string> = { "dns failure": DNS_FAILURE };
  for (const [name, reply] of FAULTS) {
    const tracker = await startHttpTracker();
    tracker.setResponse(reply);
    trackers.push(tracker);
    urls[name] = tracker.url;
  }
  return {
    urls,
    trackers,
    async [Symbol.asyncDispose]() {
      await Promise.all(trackers.map((tracker) => tracker.close()));
    },
  };
}

/** A torrent announcing to `announce` (BEP 12 tiers), with a seeder serving it on loopback. */
async function seeded(dir: string, announce: string[][]) {
  const data = deterministicBytes(300_000, 17);
  const { metainfo, torrent } = await createTorrent({ name: "data.bin", data }, {
    pieceLength: 32768,
    announce,
  });
  await Deno.writeFile(`${dir}/t.torrent`, torrent);
  const storage = new MemoryStorage(data.length);
  await storage.write(0, data);
  const seeder = await serveTorrent({ metainfo, storage, hostname: "127.0.0.1" });
  return { data, metainfo, seeder, torrentPath: `${dir}/t.torrent` };
}

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "tracker_faults_" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

/** The `warning: ...` lines of a run that name each URL. */
function warnings(result: CliResult, urls: Iterable<string>): Map<string, string[]> {
  const lines = result.stderr.split("\n").filter((line) => line.startsWith("warning: "));
  const byUrl = new Map<string, string[]>();
  for (const url of urls) {
    const mine = lines.filter((line) => line.includes(url));
    if (mine.length > 0) byUrl.set(url, mine);
  }
  return byUrl;
}

function assertNoStack(result: CliResult): void {
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
  assert.doesNotMatch(result.stderr, /Uncaught|panicked/);
}

const EXPECTED: Record<string, RegExp> = {
  "http 500": /500/,
  "garbage": /bencode|parse|invalid/i,
  "redirect loop": /redirect/i,
  "dns failure": /fetch failed: dns error: failed to lookup address/,
};

Deno.test("tracker faults: each bad tracker is one warning, and --peer still completes", async (t) => {
  await using faults = await startFaults();
  for (const [name, url] of Object.entries(faults.urls)) {
    await t.step(name, async () => {
      await using dir = await tempDir();
      const { data, seeder, torrentPath } = await seeded(dir.path, [[url]]);
      await using _seeder = seeder;
      const started = performance.now();
      const result = await runCli([
        "download",
        "--port",
        "0",
        "--peer",
        `127.0.0.1:${seeder.port}`,
        "-o",
        `${dir.path}/out.bin`,
        torrentPath,
      ], { signal: AbortSignal.timeout(30_000) });
      const elapsed = performance.now() - started;
      assert.equal(result.code, 0, result.stderr);
      assertNoStack(result);
      assert.deepEqual(await Deno.readFile(`${dir.path}/out.bin`), data);
      // A hanging tracker must not hold up the end: `stopped` has a deadline.
      assert.ok(elapsed < 12_000, `took ${elapsed} ms`);
      if (name !== "hang") {
        const lines = warnings(result, [url]).get(url) ?? [];
        assert.ok(lines.length >= 1, `a warning for ${url}:\n${result.stderr}`);
        assert.match(lines[0]!, EXPECTED[name]!);
      }
    });
  }
});

Deno.test("tracker faults: faulty tiers beside a working one still find the seeder", async () => {
  await using faults = await startFaults();
  await using good = await startHttpTracker();
  await using dir = await tempDir();
  const tiers = [...Object.values(faults.urls).map((url) => [url]), [good.url]];
  const { data, metainfo, seeder, torrentPath } = await seeded(dir.path, tiers);
  await using _seeder = seeder;
  good.setPeers(metainfo.infoHash, [{ host: "127.0.0.1", port: seeder.port }]);
  const result = await runCli(
    ["download", "--port", "0", "-o", `${dir.path}/out.bin`, torrentPath],
    { signal: AbortSignal.timeout(30_000) },
  );
  assert.equal(result.code, 0, result.stderr);
  assertNoStack(result);
  assert.deepEqual(await Deno.readFile(`${dir.path}/out.bin`), data);
  assert.ok(good.announces.length >= 1);
  for (const name of ["http 500", "garbage", "redirect loop"]) {
    const url = faults.urls[name]!;
    assert.ok(warnings(result, [url]).has(url), `${name} warned:\n${result.stderr}`);
  }
});

Deno.test("tracker faults: failover inside one tier reaches the working tracker", async () => {
  await using faults = await startFaults();
  await using good = await startHttpTracker();
  await using dir = await tempDir();
  // BEP 12 shuffles a tier; whatever the order, the dead ones are skipped.
  const tier = [faults.urls["dns failure"]!, faults.urls["http 500"]!, faults.urls["garbage"]!];
  const { data, metainfo, seeder, torrentPath } = await seeded(dir.path, [[...tier, good.url]]);
  await using _seeder = seeder;
  good.setPeers(metainfo.infoHash, [{ host: "127.0.0.1", port: seeder.port }]);
  const result = await runCli(
    ["download", "--port", "0", "-o", `${dir.path}/out.bin`, torrentPath],
    { signal: AbortSignal.timeout(30_000) },
  );
  assert.equal(result.code, 0, result.stderr);
  assertNoStack(result);
  assert.deepEqual(await Deno.readFile(`${dir.path}/out.bin`), data);
});

Deno.test("tracker faults: with no working source the CLI keeps trying, then stops cleanly", async () => {
  await using faults = await startFaults();
  await using dir = await tempDir();
  const urls = Object.entries(faults.urls).filter(([name]) => name !== "hang");
  const { seeder, torrentPath, metainfo } = await seeded(dir.path, urls.map(([, url]) => [url]));
  await seeder.close();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../cli.ts", import.meta.url).pathname,
      "download",
      "--port",
      "0",
      "-o",
      `${dir.path}/out.bin`,
      torrentPath,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(30_000),
  }).spawn();
  // Collect stderr while it runs, to know when every tracker has failed once.
  let stderr = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of child.stderr) stderr += decoder.decode(chunk, { stream: true });
  })();
  const stdout = new Response(child.stdout).text();
  for (let i = 0; i < 100; i++) {
    const seen = warnings({ code: 0, stdout: "", stderr }, urls.map(([, url]) => url));
    if (urls.every(([, url]) => seen.has(url))) break;
    await sleep(100);
  }
  child.kill("SIGINT");
  const status = await child.status;
  await reading;
  await stdout;
  const result = { code: status.code, stdout: "", stderr };
  for (const [name, url] of urls) {
    const lines = warnings(result, [url]).get(url) ?? [];
    assert.ok(lines.length >= 1, `${name} warned:\n${stderr}`);
    assert.match(lines[0]!, EXPECTED[name]!);
  }
  assertOneLineError(
    result,
    1,
    new RegExp(`Stopped with 0 of ${(metainfo as Metainfo).pieceCount} pieces verified`),
  );
});
