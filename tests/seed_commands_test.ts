// End-to-end tests of the five seed commands, run as subprocesses against real servers on
// loopback: an HTTP tracker, our serving peer, and scripted misbehaving peers.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createTorrent, type Metainfo } from "../lib/metainfo/mod.ts";
import { formatPeerAddress } from "../lib/peer/address.ts";
import { MemoryStorage } from "../lib/storage/mod.ts";
import { serveTorrent } from "../lib/torrent/mod.ts";
import { startHttpTracker } from "./_helpers/http_tracker.ts";
import { assertOneLineError, runCli } from "./_helpers/run_cli.ts";
import { ScriptedSeeder } from "./_helpers/scripted_peer.ts";

const sha1 = (bytes: Uint8Array) => createHash("sha1").update(bytes).digest("hex");

/** A 5-piece torrent (last piece short) written to a temp dir, announcing to `announce`. */
async function fixture(announce?: string) {
  // Deterministic bytes with NULs inside; 4 full 32 KiB pieces and a 1000-byte last piece.
  const data = new Uint8Array(4 * 32768 + 1000).map((_, i) => (i * 7919) % 251);
  const { torrent, metainfo } = await createTorrent({ name: "payload.bin", data }, {
    pieceLength: 32768,
    ...(announce ? { announce } : {}),
  });
  const dir = await Deno.makeTempDir({ prefix: "dt-seed-commands-" });
  const torrentPath = `${dir}/payload.torrent`;
  await Deno.writeFile(torrentPath, torrent);
  return { data, metainfo, dir, torrentPath };
}

async function seed(metainfo: Metainfo, data: Uint8Array) {
  const storage = new MemoryStorage(data.length);
  await storage.write(0, data);
  return await serveTorrent({ metainfo, storage, hostname: "127.0.0.1" });
}

