// Magnet links against libtorrent: metadata (BEP 9) and data from a libtorrent seeder found
// through an x.pe hint, and a trackerless magnet found through a loopback DHT (BEP 5) made of
// libtorrent sessions plus our own node.
import assert from "node:assert/strict";
import { parseMetainfo } from "../../lib/metainfo/mod.ts";
import {
  delay,
  differingFiles,
  interopAvailable,
  libtorrentInfoHash,
  makePayload,
  mktorrent,
  sameContents,
  startLibtorrent,
  tempDir,
} from "../_helpers/interop/mod.ts";
import { runCli } from "../_helpers/run_cli.ts";

Deno.test({
  name: "magnet commands against a libtorrent seeder (x.pe)",
  ignore: !interopAvailable(["libtorrent", "mktorrent"]),
  async fn(t) {
    await using dir = await tempDir();
    await makePayload(dir.path, [
      { path: "data/a.bin", size: 100_003 },
      { path: "data/empty.txt", size: 0 },
      { path: "data/b.bin", size: 170_000 },
    ]);
    const made = await mktorrent(dir.join("data"), {
      output: dir.join("data.torrent"),
      pieceLength: 32_768,
    });
    await using seeder = await startLibtorrent({
      mode: "seed",
      torrentPath: made.path,
      savePath: dir.path,
    });
    const magnet = `magnet:?xt=urn:btih:${made.infoHash}&dn=data&x.pe=${seeder.address}`;
    const dhtOff = ["--no-dht"];

    await t.step("magnet_handshake prints libtorrent's peer id and ut_metadata id", async () => {
      const result = await runCli(["magnet_handshake", ...dhtOff, magnet]);
      assert.equal(result.code, 0, result.stderr);
      const lines = result.stdout.trimEnd().split("\n");
      assert.equal(lines[0], `Peer ID: ${new TextEncoder().encode(seeder.peerId).toHex()}`);
      // libtorrent 2.0 assigns ut_metadata the extended message id 2.
      assert.equal(lines[1], "Peer Metadata Extension ID: 2");
    });

    await t.step(
      "magnet_info fetches the metadata; --save-torrent matches libtorrent",
      async () => {
        const saved = dir.join("saved.torrent");
        const result = await runCli(["magnet_info", ...dhtOff, "--save-torrent", saved, magnet]);
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, new RegExp(`^Info Hash: ${made.infoHash}$`, "m"));
        const info = await runCli(["info", made.path]);
        // Same lines as `info` on mktorrent's file, but for its tracker (the magnet has none).
        const withoutTracker = (text: string) => text.replace(/^Tracker URL: .*\n/m, "");
        assert.equal(result.stdout, withoutTracker(info.stdout));
        assert.equal(await libtorrentInfoHash(saved), made.infoHash);
        const original = parseMetainfo(await Deno.readFile(made.path));
        assert.deepEqual(parseMetainfo(await Deno.readFile(saved)).infoBytes, original.infoBytes);
      },
    );

    await t.step("magnet_download gets every file from libtorrent", async () => {
      const out = dir.join("out");
      const result = await runCli([
        "magnet_download",
        ...dhtOff,
        "-q",
        "--port",
        "0",
        "-o",
        out,
        magnet,
      ]);
      assert.equal(result.code, 0, result.stderr);
      const files = ["a.bin", "empty.txt", "b.bin"];
      assert.deepEqual(await differingFiles(dir.join("data"), out, files), []);
    });
  },
});

Deno.test({
  name: "a trackerless magnet is found through a DHT of libtorrent sessions",
  ignore: !interopAvailable(["libtorrent", "mktorrent"]),
  async fn() {
    await using dir = await tempDir();
    await makePayload(dir.path, [{ path: "dht.bin", size: 300_000 }]);
    const made = await mktorrent(dir.join("dht.bin"), {
      output: dir.join("dht.torrent"),
      pieceLength: 32_768,
    });
    const magnet = `magnet:?xt=urn:btih:${made.infoHash}&dn=dht.bin`;
    // A seeder with the torrent file and two more sessions that only have the magnet: all
    // three run DHT on their listen ports and know of each other.
    await using seeder = await startLibtorrent({
      mode: "seed",
      torrentPath: made.path,
      savePath: dir.path,
      dht: true,
    });
    const others = [];
    for (let i = 0; i < 2; i++) {
      await Deno.mkdir(dir.join(`lt${i}`));
      others.push(
        await startLibtorrent({
          mode: "download",
          magnet,
          savePath: dir.join(`lt${i}`),
          dht: true,
          dhtBootstrap: [seeder.address],
          exitOnFinish: false,
        }),
      );
    }
    try {
      for (const other of others) await seeder.addDhtNode("127.0.0.1", other.port);
      // Let the routing tables fill, then make the seeder announce itself into the DHT.
      await delay(1000);
      await seeder.dhtAnnounce();
      await delay(500);

      const out = dir.join("out.bin");
      const result = await runCli([
        "magnet_download",
        "-q",
        "--port",
        "0",
        "--dht-state",
        dir.join("dht.json"),
        "--dht-bootstrap",
        others[0]!.address,
        "--dht-bootstrap",
        others[1]!.address,
        "-o",
        out,
        magnet,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(await sameContents(out, dir.join("dht.bin")), "downloaded file differs");
      // Our node saved what it learnt of the libtorrent nodes.
      const state = JSON.parse(await Deno.readTextFile(dir.join("dht.json")));
      assert.ok(state.nodes.length >= 2, JSON.stringify(state));
    } finally {
      await Promise.all(others.map((other) => other.stop()));
    }
  },
});
