// Proves the interop harness works on its own, without our client: independent trackers,
// creators, seeders and downloaders talk to each other on 127.0.0.1.
import assert from "node:assert/strict";
import dgram from "node:dgram";
import {
  differingFiles,
  freePort,
  interopAvailable,
  libtorrentCreateTorrent,
  libtorrentInfoHash,
  libtorrentTorrentInfo,
  makePayload,
  mktorrent,
  type PayloadFileSpec,
  sameContents,
  startAria2,
  startLibtorrent,
  startOpentracker,
  startTransmission,
  tempDir,
} from "../_helpers/interop/mod.ts";

// A multi-file payload: file boundaries fall inside 32 KiB pieces, one file is empty, one is
// nested, and the last piece is short.
const FILES: PayloadFileSpec[] = [
  { path: "multi/a.bin", size: 1_000_003 },
  { path: "multi/empty.txt", size: 0 },
  { path: "multi/sub/b.bin", size: 70_000 },
  { path: "multi/sub/c.bin", size: 5 },
  { path: "multi/z.bin", size: 2_500_017 },
];
const PIECE_LENGTH = 32_768;

function timed(label: string, started: number): void {
  console.log(`  ${label}: ${((performance.now() - started) / 1000).toFixed(2)} s`);
}

Deno.test("makePayload() is deterministic and freePort() gives a bindable TCP+UDP port", async () => {
  await using dir = await tempDir();
  const first = await makePayload(dir.join("one"), FILES);
  const second = await makePayload(dir.join("two"), FILES);
  const other = await makePayload(dir.join("three"), { files: FILES, seed: 2 });
  assert.equal(first.totalSize, 3_570_025);
  assert.equal(second.totalSize, first.totalSize);
  assert.deepEqual(
    await differingFiles(dir.join("one"), dir.join("two"), FILES.map((f) => f.path)),
    [],
  );
  assert.equal(
    await sameContents(first.files[0]!.absolutePath, other.files[0]!.absolutePath),
    false,
  );
  assert.equal((await Deno.stat(first.files[1]!.absolutePath)).size, 0);
  // Different files from the same seed differ too.
  const head = (await Deno.readFile(first.files[0]!.absolutePath)).subarray(0, 5);
  assert.notDeepEqual(head, await Deno.readFile(first.files[3]!.absolutePath));

  const port = await freePort();
  using listener = Deno.listen({ hostname: "127.0.0.1", port });
  assert.equal((listener.addr as Deno.NetAddr).port, port);
});

Deno.test({
  name: "mktorrent() and libtorrent agree on info hashes of a multi-file torrent",
  ignore: !interopAvailable(["mktorrent", "libtorrent"]),
  async fn() {
    await using dir = await tempDir();
    await makePayload(dir.path, FILES);
    const made = await mktorrent(dir.join("multi"), {
      output: dir.join("mk.torrent"),
      announce: ["http://127.0.0.1:1/announce"],
      pieceLength: PIECE_LENGTH,
    });
    assert.match(made.infoHash, /^[0-9a-f]{40}$/);
    const info = await libtorrentTorrentInfo(made.path);
    assert.equal(info.infoHash, made.infoHash);
    assert.equal(info.totalSize, 3_570_025);
    assert.equal(info.pieceLength, PIECE_LENGTH);
    assert.equal(info.numPieces, Math.ceil(3_570_025 / PIECE_LENGTH));
    assert.deepEqual(
      info.files.map((f) => f.path).sort(),
      FILES.map((f) => f.path).sort(),
    );

    const created = await libtorrentCreateTorrent(dir.join("multi"), {
      output: dir.join("lt.torrent"),
      pieceLength: PIECE_LENGTH,
      trackers: ["http://127.0.0.1:1/announce"],
    });
    assert.equal(await libtorrentInfoHash(created.path), created.infoHash);
    // Same files, same piece length, v1 only, no pad files: the same info dictionary.
    assert.equal(created.infoHash, made.infoHash);
  },
});

function udpConnect(port: number): Promise<Uint8Array> {
  // BEP 15 connect request: protocol id 0x41727101980 (8), action 0 (4), transaction id (4).
  const request = Uint8Array.fromHex("0000041727101980" + "00000000" + "c0ffee01");
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error("UDP tracker did not answer"));
    }, 3000);
    socket.on("message", (message: Uint8Array) => {
      clearTimeout(timer);
      socket.close(() => resolve(new Uint8Array(message)));
    });
    socket.send(request, port, "127.0.0.1");
  });
}

