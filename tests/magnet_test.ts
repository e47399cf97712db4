/**
 * Magnet links end to end over loopback (BEP 9 over BEP 10, BEP 5): `resolveMagnet` finds peers
 * through a tracker, `x.pe` hints or a DHT of our own nodes, fetches the metadata from scripted
 * metadata-serving peers, and the data then comes from our engine's seeder. Also the magnet
 * CLI commands, their output and one-line errors.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { encode } from "../lib/bencode/mod.ts";
import {
  buildTorrentFile,
  DhtPeerSource,
  downloadTorrent,
  magnetHandshake,
  resolveMagnet,
  torrentFileBytes,
} from "../lib/client/mod.ts";
import { DhtNode } from "../lib/dht/mod.ts";
import {
  createTorrent,
  formatMagnet,
  type MagnetLink,
  type Metainfo,
  parseMetainfo,
} from "../lib/metainfo/mod.ts";
import type { PeerAddress } from "../lib/peer/address.ts";
import { PeerConnection } from "../lib/peer/connection.ts";
import {
  decodeExtensionHandshake,
  encodeExtensionHandshake,
  ExtensionRegistry,
} from "../lib/peer/extension.ts";
import { generatePeerId, reservedBits } from "../lib/peer/handshake.ts";
import type { PeerMessage } from "../lib/peer/message.ts";
import { MetadataFetchError, metadataResponder } from "../lib/peer/metadata_exchange.ts";
import { decodeMetadataMessage, encodeMetadataMessage } from "../lib/peer/ut_metadata.ts";
import { MemoryStorage } from "../lib/storage/mod.ts";
import { serveTorrent } from "../lib/torrent/mod.ts";
import { startHttpTracker } from "./_helpers/http_tracker.ts";
import { assertOneLineError, runCli } from "./_helpers/run_cli.ts";

const HOST = "127.0.0.1";

/** A payload with NULs, 5 pieces of 16 KiB, the last one short. */
function payload(length = 70_000): Uint8Array {
  const data = new Uint8Array(length);
  for (let i = 0; i < length; i++) data[i] = (i * 7 + (i >> 9)) % 251;
  return data;
}

/** A torrent and an engine seeder of its data on loopback. */
async function seed(data: Uint8Array, name = "greeting.bin") {
  const { metainfo } = await createTorrent({ name, data }, { pieceLength: 16384 });
  const storage = new MemoryStorage(data.length);
  await storage.write(0, data);
  const seeder = await serveTorrent({ metainfo, storage, hostname: HOST });
  return { metainfo, seeder, address: { host: HOST, port: seeder.port } };
}

function magnetOf(metainfo: Metainfo, extra: Partial<MagnetLink> = {}): string {
  return formatMagnet({
    infoHash: metainfo.infoHash,
    displayName: metainfo.name,
    trackers: [],
    peers: [],
    webSeeds: [],
    ...extra,
  });
}

interface MetadataPeer extends AsyncDisposable {
  address: PeerAddress;
  /** Metadata pieces asked of this peer. */
  requests: number[];
  /** The reserved bytes of every client handshake. */
  reserved: Uint8Array[];
  /** The first message of every client after the BitTorrent handshake. */
  firstMessages: PeerMessage[];
}

/**
 * A scripted peer that serves only metadata (`ut_metadata` id 3) to any number of connections:
 * honestly, or, as a `liar`, with the first byte of every metadata piece flipped.
 */
