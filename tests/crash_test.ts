/**
 * Crash safety: the CLI `download` is killed with SIGKILL at random moments (a seeded
 * schedule) while a rate-limited in-process seeder serves it, then run again. Each trial must
 * end byte-identical, and no run may request a piece that was already verified on disk when it
 * started: what a kill costs is only what was in flight (received but not yet verified and
 * written). Pieces verified after the last resume save are found by rehashing, not re-fetched.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createTorrent, type Metainfo } from "../lib/metainfo/mod.ts";
import { deterministicBytes, seededRandom } from "./_helpers/fixtures.ts";
import { sleep, SlowSeeder } from "./_helpers/hostile_peer.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const PIECE_LENGTH = 64 * 1024;
const TOTAL_LENGTH = 3 * 1024 * 1024 + 12_345; // 49 pieces, the last one short
const RATE = 6_000_000; // bytes per second: ~0.5 s for the whole torrent
const TRIALS = 20;
const SEED = 0x5eed_c0de;

function pieceSize(metainfo: Metainfo, index: number): number {
  return Math.min(metainfo.pieceLength, metainfo.totalLength - index * metainfo.pieceLength);
}

/** The pieces whose bytes on disk match their hash right now. */
async function verifiedOnDisk(metainfo: Metainfo, path: string): Promise<Set<number>> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return new Set();
    throw error;
  }
  const have = new Set<number>();
  for (let i = 0; i < metainfo.pieceCount; i++) {
    const start = i * metainfo.pieceLength;
    const end = start + pieceSize(metainfo, i);
    if (end > bytes.length) break;
    const digest = createHash("sha1").update(bytes.subarray(start, end)).digest();
    const expected = metainfo.pieceHashes.subarray(i * 20, i * 20 + 20);
    if (digest.every((byte, k) => byte === expected[k])) have.add(i);
  }
  return have;
}

function bytesOf(metainfo: Metainfo, pieces: Iterable<number>): number {
  let sum = 0;
  for (const index of pieces) sum += pieceSize(metainfo, index);
  return sum;
}

interface RunResult {
  killed: boolean;
  code: number;
  stderr: string;
  served: number;
  requested: Set<number>;
}

/**
 * Runs the CLI download once. With `killAt`, sends SIGKILL once the seeder has served that
 * many bytes in this run (or the process ends by itself first).
 */
async function run(
  seeder: SlowSeeder,
  dir: string,
  killAt: number | undefined,
): Promise<RunResult> {
  const servedBefore = seeder.bytesServed;
  const requestsBefore = seeder.requestedPieces.length;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      CLI,
      "download",
      "--quiet",
      "--no-trackers",
      "--port",
      "0",
      "--peer",
      `127.0.0.1:${seeder.port}`,
      "-o",
      `${dir}/data.bin`,
      `${dir}/t.torrent`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(30_000),
  }).spawn();
  let killed = false;
  let exited = false;
  const output = child.output().finally(() => exited = true);
  if (killAt !== undefined) {
    while (!exited && seeder.bytesServed - servedBefore < killAt) await sleep(2);
    if (!exited) {
      child.kill("SIGKILL");
      killed = true;
    }
  }
  const result = await output;
  return {
    killed,
    code: result.code,
    stderr: new TextDecoder().decode(result.stderr),
    served: seeder.bytesServed - servedBefore,
    requested: new Set(seeder.requestedPieces.slice(requestsBefore)),
  };
}

Deno.test(`crash: kill -9 at ${TRIALS} seeded moments, then resume byte-identical`, async () => {
  const data = deterministicBytes(TOTAL_LENGTH, 21);
  const { metainfo, torrent } = await createTorrent({ name: "data.bin", data }, {
    pieceLength: PIECE_LENGTH,
  });
  await using seeder = new SlowSeeder({ geometry: metainfo, data, bytesPerSecond: RATE });
  const random = seededRandom(SEED);
  const root = await Deno.makeTempDir({ prefix: "crash_" });
  const rows: string[] = [];
  let totalWasted = 0;
  let kills = 0;
  try {
    for (let trial = 0; trial < TRIALS; trial++) {
      const dir = `${root}/trial${trial}`;
      await Deno.mkdir(dir);
      await Deno.writeFile(`${dir}/t.torrent`, torrent);
      // One kill in most trials, two in some (the second lands in the resumed run).
      const fractions = [random() * 0.9];
      if (random() < 0.3) fractions.push(random() * 0.9);
      const log: string[] = [];
      for (let attempt = 0;; attempt++) {
        assert.ok(attempt < 5, "the download completes within a few runs");
        const before = await verifiedOnDisk(metainfo, `${dir}/data.bin`);
        const missing = metainfo.totalLength - bytesOf(metainfo, before);
        const fraction = fractions[attempt];
        const result = await run(
          seeder,
          dir,
          fraction === undefined ? undefined : Math.floor(fraction * missing),
        );
        // No piece that was verified on disk at the start of a run is fetched again.
        const refetched = [...result.requested].filter((index) => before.has(index));
        assert.deepEqual(refetched, [], `trial ${trial} run ${attempt} re-requested pieces`);
        const after = await verifiedOnDisk(metainfo, `${dir}/data.bin`);
        for (const index of before) assert.ok(after.has(index), `piece ${index} was lost`);
        // What this run downloaded but did not leave verified on disk.
        const wasted = result.served - (bytesOf(metainfo, after) - bytesOf(metainfo, before));
        totalWasted += wasted;
        log.push(
          `${result.killed ? "killed" : `exit ${result.code}`} after ${result.served} B ` +
            `(${after.size - before.size} pieces new, ${wasted} B in flight)`,
        );
        if (!result.killed) {
          assert.equal(result.code, 0, result.stderr);
          assert.equal(wasted, 0, "a completed run downloads each missing piece once");
          break;
        }
        kills++;
        // In flight at a kill: the pieces being assembled or hashed, plus what sat in socket
        // buffers; at this rate 12 pieces are ~130 ms of transfer (measured: at most ~6).
        assert.ok(
          wasted <= 12 * PIECE_LENGTH,
          `trial ${trial}: ${wasted} bytes served but not on disk after the kill`,
        );
      }
      assert.deepEqual(await Deno.readFile(`${dir}/data.bin`), data, `trial ${trial} data`);
      rows.push(`trial ${trial}: ${log.join("; ")}`);
      await Deno.remove(dir, { recursive: true });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  console.log(rows.join("\n"));
  console.log(`${kills} kills, ${totalWasted} bytes re-downloaded in total`);
  assert.ok(kills >= TRIALS, `${kills} kills landed mid-transfer`);
  assert.deepEqual(seeder.errors, []);
});