Deno.test({
  name: "startOpentracker() serves HTTP and UDP and reloads its whitelist",
  ignore: !interopAvailable(["opentracker"]),
  async fn() {
    const allowed = "0123456789abcdef0123456789abcdef01234567";
    const later = "aa".repeat(20);
    await using tracker = await startOpentracker({ infoHashes: [allowed] });
    const announce = (hex: string) =>
      fetch(
        `${tracker.httpUrl}?info_hash=${hex.replace(/../g, "%$&")}` +
          "&peer_id=-TS0001-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=0&compact=1",
      ).then((response) => response.text());
    assert.doesNotMatch(await announce(allowed), /failure reason/);
    assert.match(await announce(later), /not authorized/);
    await tracker.whitelist([later]);
    assert.doesNotMatch(await announce(later), /failure reason/);
    assert.deepEqual(tracker.infoHashes, [allowed, later]);

    const reply = await udpConnect(tracker.port);
    // Connect response: action 0 (4), transaction id (4), connection id (8).
    assert.equal(reply.length, 16);
    assert.equal(reply.subarray(0, 8).toHex(), "00000000c0ffee01");
    await assert.rejects(tracker.whitelist(["xyz"]), TypeError);
  },
});

Deno.test({
  name: "libtorrent seeder serves an aria2 downloader through opentracker (HTTP)",
  ignore: !interopAvailable(["opentracker", "libtorrent", "aria2c", "mktorrent"]),
  async fn() {
    const started = performance.now();
    await using dir = await tempDir();
    await makePayload(dir.join("seed"), FILES);
    await using tracker = await startOpentracker();
    const torrent = await mktorrent(dir.join("seed", "multi"), {
      output: dir.join("multi.torrent"),
      announce: [tracker.httpUrl],
      pieceLength: PIECE_LENGTH,
    });
    await tracker.whitelist([torrent.infoHash]);
    await using seeder = await startLibtorrent({
      mode: "seed",
      torrentPath: torrent.path,
      savePath: dir.join("seed"),
    });
    assert.equal(seeder.infoHash, torrent.infoHash);
    await seeder.waitForEvent("tracker_reply");
    timed("tracker + seeder ready", started);

    const downloadStarted = performance.now();
    await using leecher = await startAria2({
      mode: "download",
      torrentPath: torrent.path,
      dir: dir.join("out"),
    });
    const { seconds } = await leecher.finished;
    timed(`aria2 download (aria2 reports ${seconds.toFixed(2)} s)`, downloadStarted);
    // aria2 creates the empty file too.
    const paths = FILES.map((f) => f.path);
    assert.deepEqual(await differingFiles(dir.join("seed"), dir.join("out"), paths), []);
    timed("whole case", started);
  },
});

Deno.test({
  name: "libtorrent seeder serves a libtorrent downloader by direct connect and by magnet",
  ignore: !interopAvailable(["libtorrent", "mktorrent"]),
  async fn(t) {
    await using dir = await tempDir();
    await makePayload(dir.join("seed"), FILES);
    const torrent = await mktorrent(dir.join("seed", "multi"), {
      output: dir.join("multi.torrent"),
      pieceLength: PIECE_LENGTH,
    });
    await using seeder = await startLibtorrent({
      mode: "seed",
      torrentPath: torrent.path,
      savePath: dir.join("seed"),
    });
    assert.match(seeder.peerId, /^-LT2080-/);

    await t.step("handshake shows the reported info hash and peer id", async () => {
      using conn = await Deno.connect({ hostname: "127.0.0.1", port: seeder.port });
      const handshake = new Uint8Array(68);
      handshake[0] = 19; // pstrlen
      handshake.set(new TextEncoder().encode("BitTorrent protocol"), 1); // pstr
      // reserved (8 zero bytes at 20..27)
      handshake.set(Uint8Array.fromHex(torrent.infoHash), 28); // info_hash
      handshake.set(new TextEncoder().encode("-TS0001-harnesstest1"), 48); // peer_id
      await conn.write(handshake);
      const reply = new Uint8Array(68);
      let filled = 0;
      while (filled < 68) {
        const n = await conn.read(reply.subarray(filled));
        assert.notEqual(n, null, "seeder closed before its handshake");
        filled += n!;
      }
      assert.equal(reply.subarray(28, 48).toHex(), torrent.infoHash);
      assert.equal(new TextDecoder().decode(reply.subarray(48, 68)), seeder.peerId);
    });

    await t.step("direct connect (no tracker)", async () => {
      const started = performance.now();
      await using leecher = await startLibtorrent({
        mode: "download",
        torrentPath: torrent.path,
        savePath: dir.join("out1"),
        peers: [seeder.address],
      });
      const finished = await leecher.finished;
      await leecher.exited;
      timed(`libtorrent download (libtorrent reports ${finished.seconds} s)`, started);
      assert.equal(finished.totalDone, 3_570_025);
      const paths = FILES.map((f) => f.path);
      assert.deepEqual(await differingFiles(dir.join("seed"), dir.join("out1"), paths), []);
      // The seeder saw the downloader's reported peer id on the wire.
      const hex = new TextEncoder().encode(leecher.peerId).toHex();
      await seeder.waitForEvent((e) => e.event === "peer_disconnected" && e.peer_id === hex);
    });

    await t.step("magnet (ut_metadata from the seeder)", async () => {
      const started = performance.now();
      await using leecher = await startLibtorrent({
        mode: "download",
        magnet: `magnet:?xt=urn:btih:${torrent.infoHash}&dn=multi`,
        savePath: dir.join("out2"),
        peers: [seeder.address],
      });
      assert.equal(leecher.infoHash, torrent.infoHash);
      await leecher.finished;
      timed("libtorrent magnet download", started);
      await leecher.waitForEvent("metadata_received");
      const paths = FILES.map((f) => f.path);
      assert.deepEqual(await differingFiles(dir.join("seed"), dir.join("out2"), paths), []);
    });
  },
});

