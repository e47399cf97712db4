// The five seed commands against independent software: opentracker as the tracker and
// libtorrent as the seeder of a torrent made by mktorrent.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { parseMetainfo } from "../../lib/metainfo/mod.ts";
import {
  interopAvailable,
  libtorrentInfoHash,
  makePayload,
  mktorrent,
  startLibtorrent,
  startOpentracker,
  tempDir,
} from "../_helpers/interop/mod.ts";
import { runCli } from "../_helpers/run_cli.ts";

Deno.test({
  name: "seed commands work against opentracker and a libtorrent seeder",
  ignore: !interopAvailable(["opentracker", "libtorrent", "mktorrent"]),
  async fn(t) {
    await using dir = await tempDir();
    // File boundaries inside pieces, an empty file, a short last piece.
    await makePayload(dir.path, [
      { path: "data/a.bin", size: 100_003 },
      { path: "data/empty.txt", size: 0 },
      { path: "data/b.bin", size: 170_000 },
    ]);
    await using tracker = await startOpentracker();
    const made = await mktorrent(dir.join("data"), {
      output: dir.join("data.torrent"),
      announce: [tracker.httpUrl],
      pieceLength: 32_768,
    });
    await tracker.whitelist([made.infoHash]);
    await using seeder = await startLibtorrent({
      mode: "seed",
      torrentPath: made.path,
      savePath: dir.path,
    });
    await seeder.waitForEvent("tracker_reply");
    const metainfo = parseMetainfo(await Deno.readFile(made.path));

    await t.step("info: the info hash libtorrent computes", async () => {
      const result = await runCli(["info", made.path]);
      assert.equal(result.code, 0, result.stderr);
      const expected = await libtorrentInfoHash(made.path);
      assert.match(result.stdout, new RegExp(`^Info Hash: ${expected}$`, "m"));
      assert.match(result.stdout, new RegExp(`^Tracker URL: ${tracker.httpUrl}$`, "m"));
      assert.match(result.stdout, /^Length: 270003$/m);
    });

    await t.step("peers: opentracker lists the libtorrent seeder", async () => {
      const result = await runCli(["peers", made.path]);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(result.stdout.split("\n").includes(seeder.address), result.stdout);
    });

    await t.step("handshake: prints libtorrent's peer id", async () => {
      const result = await runCli(["handshake", made.path, seeder.address]);
      assert.equal(result.code, 0, result.stderr);
      const expected = new TextEncoder().encode(seeder.peerId).toHex();
      assert.equal(result.stdout, `Peer ID: ${expected}\n`);
      assert.match(seeder.peerId, /^-LT20/);
    });

    for (const index of [0, 4, metainfo.pieceCount - 1]) {
      await t.step(`download_piece ${index} through the tracker`, async () => {
        const out = dir.join(`piece-${index}`);
        const result = await runCli(["download_piece", "-o", out, made.path, String(index)]);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, `Piece ${index} downloaded to ${out}.\n`);
        const bytes = await Deno.readFile(out);
        const hash = createHash("sha1").update(bytes).digest("hex");
        assert.equal(hash, metainfo.pieceHashes.subarray(index * 20, index * 20 + 20).toHex());
      });
    }
  },
});