Deno.test("cli info prints the torrent's lines and --json", async () => {
  const { metainfo, dir, torrentPath } = await fixture("http://127.0.0.1:1/announce");
  try {
    const result = await runCli(["info", torrentPath]);
    assert.equal(result.code, 0, result.stderr);
    const hashes = [0, 1, 2, 3, 4].map((i) => metainfo.pieceHashes.subarray(i * 20, i * 20 + 20));
    assert.equal(
      result.stdout,
      [
        "Tracker URL: http://127.0.0.1:1/announce",
        `Length: ${4 * 32768 + 1000}`,
        `Info Hash: ${metainfo.infoHash.toHex()}`,
        "Piece Length: 32768",
        "Piece Hashes:",
        ...hashes.map((hash) => hash.toHex()),
        "",
      ].join("\n"),
    );
    const json = JSON.parse((await runCli(["info", "--json", torrentPath])).stdout);
    assert.equal(json.infoHash, metainfo.infoHash.toHex());
    assert.equal(json.pieceHashes.length, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli info lists the files of a multi-file torrent made by mktorrent", async () => {
  const result = await runCli(["info", "testdata/mktorrent_multi.torrent"]);
  assert.equal(result.code, 0, result.stderr);
  // The info hash libtorrent and mktorrent compute for this file (see metainfo_test.ts).
  assert.match(result.stdout, /^Info Hash: 345d3a9c7f41c897c752bb41576fa106ae917620$/m);
  assert.match(result.stdout, /^Length: 91180$/m);
  assert.match(result.stdout, /^Files:\nalpha\.txt \(1150\)\nbeta\/one\.bin \(40000\)/m);
});

Deno.test("cli info fails with one line on bad input", async (t) => {
  await t.step("missing file", async () => {
    assertOneLineError(await runCli(["info", "no/such.torrent"]), 1, /no such file/);
  });
  await t.step("truncated torrent", async () => {
    assertOneLineError(
      await runCli(["info", "testdata/invalid/truncated.torrent"]),
      1,
      /^error: Invalid torrent: not bencode: .* at offset \d+$/,
    );
  });
  await t.step("broken field", async () => {
    assertOneLineError(
      await runCli(["info", "testdata/invalid/path_dotdot.torrent"]),
      1,
      /^error: Invalid torrent: /,
    );
  });
});

Deno.test("cli peers prints the tracker's peers, one ip:port per line", async () => {
  await using tracker = await startHttpTracker();
  const { metainfo, dir, torrentPath } = await fixture(tracker.url);
  try {
    tracker.setPeers(metainfo.infoHash, [
      { host: "127.0.0.1", port: 51413 },
      { host: "10.0.0.2", port: 6881 },
      { host: "::1", port: 6882 },
    ]);
    const result = await runCli(["peers", torrentPath]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.stdout.trim().split("\n").sort(), [
      "10.0.0.2:6881",
      "127.0.0.1:51413",
      "[::1]:6882",
    ]);
    const seen = tracker.announces.at(-1)!;
    assert.deepEqual(seen.infoHash, metainfo.infoHash);
    assert.equal(seen.left, metainfo.totalLength);
    assert.equal(seen.peerId.length, 20);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli peers shows the tracker's failure reason or a dead tracker in one line", async (t) => {
  await using tracker = await startHttpTracker();
  const { dir, torrentPath } = await fixture(tracker.url);
  const dead = await fixture("http://127.0.0.1:9/announce");
  try {
    await t.step("failure reason", async () => {
      tracker.setResponse({ failure: "torrent not registered" });
      assertOneLineError(await runCli(["peers", torrentPath]), 1, /torrent not registered/);
    });
    await t.step("dead tracker", async () => {
      assertOneLineError(await runCli(["peers", dead.torrentPath]), 1, /127\.0\.0\.1:9/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(dead.dir, { recursive: true });
  }
});

Deno.test("cli handshake prints the remote peer id", async (t) => {
  const { data, metainfo, dir, torrentPath } = await fixture();
  try {
    await using seeder = await seed(metainfo, data);
    await t.step("our serving peer", async () => {
      const result = await runCli(["handshake", torrentPath, `127.0.0.1:${seeder.port}`]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `Peer ID: ${seeder.torrent.peerId.toHex()}\n`);
    });
    await t.step("a refusing peer", async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = listener.addr.port;
      listener.close();
      assertOneLineError(
        await runCli(["handshake", torrentPath, `127.0.0.1:${port}`]),
        1,
        /refused/i,
      );
    });
    await t.step("a bad address is a usage error", async () => {
      assertOneLineError(await runCli(["handshake", torrentPath, "nowhere"]), 2, /nowhere/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli download_piece fetches verified pieces through the tracker", async (t) => {
  await using tracker = await startHttpTracker();
  const { data, metainfo, dir, torrentPath } = await fixture(tracker.url);
  try {
    await using seeder = await seed(metainfo, data);
    tracker.setPeers(metainfo.infoHash, [{ host: "127.0.0.1", port: seeder.port }]);
    for (const index of [0, 2, 4]) {
      await t.step(`piece ${index}`, async () => {
        const out = `${dir}/piece-${index}`;
        const result = await runCli(["download_piece", "-o", out, torrentPath, String(index)]);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, `Piece ${index} downloaded to ${out}.\n`);
        const bytes = await Deno.readFile(out);
        assert.equal(bytes.length, index === 4 ? 1000 : 32768);
        assert.equal(
          sha1(bytes),
          metainfo.pieceHashes.subarray(index * 20, index * 20 + 20).toHex(),
        );
        assert.deepEqual(bytes, data.subarray(index * 32768, index * 32768 + bytes.length));
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli download_piece skips a corrupting peer and uses another", async () => {
  const { data, metainfo, dir, torrentPath } = await fixture();
  try {
    await using liar = new ScriptedSeeder({ torrent: metainfo, data, corruptPieces: [1] });
    await using honest = await seed(metainfo, data);
    const out = `${dir}/piece-1`;
    const result = await runCli([
      "download_piece",
      "-o",
      out,
      "--peer",
      formatPeerAddress(liar.address),
      "--peer",
      `127.0.0.1:${honest.port}`,
      torrentPath,
      "1",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await Deno.readFile(out), data.subarray(32768, 65536));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli download_piece writes nothing when the only peer corrupts the piece", async () => {
  const { data, metainfo, dir, torrentPath } = await fixture();
  try {
    await using liar = new ScriptedSeeder({ torrent: metainfo, data, corruptPieces: [1] });
    const out = `${dir}/piece-1`;
    const result = await runCli([
      "download_piece",
      "-o",
      out,
      "--peer",
      formatPeerAddress(liar.address),
      torrentPath,
      "1",
    ]);
    assertOneLineError(result, 1, /Cannot download piece 1/);
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli download_piece errors: out-of-range index, refusing peer", async (t) => {
  const { dir, torrentPath } = await fixture();
  try {
    await t.step("index out of range", async () => {
      assertOneLineError(
        await runCli([
          "download_piece",
          "-o",
          `${dir}/x`,
          "--peer",
          "127.0.0.1:1",
          torrentPath,
          "5",
        ]),
        1,
        /Piece index 5 is out of range: the torrent has 5 pieces/,
      );
    });
    await t.step("index not a number", async () => {
      assertOneLineError(
        await runCli(["download_piece", "-o", `${dir}/x`, torrentPath, "two"]),
        2,
        /not a whole number/,
      );
    });
    await t.step("refusing peer", async () => {
      const result = await runCli([
        "download_piece",
        "-o",
        `${dir}/x`,
        "--peer",
        "127.0.0.1:9",
        torrentPath,
        "0",
      ]);
      assertOneLineError(result, 1, /every peer failed: 127\.0\.0\.1:9 \(connection refused\)/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