Deno.test({
  name: "aria2 seeder serves a libtorrent downloader through opentracker (UDP)",
  ignore: !interopAvailable(["opentracker", "libtorrent", "aria2c", "mktorrent"]),
  async fn() {
    const started = performance.now();
    await using dir = await tempDir();
    await makePayload(dir.join("seed"), FILES);
    await using tracker = await startOpentracker();
    const torrent = await mktorrent(dir.join("seed", "multi"), {
      output: dir.join("multi.torrent"),
      announce: [tracker.udpUrl],
      pieceLength: PIECE_LENGTH,
    });
    await tracker.whitelist([torrent.infoHash]);
    // A udp:// announce URL turns aria2's DHT socket on (its only UDP tracker transport).
    await using seeder = await startAria2({
      mode: "seed",
      torrentPath: torrent.path,
      dir: dir.join("seed"),
    });
    timed("tracker + aria2 seeder ready", started);
    const downloadStarted = performance.now();
    await using leecher = await startLibtorrent({
      mode: "download",
      torrentPath: torrent.path,
      savePath: dir.join("out"),
      // Stay up after finishing: aria2's disconnect (with its peer id) may come after that.
      exitOnFinish: false,
    });
    await leecher.finished;
    timed("libtorrent download from aria2 via UDP tracker", downloadStarted);
    const reply = await leecher.waitForEvent("tracker_reply");
    assert.equal(reply.url, tracker.udpUrl);
    const paths = FILES.map((f) => f.path);
    assert.deepEqual(await differingFiles(dir.join("seed"), dir.join("out"), paths), []);
    // The downloader saw aria2's reported peer id.
    const hex = new TextEncoder().encode(seeder.peerId).toHex();
    await leecher.waitForEvent((e) => e.event === "peer_disconnected" && e.peer_id === hex);
    timed("whole case", started);
  },
});

Deno.test({
  name: "transmission seeder serves a libtorrent downloader that dials it",
  ignore: !interopAvailable(["transmission-cli", "libtorrent", "mktorrent"]),
  async fn() {
    const started = performance.now();
    await using dir = await tempDir();
    await makePayload(dir.join("seed"), FILES);
    const torrent = await mktorrent(dir.join("seed", "multi"), {
      output: dir.join("multi.torrent"),
      pieceLength: PIECE_LENGTH,
    });
    await using seeder = await startTransmission({
      mode: "seed",
      torrentPath: torrent.path,
      dir: dir.join("seed"),
    });
    timed("transmission ready", started);
    const downloadStarted = performance.now();
    await using leecher = await startLibtorrent({
      mode: "download",
      torrentPath: torrent.path,
      savePath: dir.join("out"),
      peers: [seeder.address],
    });
    await leecher.finished;
    timed("libtorrent download from transmission", downloadStarted);
    // Transmission does not create empty files, but libtorrent as the downloader does.
    const paths = FILES.map((f) => f.path);
    assert.deepEqual(await differingFiles(dir.join("seed"), dir.join("out"), paths), []);
    timed("whole case", started);
  },
});