function startMetadataPeer(info: Uint8Array, options: { liar?: boolean } = {}): MetadataPeer {
  const infoHash = new Uint8Array(createHash("sha1").update(info).digest());
  const served = info.slice();
  if (options.liar) { for (let i = 0; i < served.length; i += 16384) served[i]! ^= 0xff; }
  const respond = metadataResponder(served);
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const peerId = generatePeerId("-MP0001-");
  const conns = new Set<PeerConnection>();
  const tasks = new Set<Promise<void>>();
  const peer = {
    address: { host: HOST, port: listener.addr.port },
    requests: [] as number[],
    reserved: [] as Uint8Array[],
    firstMessages: [] as PeerMessage[],
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      for (const conn of conns) conn.close();
      await Promise.all(tasks);
    },
  };

  async function serve(conn: Deno.Conn): Promise<void> {
    let connection: PeerConnection;
    try {
      connection = await PeerConnection.accept(conn, {
        peerId,
        reserved: reservedBits({ extensionProtocol: true }),
        lookup: (hash) => hash.every((byte, i) => byte === infoHash[i]),
      });
    } catch (error) {
      // A client that hangs up during the handshake (e.g. it found the metadata elsewhere).
      assert.ok(error instanceof Error, String(error));
      return;
    }
    conns.add(connection);
    peer.reserved.push(connection.remoteReserved);
    const registry = new ExtensionRegistry({ ut_metadata: 3 });
    try {
      let first = true;
      for await (const message of connection.messages) {
        if (first) peer.firstMessages.push(message);
        first = false;
        if (message.type !== "extended") continue;
        if (message.id === 0) {
          registry.receiveHandshake(decodeExtensionHandshake(message.payload));
          await connection.send({
            type: "extended",
            id: 0,
            payload: encodeExtensionHandshake(
              registry.localHandshake({ metadataSize: info.length }),
            ),
          });
          continue;
        }
        if (registry.localName(message.id) !== "ut_metadata") continue;
        const request = decodeMetadataMessage(message.payload);
        if (request.type !== "request") continue;
        peer.requests.push(request.piece);
        const answer = respond(request);
        if (answer === undefined || !registry.supports("ut_metadata")) continue;
        await connection.send(
          registry.extendedMessage("ut_metadata", encodeMetadataMessage(answer)),
        );
      }
    } catch (error) {
      // The client hangs up as soon as it has what it wanted, possibly mid-send.
      assert.ok(error instanceof Error, String(error));
    } finally {
      conns.delete(connection);
      connection.close();
      await connection.closed;
    }
  }

  const accepting = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          return;
        }
        throw error;
      }
      const task = serve(conn).finally(() => tasks.delete(task));
      tasks.add(task);
    }
  })();
  return peer;
}

/** A fake-but-valid v1 info dictionary big enough for several 16 KiB metadata pieces. */
function bigInfo(pieces: number): Uint8Array {
  const hashes = new Uint8Array(pieces * 20);
  for (let i = 0; i < hashes.length; i++) hashes[i] = (i * 31 + 7) & 0xff;
  return encode({ length: pieces * 16384, name: "big.bin", "piece length": 16384, pieces: hashes });
}

