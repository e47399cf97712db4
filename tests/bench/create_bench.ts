/**
 * Benchmark: `createTorrentFromPath` against `mktorrent -t 2` on the same 1 GiB payload.
 *
 * Run: `deno run -A tests/bench/create_bench.ts [--size MiB] [--files N] [--piece-length BYTES]
 * [--rounds N] [--threads N] [--keep DIR]` (`--keep` reuses a payload directory across runs).
 * Each round times both creators on a warm page cache (each is run once before the timed run);
 * rounds alternate which goes first, and the best and median are reported, since other work on
 * the machine makes single runs noisy. Info hashes are checked to agree.
 */
import { parseArgs } from "node:util";
import { createTorrentFromPath } from "../../lib/metainfo/create_from_path.ts";
import { hasTool, makePayload, tempDir, torrentInfoHash } from "../_helpers/interop/mod.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "1024" },
    files: { type: "string", default: "1" },
    "piece-length": { type: "string", default: String(256 * 1024) },
    rounds: { type: "string", default: "5" },
    threads: { type: "string" },
    keep: { type: "string" },
  },
});
const size = Number(args.values.size) * 1024 * 1024;
const pieceLength = Number(args.values["piece-length"]);
const rounds = Number(args.values.rounds);
const fileCount = Number(args.values.files);
const threads = args.values.threads === undefined ? undefined : Number(args.values.threads);

if (!hasTool("mktorrent")) {
  console.error("create_bench: mktorrent is not installed; nothing to compare against");
  Deno.exit(1);
}

await using dir = await tempDir({ prefix: "create_bench_" });
const dataDir = args.values.keep ?? dir.join("data");
// One file, or a directory of `fileCount` files (sizes differ by a few bytes, so that file
// boundaries fall inside pieces).
const specs = fileCount === 1
  ? [{ path: "payload.bin", size }]
  : Array.from({ length: fileCount }, (_, i) => ({
    path: `payload/${String(i).padStart(6, "0")}.bin`,
    size: Math.floor(size / fileCount) + (i % 2 === 0 ? 7 : -7),
  }));
const source = `${dataDir}/${fileCount === 1 ? "payload.bin" : "payload"}`;
const totalSize = specs.reduce((sum, spec) => sum + spec.size, 0);
const existing = await Deno.stat(`${dataDir}/${specs.at(-1)!.path}`).catch((error) => {
  if (error instanceof Deno.errors.NotFound) return undefined;
  throw error;
});
if (existing?.size !== specs.at(-1)!.size) {
  const started = performance.now();
  await makePayload(dataDir, specs);
  console.error(
    `payload: ${totalSize} bytes in ${((performance.now() - started) / 1000).toFixed(2)} s`,
  );
}

async function runOurs(): Promise<{ seconds: number; infoHash: string }> {
  const started = performance.now();
  const { metainfo } = await createTorrentFromPath(source, {
    pieceLength,
    ...(threads === undefined ? {} : { threads }),
  });
  return { seconds: (performance.now() - started) / 1000, infoHash: metainfo.infoHash.toHex() };
}

async function runMktorrent(): Promise<{ seconds: number; infoHash: string }> {
  const output = dir.join("m.torrent");
  await Deno.remove(output).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  // Run directly: the harness's mktorrent() has no thread option. Process start-up is part of
  // what a user waits for, as is our module's worker start-up.
  const started = performance.now();
  const result = await new Deno.Command("mktorrent", {
    args: [
      ...["-t", "2", "-d", "-l", String(Math.log2(pieceLength))],
      ...["-a", "http://127.0.0.1:1/announce", "-o", output, source],
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  if (!result.success) {
    throw new Error(`mktorrent failed: ${new TextDecoder().decode(result.stderr).trim()}`);
  }
  return { seconds, infoHash: await torrentInfoHash(await Deno.readFile(output)) };
}

const ours: number[] = [];
const theirs: number[] = [];
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? [runOurs, runMktorrent] : [runMktorrent, runOurs];
  for (const run of order) {
    await run(); // warm the page cache and the code
    const timed = await run();
    (run === runOurs ? ours : theirs).push(timed.seconds);
  }
}
const check = [await runOurs(), await runMktorrent()];
if (check[0]!.infoHash !== check[1]!.infoHash) {
  console.error(`info hashes differ: ours ${check[0]!.infoHash}, mktorrent ${check[1]!.infoHash}`);
  Deno.exit(1);
}

function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const mbps = (seconds: number) => totalSize / seconds / 1e6;
const row = (label: string, times: number[]) =>
  `${label.padEnd(24)} best ${Math.min(...times).toFixed(3)} s (${
    mbps(Math.min(...times)).toFixed(0)
  } MB/s)  median ${median(times).toFixed(3)} s (${mbps(median(times)).toFixed(0)} MB/s)`;
console.log(
  `create: ${
    (totalSize / 1024 / 1024).toFixed(0)
  } MiB in ${fileCount} file(s), piece length ${pieceLength}, ${rounds} rounds, ` +
    `${navigator.hardwareConcurrency} cores; info hash ${check[0]!.infoHash}`,
);
console.log(row("createTorrentFromPath", ours));
console.log(row("mktorrent -t 2", theirs));
console.log(
  `ratio (ours / mktorrent throughput): best ${
    (Math.min(...theirs) / Math.min(...ours)).toFixed(2)
  }x, median ${(median(theirs) / median(ours)).toFixed(2)}x`,
);
