/**
 * Seeding benchmark: libtorrent downloads the same file from our `seed` command and from a
 * libtorrent seeder, in the same run, each into a fresh directory, verified byte for byte.
 *
 *   deno run -A tests/bench/seed_bench.ts [--size 1GiB] [--runs 3] [--piece-kib 256]
 *                                         [--only ours,libtorrent] [--cpu-prof DIR]
 *                                         [--plaintext] [--shared-session] [--settle 5]
 *
 * Prints the median wall time, MiB/s and seeder CPU seconds of each, and the ratio ours /
 * libtorrent's (target >= 0.9). `--cpu-prof DIR` writes a V8 CPU profile of our seeder there.
 * libtorrent dials with an encrypted handshake first (MSE, its default `out_enc_policy`); we
 * do not speak it, so it retries in plaintext about 1 s later. `--plaintext` sets the
 * downloader to plaintext only, to measure the transfer without that fixed delay.
 * Each seeder runs in a session of its own, apart from the downloader (see `bench.ts`);
 * `--shared-session` keeps them in this one. Needs python3-libtorrent (Debian).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createTorrentFile } from "../../lib/client/create.ts";
import {
  inOwnSession,
  makePayload,
  missingTools,
  recheckTimeoutMs,
  sameContents,
  startLibtorrent,
  tempDir,
} from "../_helpers/interop/mod.ts";
import { childPids, cpuSeconds, parseSize } from "./_proc_stats.ts";
import { median, roundOrder, settle } from "./_rounds.ts";

const CLI = decodeURIComponent(new URL("../../cli.ts", import.meta.url).pathname);
const MIB = 1024 * 1024;
const TARGET_RATIO = 0.9;
const SEEDERS = ["ours", "libtorrent"] as const;
type Seeder = typeof SEEDERS[number];

/** Our seeder as a subprocess; resolves with its port once it printed its ready line. */
async function startOurSeeder(
  torrent: string,
  data: string,
  options: { cpuProf: string | undefined; ownSession: boolean },
) {
  const { cpuProf, ownSession } = options;
  const prof = cpuProf === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProf}`];
  const args = ["run", "-A", ...prof, CLI, "seed", "--no-trackers", "--port", "0", torrent, data];
  const [program, programArgs] = ownSession
    ? inOwnSession(Deno.execPath(), args)
    : [Deno.execPath(), args];
  const child = new Deno.Command(program, {
    args: programArgs,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`seed exited before it was ready:\n${text}`);
    text += value;
    const match = /^Seeding .* on port (\d+) /m.exec(text);
    if (match) {
      const drain = (async () => {
        while (!(await reader.read()).done);
      })();
      return {
        port: Number(match[1]),
        pid: child.pid,
        async stop() {
          child.kill("SIGINT");
          await child.status;
          await drain;
        },
      };
    }
  }
}

/** Downloads with libtorrent; returns wall seconds and the downloader's CPU seconds. */
async function download(
  torrentPath: string,
  peer: string,
  out: string,
  plaintext: boolean,
): Promise<{ seconds: number; cpu: number }> {
  const started = performance.now();
  const before = childPids();
  await using leecher = await startLibtorrent({
    mode: "download",
    torrentPath,
    savePath: out,
    peers: [peer],
    progressMs: 0,
    // out_enc_policy 2 is pe_disabled: no encrypted attempt before the plaintext handshake.
    ...(plaintext ? { settings: { out_enc_policy: 2 } } : {}),
  });
  const pid = [...childPids()].find((pid) => !before.has(pid));
  await leecher.finished;
  const seconds = (performance.now() - started) / 1000;
  return { seconds, cpu: pid === undefined ? NaN : cpuSeconds(pid) };
}

/**
 * Runs the seeding benchmark (also called by `bench.ts`, so `deno task bench` includes it).
 *
 * @param args Command-line arguments, as above.
 * @returns The exit code: 0 (a ratio below target is reported, not failed).
 */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      size: { type: "string", default: "1GiB" },
      runs: { type: "string", default: "3" },
      "piece-kib": { type: "string", default: "256" },
      only: { type: "string", default: SEEDERS.join(",") },
      "cpu-prof": { type: "string" },
      plaintext: { type: "boolean", default: false },
      "shared-session": { type: "boolean", default: false },
      settle: { type: "string", default: "5" },
    },
  });
  const only = values.only.split(",").map((name) => {
    if (!(SEEDERS as readonly string[]).includes(name)) {
      throw new TypeError(`Cannot parse --only "${values.only}": use ${SEEDERS.join(",")}`);
    }
    return name as Seeder;
  });
  const missing = missingTools(["libtorrent"]);
  if (missing.length > 0) throw new Error(`Missing tools: ${missing.join(", ")}`);
  const size = parseSize(values.size);
  const runs = Number(values.runs);
  const pieceLength = Number(values["piece-kib"]) * 1024;
  const settleMs = Number(values.settle) * 1000;
  if (!Number.isFinite(settleMs) || settleMs < 0) {
    throw new TypeError(`Invalid --settle "${values.settle}": seconds, 0 or more`);
  }

  await using dir = await tempDir({ prefix: "seed_bench_" });
  await makePayload(dir.path, [{ path: "payload.bin", size }]);
  const { out: torrentPath } = await createTorrentFile(dir.join("payload.bin"), {
    out: dir.join("payload.torrent"),
    pieceLength,
  });
  const source = dir.join("payload.bin");

  const ownSession = !values["shared-session"];
  const ours = await startOurSeeder(torrentPath, source, {
    cpuProf: values["cpu-prof"],
    ownSession,
  });
  const before = childPids();
  await using theirs = await startLibtorrent({
    mode: "seed",
    torrentPath,
    savePath: dir.path,
    progressMs: 0,
    // Hashing first also maps the data into its memory, so its first run is not its first pass
    // over the file (tests/bench/bench.ts does the same for its seeders).
    recheck: true,
    ownSession,
  });
  const checkDeadline = Date.now() + recheckTimeoutMs(size);
  while (!String((await theirs.status()).state).includes("seeding")) {
    if (Date.now() > checkDeadline) throw new Error("The libtorrent seeder is still checking");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const theirPid = [...childPids()].find((pid) => !before.has(pid));
  if (theirPid === undefined) throw new Error("Cannot find the libtorrent seeder's pid");
  const times: Record<Seeder, number[]> = { ours: [], libtorrent: [] };
  const cpu: Record<Seeder, number[]> = { ours: [], libtorrent: [] };
  const leecher: Record<Seeder, number[]> = { ours: [], libtorrent: [] };
  try {
    for (let run = 0; run < runs; run++) {
      // Alternating order, and a pause before each download (see bench.ts): the second
      // download of a round otherwise paid for the memory the first had just given back.
      for (const who of roundOrder(only, run + 1)) {
        await settle(settleMs);
        const out = dir.join(`out-${who}-${run}`);
        const peer = who === "ours" ? `127.0.0.1:${ours.port}` : theirs.address;
        const pid = who === "ours" ? ours.pid : theirPid;
        const cpuBefore = cpuSeconds(pid);
        const { seconds, cpu: leecherCpu } = await download(
          torrentPath,
          peer,
          out,
          values.plaintext,
        );
        cpu[who].push(cpuSeconds(pid) - cpuBefore);
        leecher[who].push(leecherCpu);
        if (!(await sameContents(source, `${out}/payload.bin`))) {
          throw new Error(`Download from ${who} differs from the source`);
        }
        await Deno.remove(out, { recursive: true });
        times[who].push(seconds);
        console.error(
          `run ${run + 1}: libtorrent from ${who}: ${seconds.toFixed(2)} s, seeder CPU ${
            cpu[who].at(-1)!.toFixed(2)
          } s, downloader CPU ${leecher[who].at(-1)!.toFixed(2)} s`,
        );
      }
    }
  } finally {
    await ours.stop();
  }
  const mib = size / MIB;
  const line = (who: Seeder) => {
    const seconds = median(times[who]);
    return `${who.padEnd(10)} ${seconds.toFixed(2)} s  ${(mib / seconds).toFixed(0)} MiB/s  ` +
      `seeder CPU ${median(cpu[who]).toFixed(2)} s  downloader CPU ${
        median(leecher[who]).toFixed(2)
      } s`;
  };
  console.log(
    `libtorrent downloading ${values.size} (${pieceLength / 1024} KiB pieces), median of ${runs}:`,
  );
  for (const who of only) console.log(`  from ${line(who)}`);
  if (only.length < SEEDERS.length) return 0;
  const ratio = median(times.libtorrent) / median(times.ours);
  console.log(
    `  ours / libtorrent throughput: ${ratio.toFixed(2)}x (target >= ${TARGET_RATIO}x) ${
      ratio >= TARGET_RATIO ? "ok" : "BELOW TARGET"
    }`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
