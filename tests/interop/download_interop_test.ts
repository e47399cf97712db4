// `download` against independent software: opentracker (HTTP and UDP) as the tracker, and
// libtorrent, aria2 and Transmission as the peers, each alone and all three in one swarm.
// Multi-file torrents made by mktorrent: file boundaries inside pieces, an empty file.
import assert from "node:assert/strict";
import {
  differingFiles,
  interopAvailable,
  makePayload,
  mktorrent,
  type Opentracker,
  type PayloadFileSpec,
  startAria2,
  startLibtorrent,
  startOpentracker,
  startTransmission,
  type TempDir,
  tempDir,
} from "../_helpers/interop/mod.ts";
import { runCli } from "../_helpers/run_cli.ts";

/** About 4.2 MB in 256 KiB pieces: 16 pieces, no file boundary on a piece boundary. */
const FILES: PayloadFileSpec[] = [
  { path: "data/a.bin", size: 1_500_003 },
  { path: "data/empty.txt", size: 0 },
  { path: "data/sub/b.bin", size: 2_000_000 },
  { path: "data/c.bin", size: 700_001 },
];
const RELATIVE = FILES.map((file) => file.path.slice("data/".length));

type Seeder = "libtorrent" | "aria2" | "transmission";
const TOOL = {
  libtorrent: "libtorrent",
  aria2: "aria2c",
  transmission: "transmission-cli",
} as const;

/** Makes the payload under `<dir>/<name>/data` and a torrent of it announcing to `urls`. */
async function prepare(dir: TempDir, tracker: Opentracker, urls: string[]) {
  await makePayload(dir.join("seed"), FILES);
  const made = await mktorrent(dir.join("seed", "data"), {
    output: dir.join("data.torrent"),
    announce: urls,
    pieceLength: 262_144,
  });
  await tracker.whitelist([made.infoHash]);
  return made;
}

/** Peers opentracker knows for `infoHash` (seeders plus leechers), from its scrape. */
async function swarmSize(tracker: Opentracker, infoHash: string): Promise<number> {
  const escaped = Array.from(Uint8Array.fromHex(infoHash), (b) =>
    "%" + b.toString(16)
      .padStart(2, "0")).join("");
  const url = tracker.httpUrl.replace("/announce", `/scrape?info_hash=${escaped}`);
  // The files dictionary is keyed by raw info hash bytes (not UTF-8): read it as latin1.
  const body = new TextDecoder("latin1").decode(await (await fetch(url)).arrayBuffer());
  const count = (key: string) => Number(body.match(new RegExp(`${key}i(\\d+)e`))?.[1] ?? 0);
  return count("8:complete") + count("10:incomplete");
}

async function waitForSwarm(tracker: Opentracker, infoHash: string, count: number) {
  const deadline = Date.now() + 20_000;
  while (await swarmSize(tracker, infoHash) < count) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${count} peers on the tracker`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Starts a seeder of `<parent>/data` for the torrent. */
async function startSeeder(kind: Seeder, torrentPath: string, parent: string, partial = false) {
  switch (kind) {
    case "libtorrent":
      return await startLibtorrent({
        mode: "seed",
        torrentPath,
        savePath: parent,
        ...(partial ? { recheck: true } : {}),
      });
    case "aria2":
      // A partial aria2 is a downloader with checked data: it serves the pieces it has.
      return await startAria2(
        partial
          ? { mode: "download", torrentPath, dir: parent, extraArgs: ["--check-integrity=true"] }
          : { mode: "seed", torrentPath, dir: parent },
      );
    case "transmission":
      return await startTransmission({ mode: "seed", torrentPath, dir: parent });
  }
}

/** Downloads with the CLI into `<dir>/out/data` and checks every file byte for byte. */
async function downloadAndCompare(dir: TempDir, torrentPath: string): Promise<number> {
  const out = dir.join("out", "data");
  const started = performance.now();
  const result = await runCli(["download", "-q", "-o", out, "--port", "0", torrentPath]);
  const seconds = (performance.now() - started) / 1000;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `Downloaded ${torrentPath} to ${out}.\n`);
  assert.deepEqual(await differingFiles(dir.join("seed", "data"), out, RELATIVE), []);
  assert.equal((await Deno.stat(`${out}/empty.txt`)).size, 0);
  return seconds;
}

const CASES: { seeder: Seeder; tracker: "http" | "udp" }[] = [
  { seeder: "libtorrent", tracker: "http" },
  { seeder: "libtorrent", tracker: "udp" },
  { seeder: "aria2", tracker: "http" },
  { seeder: "aria2", tracker: "udp" },
  // Transmission unchokes on a 10 s timer: one case is enough.
  { seeder: "transmission", tracker: "http" },
];

for (const { seeder: kind, tracker: scheme } of CASES) {
  Deno.test({
    name:
      `download completes a multi-file torrent from a ${kind} seeder via opentracker over ${scheme.toUpperCase()}`,
    ignore: !interopAvailable(["opentracker", "mktorrent", TOOL[kind]]),
    async fn() {
      await using dir = await tempDir();
      await using tracker = await startOpentracker();
      const made = await prepare(dir, tracker, [
        scheme === "http" ? tracker.httpUrl : tracker.udpUrl,
      ]);
      await using seeder = await startSeeder(kind, made.path, dir.join("seed"));
      await waitForSwarm(tracker, made.infoHash, 1);
      const seconds = await downloadAndCompare(dir, made.path);
      console.log(`${kind} over ${scheme}: ${seconds.toFixed(2)} s`);
      await seeder.stop();
    },
  });
}

Deno.test({
  name: "download completes from a mixed swarm where each piece holder is needed",
  ignore: !interopAvailable(["opentracker", "mktorrent", ...Object.values(TOOL)]),
  async fn() {
    await using dir = await tempDir();
    await using tracker = await startOpentracker();
    // Two tiers: HTTP, then UDP (mktorrent makes a tier of each -a).
    const made = await prepare(dir, tracker, [tracker.httpUrl, tracker.udpUrl]);
    // Three regions, each intact at exactly one client: all three must serve.
    const regions = [
      { file: "a.bin", at: 300_000, holder: "libtorrent" },
      { file: "sub/b.bin", at: 1_000_000, holder: "aria2" },
      { file: "c.bin", at: 400_000, holder: "transmission" },
    ] as const;
    const seeders = [];
    try {
      for (const kind of ["libtorrent", "aria2", "transmission"] as const) {
        const parent = dir.join(kind);
        await makePayload(parent, FILES);
        for (const region of regions) {
          if (region.holder === kind) continue;
          using file = await Deno.open(`${parent}/data/${region.file}`, { write: true });
          await file.seek(region.at, Deno.SeekMode.Start);
          await file.write(new Uint8Array(16).fill(0x58));
        }
        seeders.push(await startSeeder(kind, made.path, parent, true));
      }
      await waitForSwarm(tracker, made.infoHash, 3);
      const seconds = await downloadAndCompare(dir, made.path);
      console.log(`mixed swarm: ${seconds.toFixed(2)} s`);
    } finally {
      for (const seeder of seeders) await seeder.stop();
    }
  },
});
