/**
 * Engine throughput over loopback: a seeding Torrent (FsStorage) in one
 * `deno` process, a downloading Torrent (FsStorage) in another.
 *
 *   deno run -A tests/bench/engine_bench.ts [--mib 256] [--piece-kib 256] [--same-process]
 *
 * Prints the download rate in MiB/s.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createTorrent, parseMetainfo } from "../../lib/metainfo/mod.ts";
import { FsStorage, MemoryStorage } from "../../lib/storage/mod.ts";
import { Bitfield } from "../../lib/piece/mod.ts";
import { serveTorrent, Torrent } from "../../lib/torrent/mod.ts";

/** CPU time (user + system) of this process in ms, from /proc (Linux only). */
function cpuMs(): number {
  try {
    const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
}

async function seed(torrentPath: string, dataPath: string): Promise<void> {
  const metainfo = parseMetainfo(await Deno.readFile(torrentPath));
  let storage: FsStorage | MemoryStorage;
  if (Deno.env.get("BENCH_MEMORY_SEED")) {
    storage = new MemoryStorage(metainfo.totalLength);
    await storage.write(0, await Deno.readFile(dataPath));
  } else {
    storage = await FsStorage.open({
      root: dataPath,
      files: metainfo.files.map((f) => ({ path: f.path, length: f.length })),
      singleFile: true,
    });
  }
  const have = new Bitfield(metainfo.pieceCount);
  have.setAll();
  const server = await serveTorrent({ metainfo, storage, have, hostname: "127.0.0.1" });
  console.log(`PORT ${server.port}`);
  // Serve until stdin closes (the parent exits or closes the pipe).
  const cpuStart = cpuMs();
  for await (const _ of Deno.stdin.readable) { /* wait */ }
  console.error(`seeder CPU ${((cpuMs() - cpuStart) / 1000).toFixed(2)} s`);
  await server.close();
  await storage.close();
}

function fill(bytes: Uint8Array): void {
  // xorshift32: fast, incompressible enough, deterministic.
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  let x = 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      mib: { type: "string", default: "256" },
      "piece-kib": { type: "string", default: "256" },
      "same-process": { type: "boolean", default: false },
      "memory-download": { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  if (positionals[0] === "seed") return await seed(positionals[1]!, positionals[2]!);

  const size = Number(values.mib) * 1024 * 1024;
  const pieceLength = Number(values["piece-kib"]) * 1024;
  const benchDir = Deno.env.get("BENCH_DIR");
  const dir = await Deno.makeTempDir({
    prefix: "engine_bench_",
    ...(benchDir === undefined ? {} : { dir: benchDir }),
  });
  try {
    const data = new Uint8Array(size);
    fill(data);
    const { torrent, metainfo } = await createTorrent({ name: "data.bin", data }, { pieceLength });
    await Deno.writeFile(`${dir}/data.bin`, data);
    await Deno.writeFile(`${dir}/bench.torrent`, torrent);

    let child: Deno.ChildProcess | undefined;
    let port: number;
    let closeSeeder: () => Promise<void>;
    if (values["same-process"]) {
      const storage = await FsStorage.open({
        root: `${dir}/data.bin`,
        files: [{ path: ["data.bin"], length: size }],
        singleFile: true,
      });
      const have = new Bitfield(metainfo.pieceCount);
      have.setAll();
      const server = await serveTorrent({ metainfo, storage, have, hostname: "127.0.0.1" });
      port = server.port;
      closeSeeder = async () => {
        await server.close();
        await storage.close();
      };
    } else {
      child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...(Deno.env.get("BENCH_SEED_PROF")
            ? ["--cpu-prof", "--cpu-prof-dir=/tmp/seedprof"]
            : []),
          "-A",
          import.meta.filename!,
          "seed",
          `${dir}/bench.torrent`,
          `${dir}/data.bin`,
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!/PORT (\d+)/.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error("Seeder exited before printing its port");
        text += value;
      }
      port = Number(/PORT (\d+)/.exec(text)![1]);
      const proc = child;
      closeSeeder = async () => {
        await proc.stdin.close();
        await reader.cancel();
        await proc.status;
      };
    }

    const storage = values["memory-download"] ? new MemoryStorage(size) : await FsStorage.open({
      root: `${dir}/out.bin`,
      files: [{ path: ["data.bin"], length: size }],
      singleFile: true,
    });
    const leecher = new Torrent({ metainfo, storage });
    const cpuStart = cpuMs();
    const started = performance.now();
    leecher.start();
    leecher.addPeers([{ host: "127.0.0.1", port }]);
    const log = Deno.env.get("BENCH_DEBUG")
      ? setInterval(
        () =>
          console.error(
            JSON.stringify([
              leecher.stats().bufferedBytes >> 20,
              leecher.stats().piecesHave,
              ...leecher.peers().map((p) => ({
                d: p.queueDepth,
                f: p.requestsInFlight,
                r: Math.round(p.downloadRate / 1048576),
              })),
            ]),
          ),
        200,
      )
      : undefined;
    await leecher.done;
    clearInterval(log);
    const seconds = (performance.now() - started) / 1000;
    const cpu = (cpuMs() - cpuStart) / 1000;
    await leecher.close();
    await closeSeeder();
    const mib = size / 1024 / 1024;
    console.log(
      `engine: ${mib} MiB in ${seconds.toFixed(2)} s = ${(mib / seconds).toFixed(0)} MiB/s (${
        values["same-process"] ? "one process" : "two processes"
      }, ${pieceLength / 1024} KiB pieces; downloader CPU ${cpu.toFixed(2)} s)`,
    );
    const out = storage instanceof MemoryStorage
      ? storage.bytes
      : await Deno.readFile(`${dir}/out.bin`);
    if (!sameBytes(out, data)) {
      throw new Error("Downloaded data differs from the source");
    }
    await storage.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
