/**
 * Disk full: the CLI `download` writes into a 1 MiB tmpfs (real ENOSPC), or under `ulimit -f`
 * with SIGXFSZ ignored (EFBIG). Either way it must stop with one clear error line, keep the
 * pieces it verified, and the next run, once space is back, must resume without fetching them
 * again. The tmpfs steps need root (mount); they are skipped elsewhere.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createTorrent, type Metainfo } from "../lib/metainfo/mod.ts";
import { deterministicBytes } from "./_helpers/fixtures.ts";
import { SlowSeeder } from "./_helpers/hostile_peer.ts";
import { assertOneLineError, type CliResult } from "./_helpers/run_cli.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const PIECE_LENGTH = 64 * 1024;
const TOTAL_LENGTH = 3 * 1024 * 1024 + 4321;

function canMount(): boolean {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return false;
  const probe = Deno.makeTempDirSync({ prefix: "mount_probe_" });
  try {
    const mounted = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
    if (mounted) {
      new Deno.Command("umount", { args: [probe], stdout: "null", stderr: "null" }).outputSync();
    }
    return mounted;
  } finally {
    Deno.removeSync(probe);
  }
}

async function sh(command: string, args: string[]): Promise<void> {
  const result = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" })
    .output();
  if (!result.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed: ${new TextDecoder().decode(result.stderr)}`,
    );
  }
}

/** The pieces whose bytes on disk match their hash. */
async function verifiedOnDisk(metainfo: Metainfo, path: string): Promise<Set<number>> {
  const bytes = await Deno.readFile(path);
  const have = new Set<number>();
  for (let i = 0; i < metainfo.pieceCount; i++) {
    const start = i * metainfo.pieceLength;
    const end = Math.min(start + metainfo.pieceLength, metainfo.totalLength);
    if (end > bytes.length) break;
    const digest = createHash("sha1").update(bytes.subarray(start, end)).digest();
    const expected = metainfo.pieceHashes.subarray(i * 20, i * 20 + 20);
    if (digest.every((byte, k) => byte === expected[k])) have.add(i);
  }
  return have;
}

/** Runs the CLI download, optionally under `ulimit -f` (KiB) with SIGXFSZ ignored. */
async function download(
  args: { seederPort: number; out: string; torrent: string; fileSizeLimitKiB?: number },
): Promise<CliResult> {
  const cli = [
    Deno.execPath(),
    "run",
    "-A",
    CLI,
    "download",
    "--quiet",
    "--no-trackers",
    "--port",
    "0",
    "--peer",
    `127.0.0.1:${args.seederPort}`,
    "-o",
    args.out,
    args.torrent,
  ];
  const options = {
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(30_000),
  } as const;
  const command = args.fileSizeLimitKiB === undefined
    ? new Deno.Command(cli[0]!, { args: cli.slice(1), ...options })
    : new Deno.Command("bash", {
      // An ignored SIGXFSZ survives exec: writes past the limit then fail with EFBIG.
      args: ["-c", `trap '' XFSZ; ulimit -f ${args.fileSizeLimitKiB}; exec "$@"`, "bash", ...cli],
      ...options,
    });
  const output = await command.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function fixture(dir: string) {
  const data = deterministicBytes(TOTAL_LENGTH, 33);
  const { metainfo, torrent } = await createTorrent({ name: "data.bin", data }, {
    pieceLength: PIECE_LENGTH,
  });
  await Deno.writeFile(`${dir}/t.torrent`, torrent);
  return { data, metainfo, torrent: `${dir}/t.torrent` };
}

Deno.test({
  name: "disk full (tmpfs): one error line, verified pieces kept, resumes once space is back",
  ignore: !canMount(),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "disk_full_" });
    const mnt = `${dir}/mnt`;
    await Deno.mkdir(mnt);
    await sh("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]);
    try {
      const { data, metainfo, torrent } = await fixture(dir);
      await using seeder = new SlowSeeder({ geometry: metainfo, data });
      const out = `${mnt}/data.bin`;

      const full = await download({ seederPort: seeder.port, out, torrent });
      assertOneLineError(full, 1, /^error: Cannot write to ".*data\.bin": .*(No space|ENOSPC)/i);
      const kept = await verifiedOnDisk(metainfo, out);
      assert.ok(kept.size >= 4, `only ${kept.size} pieces verified on the full disk`);
      assert.ok(kept.size < metainfo.pieceCount);

      // Space is back.
      await sh("mount", ["-o", "remount,size=16m", mnt]);
      const requestsBefore = seeder.requestedPieces.length;
      const again = await download({ seederPort: seeder.port, out, torrent });
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await Deno.readFile(out), data);
      const refetched = seeder.requestedPieces.slice(requestsBefore).filter((i) => kept.has(i));
      assert.deepEqual(refetched, [], "pieces verified before the disk filled are not fetched");
      assert.deepEqual(seeder.errors, []);
    } finally {
      await sh("umount", [mnt]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "file size limit (ulimit -f, EFBIG): one error line, verified pieces kept, resumes",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "efbig_" });
    try {
      const { data, metainfo, torrent } = await fixture(dir);
      await using seeder = new SlowSeeder({ geometry: metainfo, data });
      const out = `${dir}/data.bin`;

      await pastTheLimit(seeder, out, torrent);
      // Pieces come in random order, so how many fit before the first refused write varies
      // (the tmpfs test above checks that pieces are kept); none past the limit can be there.
      const kept = await verifiedOnDisk(metainfo, out);
      assert.ok([...kept].every((index) => (index + 1) * PIECE_LENGTH <= 1024 * 1024));

      const requestsBefore = seeder.requestedPieces.length;
      const again = await download({ seederPort: seeder.port, out, torrent });
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await Deno.readFile(out), data);
      const refetched = seeder.requestedPieces.slice(requestsBefore).filter((i) => kept.has(i));
      assert.deepEqual(refetched, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * Two runs under a 1 MiB file size limit: a fresh output cannot even be sized (a clear error
 * before any transfer); an output already sized (as a previous run leaves it) gets its writes
 * past the limit refused with EFBIG.
 */
async function pastTheLimit(seeder: SlowSeeder, out: string, torrent: string): Promise<void> {
  const fresh = await download({ seederPort: seeder.port, out, torrent, fileSizeLimitKiB: 1024 });
  assertOneLineError(fresh, 1, /^error: Cannot create the output ".*data\.bin": /);
  // Sized as a previous run would leave it (sparse), the writes past the limit fail.
  await Deno.writeFile(out, new Uint8Array(0));
  await Deno.truncate(out, TOTAL_LENGTH);
  const sized = await download({ seederPort: seeder.port, out, torrent, fileSizeLimitKiB: 1024 });
  assertOneLineError(sized, 1, /^error: Cannot write to ".*data\.bin": .*(too large|EFBIG)/i);
}