Deno.test("resolveMagnet() finds our seeders through the tracker and the download completes", async () => {
  const data = payload();
  const { metainfo, seeder, address } = await seed(data);
  await using _seeder = seeder;
  // A second seeder of our own engine: both serve the metadata (BEP 9) and the data.
  const storage = new MemoryStorage(data.length);
  await storage.write(0, data);
  await using second = await serveTorrent({ metainfo, storage, hostname: HOST });
  await using tracker = await startHttpTracker();
  tracker.setPeers(metainfo.infoHash, [address, { host: HOST, port: second.port }]);
  const link = magnetOf(metainfo, { trackers: [tracker.url] });

  const found: PeerAddress[] = [];
  const resolved = await resolveMagnet(link, { onPeers: (peers) => found.push(...peers) });
  assert.deepEqual(resolved.infoBytes, metainfo.infoBytes);
  assert.deepEqual(resolved.infoHash, metainfo.infoHash);
  assert.equal(resolved.announce, tracker.url);
  assert.equal(tracker.announces.length, 1);
  assert.ok(tracker.announces[0]!.left > 0, "a magnet resolver does not pose as a seed");
  assert.equal(found.length, 2);

  const dir = await Deno.makeTempDir();
  try {
    const result = await downloadTorrent(resolved, {
      out: `${dir}/out.bin`,
      port: 0,
      hostname: HOST,
      useTrackers: false,
      peers: found,
    });
    assert.equal(result.complete, true);
    assert.deepEqual(await Deno.readFile(`${dir}/out.bin`), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("magnet_download with x.pe hints only, and --save-torrent keeps the info bytes", async () => {
  const data = payload(50_000);
  const { metainfo, seeder, address } = await seed(data, "hinted.bin");
  await using _seeder = seeder;
  await using metadataPeer = startMetadataPeer(metainfo.infoBytes);
  const link = magnetOf(metainfo, { peers: [metadataPeer.address, address] });
  const dir = await Deno.makeTempDir();
  try {
    const result = await runCli([
      "magnet_download",
      "--no-dht",
      "-q",
      "--port",
      "0",
      "--save-torrent",
      `${dir}/saved.torrent`,
      "-o",
      `${dir}/hinted.bin`,
      link,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /Downloaded hinted\.bin to /);
    assert.deepEqual(await Deno.readFile(`${dir}/hinted.bin`), data);
    const saved = await Deno.readFile(`${dir}/saved.torrent`);
    const parsed = parseMetainfo(saved);
    assert.deepEqual(parsed.infoHash, metainfo.infoHash);
    assert.deepEqual(parsed.infoBytes, metainfo.infoBytes);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveMagnet() gets metadata spread over several peers despite a liar", async () => {
  const info = bigInfo(10_000); // ~200 KB: 13 metadata pieces
  const honest = [startMetadataPeer(info), startMetadataPeer(info), startMetadataPeer(info)];
  const liar = startMetadataPeer(info, { liar: true });
  try {
    const infoHash = new Uint8Array(createHash("sha1").update(info).digest());
    const resolved = await resolveMagnet({
      infoHash,
      trackers: [],
      webSeeds: [],
      peers: [liar.address, ...honest.map((peer) => peer.address)],
    });
    assert.deepEqual(resolved.infoBytes, info);
    assert.equal(resolved.pieceCount, 10_000);
    assert.ok(liar.requests.length > 0, "the liar was asked");
    const asked = honest.filter((peer) => peer.requests.length > 0).length;
    assert.ok(asked >= 2, `pieces came from several honest peers, got ${asked}`);
  } finally {
    await Promise.all([...honest, liar].map((peer) => peer[Symbol.asyncDispose]()));
  }
});

Deno.test("resolveMagnet() fails in one line when every peer lies or none is found", async (t) => {
  const info = bigInfo(10);
  const infoHash = new Uint8Array(createHash("sha1").update(info).digest());
  await t.step("only a liar", async () => {
    await using liar = startMetadataPeer(info, { liar: true });
    await assert.rejects(
      resolveMagnet({ infoHash, trackers: [], webSeeds: [], peers: [liar.address] }),
      (error) =>
        error instanceof MetadataFetchError &&
        /none of 1 peers served it: 127\.0\.0\.1:\d+ \(.*does not match the info hash/.test(
          error.message,
        ),
    );
  });
  await t.step("a dead tracker and nothing else", async () => {
    await using tracker = await startHttpTracker();
    tracker.setResponse({ failure: "unknown torrent" });
    await assert.rejects(
      resolveMagnet({ infoHash, trackers: [tracker.url], webSeeds: [], peers: [] }),
      /no peers found \(tracker http:\/\/127\.0\.0\.1:\d+\/announce: .*unknown torrent/,
    );
  });
});

Deno.test("a trackerless magnet is found through a DHT of 20 nodes and downloaded", async () => {
  const data = payload(40_000);
  const { metainfo, seeder, address } = await seed(data, "dht.bin");
  await using _seeder = seeder;
  await using metadataPeer = startMetadataPeer(metainfo.infoBytes);
  const nodes: DhtNode[] = [];
  const sources: DhtPeerSource[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const bootstrap = nodes.length === 0 ? [] : [nodes[0]!.address, nodes.at(-1)!.address];
      nodes.push(
        await DhtNode.create({
          host: HOST,
          bootstrap,
          queryTimeoutMs: 500,
          maintenanceIntervalMs: false,
        }),
      );
    }
    await Promise.all(nodes.map((node) => node.bootstrap()));
    // The serving peers announce themselves from two different nodes.
    await nodes[3]!.announcePeer(metainfo.infoHash, metadataPeer.address.port);
    await nodes[11]!.announcePeer(metainfo.infoHash, address.port);

    const dht = await DhtPeerSource.open({
      host: HOST,
      bootstrap: [nodes[17]!.address],
      statePath: false,
      queryTimeoutMs: 500,
    });
    sources.push(dht);
    const link = magnetOf(metainfo); // no tr, no x.pe
    const resolved = await resolveMagnet(link, { dht, useTrackers: false, timeoutMs: 10_000 });
    assert.deepEqual(resolved.infoBytes, metainfo.infoBytes);

    const dir = await Deno.makeTempDir();
    try {
      const result = await downloadTorrent(resolved, {
        out: `${dir}/dht.bin`,
        port: 0,
        hostname: HOST,
        peerSource: ({ port, signal }) =>
          dht.peers(resolved.infoHash, { signal, announcePort: port, intervalMs: 1000 }),
      });
      assert.equal(result.complete, true);
      assert.deepEqual(await Deno.readFile(`${dir}/dht.bin`), data);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    // Our download announced itself too: another node now finds three peers.
    const peers = await nodes[5]!.getPeers(metainfo.infoHash);
    assert.equal(peers.length, 3, JSON.stringify(peers));
  } finally {
    await Promise.all(sources.map((source) => source.close()));
    await Promise.all(nodes.map((node) => node.close()));
  }
});

Deno.test("DhtPeerSource saves its routing table and loads it on the next run", async () => {
  await using router = await DhtNode.create({ host: HOST, maintenanceIntervalMs: false });
  const dir = await Deno.makeTempDir();
  try {
    const statePath = `${dir}/cache/dht.json`;
    const first = await DhtPeerSource.open({ host: HOST, bootstrap: [router.address], statePath });
    await first.ready;
    const id = first.node.id;
    await first.close();
    const saved = JSON.parse(await Deno.readTextFile(statePath));
    assert.equal(saved.id, id.toHex());
    assert.deepEqual(saved.nodes.map((node: { address: string }) => node.address), [
      `${HOST}:${router.address.port}`,
    ]);
    // No bootstrap node this time: the saved table is enough to find the router.
    await using second = await DhtPeerSource.open({ host: HOST, bootstrap: [], statePath });
    await second.ready;
    assert.deepEqual(second.node.id, id);
    assert.equal(second.node.nodeCount, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("magnetHandshake() reports the peer's id and ut_metadata id", async () => {
  const info = bigInfo(4);
  await using peer = startMetadataPeer(info);
  const infoHash = new Uint8Array(createHash("sha1").update(info).digest());
  const result = await magnetHandshake({
    infoHash,
    trackers: [],
    webSeeds: [],
    peers: [{ host: HOST, port: 1 }, peer.address],
  });
  assert.equal(result.metadataExtensionId, 3);
  assert.equal(new TextDecoder().decode(result.peerId.subarray(0, 8)), "-MP0001-");
  assert.equal(result.handshake.metadataSize, info.length);
  // The extension bit only (00 00 00 00 00 10 00 00), and our extension handshake first.
  assert.deepEqual([...peer.reserved[0]!], [0, 0, 0, 0, 0, 0x10, 0, 0]);
  const first = peer.firstMessages[0];
  assert.equal(first?.type === "extended" && first.id, 0);
});

Deno.test("buildTorrentFile() keeps raw info bytes and orders the other keys", () => {
  // Keys not in sorted order: the info hash must still be that of these exact bytes.
  const info = new TextEncoder().encode(
    "d4:name3:abc12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa6:lengthi5ee",
  );
  const bytes = buildTorrentFile(info, {
    announceList: [["http://a/1", "http://a/2"], ["udp://b:1"]],
    webSeeds: ["http://w/"],
  });
  const text = new TextDecoder().decode(bytes);
  assert.equal(
    text,
    "d8:announce10:http://a/1" +
      "13:announce-listll10:http://a/110:http://a/2el9:udp://b:1ee" +
      `4:info${new TextDecoder().decode(info)}` +
      "8:url-listl9:http://w/ee",
  );
  assert.throws(() => buildTorrentFile(new TextEncoder().encode("li1ee")), TypeError);
  assert.throws(() => buildTorrentFile(new TextEncoder().encode("d4:name")), TypeError);
});

Deno.test("torrentFileBytes() round-trips a torrent with tiers", async () => {
  const { metainfo } = await createTorrent({ name: "t", data: new Uint8Array(3) }, {
    announce: [["http://127.0.0.1:1/a"], ["http://127.0.0.1:2/a"]],
  });
  const again = parseMetainfo(torrentFileBytes(metainfo));
  assert.deepEqual(again.infoBytes, metainfo.infoBytes);
  assert.deepEqual(again.announceList, metainfo.announceList);
});

Deno.test("magnet CLI commands print the contract lines", async (t) => {
  const data = payload(40_000);
  const { metainfo, seeder, address } = await seed(data, "cli.bin");
  await using _seeder = seeder;
  await using metadataPeer = startMetadataPeer(metainfo.infoBytes);
  const hex = metainfo.infoHash.toHex();

  await t.step("magnet_parse", async () => {
    const link = `magnet:?xt=urn:btih:${hex}&dn=cli.bin` +
      `&tr=${encodeURIComponent("http://127.0.0.1:6969/announce")}&tr=udp%3A%2F%2Fx%3A1`;
    const result = await runCli(["magnet_parse", link]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.stdout.split("\n").slice(0, 2), [
      "Tracker URL: http://127.0.0.1:6969/announce",
      `Info Hash: ${hex}`,
    ]);
  });

  const link = magnetOf(metainfo, { peers: [metadataPeer.address, address] });

  await t.step("magnet_handshake", async () => {
    const only = magnetOf(metainfo, { peers: [metadataPeer.address] });
    const result = await runCli(["magnet_handshake", "--no-dht", only]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^Peer ID: [0-9a-f]{40}$/);
    assert.equal(lines[1], "Peer Metadata Extension ID: 3");
  });

  await t.step("magnet_info prints the same lines as info", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const magnetInfo = await runCli(["magnet_info", "--no-dht", link]);
      assert.equal(magnetInfo.code, 0, magnetInfo.stderr);
      await Deno.writeFile(`${dir}/cli.torrent`, torrentFileBytes(metainfo));
      const info = await runCli(["info", `${dir}/cli.torrent`]);
      assert.equal(magnetInfo.stdout, info.stdout);
      assert.match(magnetInfo.stdout, new RegExp(`Info Hash: ${hex}`));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("magnet_download_piece and download_piece with a magnet", async () => {
    const dir = await Deno.makeTempDir();
    try {
      for (const command of ["magnet_download_piece", "download_piece"]) {
        const result = await runCli([command, "--no-dht", "-o", `${dir}/p2`, link, "2"]);
        assert.equal(result.code, 0, result.stderr);
        assert.deepEqual(await Deno.readFile(`${dir}/p2`), data.subarray(32768, 40_000));
        await Deno.remove(`${dir}/p2`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("bad links fail with one error line", async () => {
    const cases: [string[], RegExp][] = [
      [
        ["magnet_parse", "http://example.com/"],
        /^error: Invalid magnet link: expected "magnet:\?"/,
      ],
      [["magnet_parse", "magnet:?xt=urn:btih:1234"], /info hash must be 40 hex or 32 base32/],
      [["magnet_info", "--no-dht", "magnet:?dn=x"], /missing xt/],
      [
        ["magnet_parse", `magnet:?xt=urn:btmh:1220${"ab".repeat(32)}`],
        /v2-only magnet links are not supported/,
      ],
      [
        ["magnet_info", "--no-dht", `magnet:?xt=urn:btih:${"ab".repeat(20)}`],
        /^error: Cannot fetch metadata for a{0}(ab){20}: no peers found$/,
      ],
      [["download", "--no-dht", "magnet:?xt=urn:btih:%zz"], /bad percent-encoding/],
      [
        [
          "magnet_info",
          "--dht-bootstrap",
          "127.0.0.1:1",
          "--dht-state",
          "/nonexistent/dht.json",
          `magnet:?xt=urn:btih:${"cd".repeat(20)}`,
        ],
        /no peers found \(DHT: Cannot search the DHT: no node answered/,
      ],
    ];
    for (const [args, pattern] of cases) {
      assertOneLineError(await runCli(args), 1, pattern);
    }
    assertOneLineError(
      await runCli(["magnet_info", "--dht-bootstrap", "nonsense", link]),
      2,
      /Cannot parse peer address "nonsense"/,
    );
  });
});
