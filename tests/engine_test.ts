import assert from "node:assert/strict";
import { createTorrent, type Metainfo } from "../lib/metainfo/mod.ts";
import { Bitfield } from "../lib/piece/mod.ts";
import { MemoryStorage } from "../lib/storage/mod.ts";
import {
  PeerListener,
  serveTorrent,
  Torrent,
  type TorrentEvent,
  type TorrentOptions,
} from "../lib/torrent/mod.ts";
import { RawPeer, ScriptedSeeder } from "./_helpers/scripted_peer.ts";

/** Deterministic bytes with a NUL here and there, so no two pieces are alike. */
function testData(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed * 0x9e3779b1 >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

async function fixture(
  length: number,
  pieceLength: number,
): Promise<{ data: Uint8Array; metainfo: Metainfo }> {
  const data = testData(length);
  const { metainfo } = await createTorrent({ name: "fixture.bin", data }, { pieceLength });
  return { data, metainfo };
}

async function filledStorage(data: Uint8Array): Promise<MemoryStorage> {
  const storage = new MemoryStorage(data.length);
  await storage.write(0, data);
  return storage;
}

function fieldOf(pieceCount: number, pieces: Iterable<number>): Bitfield {
  const field = new Bitfield(pieceCount);
  for (const index of pieces) field.set(index);
  return field;
}

/** A downloading torrent that records its events. */
function leecher(
  metainfo: Metainfo,
  options: Partial<TorrentOptions> = {},
): { torrent: Torrent; storage: MemoryStorage; events: TorrentEvent[] } {
  const storage = new MemoryStorage(metainfo.totalLength);
  const events: TorrentEvent[] = [];
  const torrent = new Torrent({
    metainfo,
    storage,
    onEvent: (event) => events.push(event),
    ...options,
  });
  return { torrent, storage, events };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("Torrent downloads byte-identical data from a serving Torrent", async () => {
  const { data, metainfo } = await fixture(1_000_003, 65536);
  const source = await filledStorage(data);
  await using server = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
  assert.equal(server.torrent.have.count, metainfo.pieceCount, "the check found every piece");

  const { torrent, storage, events } = leecher(metainfo);
  try {
    torrent.start();
    torrent.addPeers([{ host: "127.0.0.1", port: server.port }]);
    await withTimeout(torrent.done, 8000, "download");
    assert.deepEqual(storage.bytes, data);
    const stats = torrent.stats();
    assert.equal(stats.piecesHave, metainfo.pieceCount);
    assert.equal(stats.left, 0);
    assert.equal(stats.verifiedBytes, data.length);
    assert.ok(stats.downloaded >= data.length);
    assert.equal(events.filter((e) => e.type === "piece-verified").length, metainfo.pieceCount);
    const types = events.map((e) => e.type);
    assert.equal(types.indexOf("done"), types.lastIndexOf("piece-verified") + 1);
    // Now a seed, it drops the other seed: two seeds have nothing to trade.
    await withTimeout(
      (async () => {
        while (torrent.stats().peersConnected > 0) await delay(10);
      })(),
      2000,
      "seed-to-seed disconnect",
    );
    assert.ok(server.torrent.stats().uploaded >= data.length);
  } finally {
    await torrent.close();
  }
});

Deno.test("Torrent combines a swarm of 3 partial seeders", async () => {
  const { data, metainfo } = await fixture(600_000, 32768);
  const count = metainfo.pieceCount;
  const servers = [];
  for (let k = 0; k < 3; k++) {
    // Seeder k holds the pieces i with i % 3 === k: nobody has everything.
    const have = fieldOf(
      count,
      Array.from({ length: count }, (_, i) => i).filter((i) => i % 3 === k),
    );
    servers.push(
      await serveTorrent({
        metainfo,
        storage: await filledStorage(data),
        have,
        hostname: "127.0.0.1",
      }),
    );
  }
  const { torrent, storage } = leecher(metainfo);
  try {
    torrent.start();
    torrent.addPeers(servers.map((s) => ({ host: "127.0.0.1", port: s.port })));
    await withTimeout(torrent.done, 8000, "swarm download");
    assert.deepEqual(storage.bytes, data);
    for (const server of servers) {
      assert.ok(server.torrent.stats().uploaded > 0, "every seeder contributed");
    }
  } finally {
    await torrent.close();
    for (const server of servers) await server.close();
  }
});

Deno.test("Torrent bans a peer that sends corrupt data and re-fetches elsewhere", async () => {
  // One block per piece, so every piece has a single contributor.
  const { data, metainfo } = await fixture(16384 * 24, 16384);
  await using bad = new ScriptedSeeder({
    torrent: metainfo,
    data,
    corruptPieces: Array.from({ length: metainfo.pieceCount }, (_, i) => i),
  });
  await using good = new ScriptedSeeder({ torrent: metainfo, data });
  const { torrent, storage, events } = leecher(metainfo);
  try {
    torrent.start();
    torrent.addPeers([bad.address]);
    // Let the bad peer deliver something first.
    await withTimeout(
      new Promise<void>((resolve) =>
        torrent.subscribe((e) => {
          if (e.type === "peer-banned") resolve();
        })
      ),
      5000,
      "ban",
    );
    torrent.addPeers([good.address]);
    await withTimeout(torrent.done, 8000, "download after ban");
    assert.deepEqual(storage.bytes, data);
    const banned = events.flatMap((e) => e.type === "peer-banned" ? [e.address.port] : []);
    assert.deepEqual(banned, [bad.port]);
    assert.ok(events.some((e) => e.type === "piece-failed"));
    assert.equal(torrent.stats().peersBanned, 1);
    // Once banned, the address is never dialled again.
    assert.equal(torrent.addPeers([bad.address]), 0);
    assert.equal(bad.connections, 1);
  } finally {
    await torrent.close();
  }
});

Deno.test("Torrent recovers from a peer dropping the connection mid-piece", async () => {
  const { data, metainfo } = await fixture(65536 * 6, 65536);
  // Drops after 2 of the 4 blocks of its first piece.
  await using dropper = new ScriptedSeeder({ torrent: metainfo, data, dropAfterBlocks: 2 });
  await using good = new ScriptedSeeder({ torrent: metainfo, data });
  const { torrent, storage, events } = leecher(metainfo);
  try {
    torrent.start();
    torrent.addPeers([dropper.address]);
    await withTimeout(
      new Promise<void>((resolve) =>
        torrent.subscribe((e) => {
          if (e.type === "peer-disconnected") resolve();
        })
      ),
      5000,
      "drop",
    );
    assert.equal(torrent.stats().piecesHave, 0, "no piece completed from half a piece");
    torrent.addPeers([good.address]);
    await withTimeout(torrent.done, 8000, "download after drop");
    assert.deepEqual(storage.bytes, data);
    assert.ok(events.some((e) => e.type === "peer-disconnected"));
  } finally {
    await torrent.close();
  }
});

Deno.test("Torrent re-issues requests dropped by a choke", async () => {
  const { data, metainfo } = await fixture(16384 * 40, 32768);
  await using choker = new ScriptedSeeder({
    torrent: metainfo,
    data,
    chokeAfterBlocks: 5,
    unchokeAfterMs: 150,
  });
  const { torrent, storage } = leecher(metainfo);
  try {
    torrent.start();
    torrent.addPeers([choker.address]);
    await withTimeout(torrent.done, 8000, "download through a choke");
    assert.deepEqual(storage.bytes, data);
    // Requests outstanding at the choke were dropped by the peer and asked again.
    const seen = new Map<string, number>();
    for (const key of choker.requests) seen.set(key, (seen.get(key) ?? 0) + 1);
    assert.ok([...seen.values()].some((n) => n > 1), "some block was requested twice");
  } finally {
    await torrent.close();
  }
});

Deno.test("Torrent gives a silent peer's requests to another peer (snub)", async () => {
  const { data, metainfo } = await fixture(16384 * 16, 32768);
  await using silent = new ScriptedSeeder({ torrent: metainfo, data, silent: true });
  await using good = new ScriptedSeeder({ torrent: metainfo, data });
  const { torrent, storage } = leecher(metainfo, { snubTimeoutMs: 300, tickMs: 50 });
  try {
    torrent.start();
    torrent.addPeers([silent.address]);
    await withTimeout(
      (async () => {
        while (!torrent.peers().some((p) => p.snubbed)) await delay(20);
      })(),
      3000,
      "snub",
    );
    assert.equal(torrent.peers()[0]!.requestsInFlight, 1, "a snubbing peer keeps one request");
    assert.ok(silent.cancels.length > 0, "requests of the snubbing peer were cancelled");
    torrent.addPeers([good.address]);
    await withTimeout(torrent.done, 8000, "download beside a silent peer");
    assert.deepEqual(storage.bytes, data);
    assert.equal(silent.blocksServed, 0);
  } finally {
    await torrent.close();
  }
});

Deno.test("Torrent sends keep-alives while it has nothing to say and drops a silent peer", async () => {
  const { data, metainfo } = await fixture(16384 * 4, 32768);
  // Unchokes, then never sends another byte, not even a keep-alive.
  await using silent = new ScriptedSeeder({ torrent: metainfo, data, silent: true });
  const { torrent } = leecher(metainfo, {
    tickMs: 20,
    keepAliveMs: 100,
    idleTimeoutMs: 700,
    snubTimeoutMs: 60_000,
  });
  try {
    torrent.start();
    torrent.addPeers([silent.address]);
    await withTimeout(
      (async () => {
        while (silent.keepAlives < 2) await delay(20);
      })(),
      3000,
      "keep-alives",
    );
    assert.equal(silent.closedByPeer, 0, "not dropped before the idle timeout");
    await withTimeout(
      (async () => {
        while (silent.closedByPeer < 1) await delay(20);
      })(),
      3000,
      "idle close",
    );
  } finally {
    await torrent.close();
  }
});

Deno.test("Torrent downloads only the wanted pieces", async () => {
  const { data, metainfo } = await fixture(16384 * 10 + 123, 32768);
  const source = await filledStorage(data);
  await using server = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
  for (const index of [2, metainfo.pieceCount - 1]) {
    const { torrent, storage } = leecher(metainfo, { wantedPieces: [index] });
    try {
      torrent.start();
      torrent.addPeers([{ host: "127.0.0.1", port: server.port }]);
      await withTimeout(torrent.done, 5000, `piece ${index}`);
      const start = index * metainfo.pieceLength;
      const end = Math.min(start + metainfo.pieceLength, data.length);
      assert.deepEqual(storage.bytes.subarray(start, end), data.subarray(start, end));
      assert.deepEqual([...torrent.have], [index]);
      assert.equal(torrent.stats().left, 0);
      assert.ok(torrent.stats().downloaded <= metainfo.pieceLength * 2, "no other piece fetched");
    } finally {
      await torrent.close();
    }
  }
});

Deno.test("Torrent closes a peer that sends an invalid bitfield and carries on", async () => {
  const { data, metainfo } = await fixture(16384 * 9, 16384);
  // 9 pieces take 2 bytes; the spare bits of the second byte must be zero.
  await using liar = new ScriptedSeeder({
    torrent: metainfo,
    data,
    badBitfield: new Uint8Array([0xff, 0xff]),
  });
  await using good = new ScriptedSeeder({ torrent: metainfo, data });
  const { torrent, storage, events } = leecher(metainfo);
  try {
    torrent.start();
    torrent.addPeers([liar.address, good.address]);
    await withTimeout(torrent.done, 5000, "download beside a liar");
    assert.deepEqual(storage.bytes, data);
    const closed = events.find((e) =>
      e.type === "peer-disconnected" && e.address.port === liar.port
    );
    assert.ok(closed && closed.type === "peer-disconnected");
    assert.match(String((closed.reason as Error).message), /bitfield/);
  } finally {
    await torrent.close();
  }
});

Deno.test("serveTorrent answers a raw peer and rejects bad requests (BEP 6)", async () => {
  const { data, metainfo } = await fixture(16384 * 5, 32768);
  const source = await filledStorage(data);
  await using server = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
  const peer = await RawPeer.connect(server.port, { infoHash: metainfo.infoHash, fast: true });
  try {
    assert.deepEqual(peer.remotePeerId, server.torrent.peerId);
    await peer.expect("have-all");
    await peer.send({ type: "interested" });
    await peer.expect("unchoke");
    await peer.send(
      { type: "request", index: 1, begin: 16384, length: 16384 }, // valid
      { type: "request", index: 99, begin: 0, length: 16384 }, // no such piece
      { type: "request", index: 2, begin: 16384, length: 16384 }, // past the last piece's end
      { type: "request", index: 0, begin: 0, length: 32768 }, // larger than 16 KiB
    );
    // Rejects go out at once, the piece after a storage read: collect both.
    const pieces = [];
    const rejects = [];
    while (pieces.length < 1 || rejects.length < 3) {
      const message = await peer.next();
      assert.ok(message, "connection stayed open");
      if (message.type === "piece") pieces.push(message);
      if (message.type === "reject") rejects.push(message);
    }
    assert.equal(pieces[0]!.index, 1);
    assert.deepEqual(pieces[0]!.block, data.subarray(32768 + 16384, 32768 * 2));
    assert.deepEqual(rejects.map((r) => r.index).sort(), [0, 2, 99]);
  } finally {
    peer.close();
  }
});

Deno.test("PeerListener closes connections for unknown info hashes", async () => {
  await using listener = PeerListener.listen({ hostname: "127.0.0.1" });
  const unregister = listener.register(new Uint8Array(20).fill(1), () => {
    throw new Error("Must not be called");
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
  const { encodeHandshake } = await import("../lib/peer/handshake.ts");
  await conn.write(
    encodeHandshake({ infoHash: new Uint8Array(20).fill(2), peerId: new Uint8Array(20) }),
  );
  const buffer = new Uint8Array(68);
  let result: number | null = 0;
  try {
    result = await conn.read(buffer);
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
    result = null;
  }
  assert.equal(result, null, "the listener hung up without answering");
  conn.close();
  unregister();
});
