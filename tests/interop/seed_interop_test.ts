/**
 * Interop: our `create` and `seed` commands against independent clients. libtorrent and aria2
 * download a multi-file torrent made by our `create` from our seeder alone, found through
 * opentracker; libtorrent fetches the same torrent from a magnet link (ut_metadata served by
 * us); and our `create` gives mktorrent's and libtorrent's info hash for the same files.
 */
import assert from "node:assert/strict";
import { announce } from "../../lib/tracker/mod.ts";
import {
  differingFiles,
  interopAvailable,
  libtorrentCreateTorrent,
  makePayload,
  mktorrent,
  type PayloadFileSpec,
  startAria2,
  startLibtorrent,
  startOpentracker,
  tempDir,
  withTimeout,
} from "../_helpers/interop/mod.ts";
import { runCli } from "../_helpers/run_cli.ts";
import { startSeedCommand } from "../_helpers/seed_command.ts";

/** Nested directories, a zero-length file, file boundaries inside pieces, a short last piece. */
const FILES: PayloadFileSpec[] = [
  { path: "data/a.bin", size: 1_000_003 },
  { path: "data/empty.txt", size: 0 },
  { path: "data/sub dir/b.bin", size: 700_000 },
  { path: "data/sub dir/deeper/c.txt", size: 12_345 },
  { path: "data/z.bin", size: 2_500_000 },
];

const PATHS = FILES.map((file) => file.path);

function infoHashLine(stdout: string): string {
  const match = /^Info Hash: ([0-9a-f]{40})$/m.exec(stdout);
  assert.ok(match, stdout);
  return match[1]!;
}

function magnetLine(stdout: string): string {
  const match = /^Magnet: (magnet:\?\S+)$/m.exec(stdout);
  assert.ok(match, stdout);
  return match[1]!;
}

/** Waits until the tracker lists `port` among the torrent's peers (our seeder announced). */
async function waitForListing(url: string, infoHash: string, port: number): Promise<void> {
  const peerId = new TextEncoder().encode("-PROBE0-000000000000");
  const request = {
    infoHash: Uint8Array.fromHex(infoHash),
    peerId,
    port: 1,
    uploaded: 0,
    downloaded: 0,
    left: 1,
    numWant: 50,
  };
  try {
    for (let attempt = 0; attempt < 100; attempt++) {
      const reply = await announce(url, request);
      if (reply.peers.some((peer) => peer.port === port)) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`Tracker never listed our seeder on port ${port}`);
  } finally {
    await announce(url, { ...request, event: "stopped" });
  }
}

Deno.test({
  name: "libtorrent and aria2 download from our seeder a torrent made by our create",
  ignore: !interopAvailable(["opentracker", "libtorrent", "aria2c"]),
  async fn(t) {
    await using dir = await tempDir();
    await makePayload(dir.path, FILES);
    await using tracker = await startOpentracker();
    const created = await runCli([
      "create",
      "-o",
      dir.join("data.torrent"),
      "--announce",
      tracker.httpUrl,
      "--piece-length",
      "32K",
      dir.join("data"),
    ]);
    assert.equal(created.code, 0, created.stderr);
    const infoHash = infoHashLine(created.stdout);
    await tracker.whitelist([infoHash]);

    await using seeder = await startSeedCommand(["--port", "0", "data.torrent", "data"], {
      cwd: dir.path,
    });
    await waitForListing(tracker.httpUrl, infoHash, seeder.port);

    await t.step("libtorrent downloads it through opentracker, byte-identical", async () => {
      const out = dir.join("lt");
      await using leecher = await startLibtorrent({
        mode: "download",
        torrentPath: dir.join("data.torrent"),
        savePath: out,
      });
      await withTimeout(leecher.finished, 60_000, "libtorrent download");
      assert.deepEqual(await differingFiles(dir.path, out, PATHS), []);
    });

    await t.step("aria2 downloads it through opentracker, byte-identical", async () => {
      const out = dir.join("aria2");
      await using leecher = await startAria2({
        mode: "download",
        torrentPath: dir.join("data.torrent"),
        dir: out,
      });
      await withTimeout(leecher.finished, 60_000, "aria2 download");
      assert.deepEqual(await differingFiles(dir.path, out, PATHS), []);
    });

    await t.step("libtorrent fetches it by magnet link from our seeder (ut_metadata)", async () => {
      const out = dir.join("magnet");
      await using leecher = await startLibtorrent({
        mode: "download",
        magnet: magnetLine(created.stdout),
        savePath: out,
        peers: [`127.0.0.1:${seeder.port}`],
      });
      await withTimeout(leecher.waitForEvent("metadata_received"), 30_000, "metadata");
      await withTimeout(leecher.finished, 60_000, "libtorrent magnet download");
      assert.deepEqual(await differingFiles(dir.path, out, PATHS), []);
    });

    const end = await seeder.stop();
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stderr, /Stopped seeding data: uploaded \d+ bytes to [3-9] peers\./);
  },
});

Deno.test({
  name: "our create gives the info hash of mktorrent and of libtorrent's creator",
  ignore: !interopAvailable(["mktorrent", "libtorrent"]),
  async fn(t) {
    await using dir = await tempDir();
    await makePayload(dir.path, FILES);
    await makePayload(dir.path, [{ path: "single.bin", size: 777_777 }]);
    for (const source of ["data", "single.bin"]) {
      for (const pieceLength of [32_768, 262_144]) {
        await t.step(`${source}, ${pieceLength}-byte pieces`, async () => {
          const ours = await runCli([
            "create",
            "-o",
            dir.join(`ours-${source}-${pieceLength}.torrent`),
            "--announce",
            "http://127.0.0.1:6969/announce",
            "--piece-length",
            String(pieceLength),
            dir.join(source),
          ]);
          assert.equal(ours.code, 0, ours.stderr);
          const theirs = await mktorrent(dir.join(source), {
            output: dir.join(`mk-${source}-${pieceLength}.torrent`),
            announce: ["http://127.0.0.1:6969/announce"],
            pieceLength,
          });
          assert.equal(infoHashLine(ours.stdout), theirs.infoHash);
          const lt = await libtorrentCreateTorrent(dir.join(source), {
            output: dir.join(`lt-${source}-${pieceLength}.torrent`),
            pieceLength,
          });
          assert.equal(infoHashLine(ours.stdout), lt.infoHash);
        });
      }
    }
  },
});
