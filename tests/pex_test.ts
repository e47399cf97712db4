/**
 * Peer exchange (BEP 11) between our own engines over loopback: a torrent that knows only one
 * peer learns the others from it through `ut_pex` and dials them; a private torrent never does.
 */
import assert from "node:assert/strict";
import { createTorrent, type Metainfo } from "../lib/metainfo/mod.ts";
import type { PeerAddress } from "../lib/peer/address.ts";
import { MemoryStorage } from "../lib/storage/mod.ts";
import { PeerListener, Torrent, type TorrentEvent } from "../lib/torrent/mod.ts";

const HOST = "127.0.0.1";
/** A fast exchange: a message per peer every 200 ms instead of every minute. */
const PEX = { intervalMs: 200 };

async function fixture(options: { private?: boolean } = {}): Promise<Metainfo> {
  const data = new Uint8Array(50_000).map((_, i) => (i * 13 + (i >> 8)) % 251);
  data[7] = 0;
  const { metainfo } = await createTorrent(
    { name: "pex.bin", data },
    { pieceLength: 16384, ...(options.private ? { private: true } : {}) },
  );
  return metainfo;
}

/**
 * A leecher with no data behind its own listener, recording whom it connected to. Leechers
 * with nothing keep their connections: nobody has anything to trade or finish.
 */
function node(metainfo: Metainfo, pex: boolean | { intervalMs: number }) {
  const listener = PeerListener.listen({ hostname: HOST });
  const connected: { address: PeerAddress; peerId: string }[] = [];
  const torrent = new Torrent({
    metainfo,
    storage: new MemoryStorage(metainfo.totalLength),
    listener,
    pex,
    onEvent: (event: TorrentEvent) => {
      if (event.type === "peer-connected") {
        connected.push({ address: event.address, peerId: event.peerId.toHex() });
      }
    },
  });
  torrent.start();
  return {
    torrent,
    listener,
    connected,
    address: { host: HOST, port: listener.port },
    peerId: torrent.peerId.toHex(),
    async [Symbol.asyncDispose]() {
      await torrent.close();
      await listener.close();
    },
  };
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("Torrent learns a peer through PEX and dials it", async (t) => {
  await t.step("from the first message: B knows C when A arrives", async () => {
    const metainfo = await fixture();
    await using b = node(metainfo, PEX);
    await using c = node(metainfo, PEX);
    await using a = node(metainfo, PEX);
    b.torrent.addPeers([c.address]);
    await until(() => b.connected.length === 1, "B is connected to C");
    a.torrent.addPeers([b.address]);
    await until(
      () => a.connected.some((peer) => peer.peerId === c.peerId),
      "A is connected to C",
    );
    assert.equal(a.torrent.stats().peersConnected, 2);
  });

  await t.step("from a later diff: C joins B after A did", async () => {
    const metainfo = await fixture();
    await using b = node(metainfo, PEX);
    // C does no PEX itself, so only A can start the A-C connection.
    await using c = node(metainfo, false);
    await using a = node(metainfo, PEX);
    a.torrent.addPeers([b.address]);
    await until(() => b.connected.length === 1, "B is connected to A");
    b.torrent.addPeers([c.address]);
    await until(
      () => a.connected.some((peer) => peer.peerId === c.peerId),
      "A is connected to C",
    );
    // A dialled C at its listen port, learned from B (not C's ephemeral port).
    const toC = a.connected.find((peer) => peer.peerId === c.peerId)!;
    assert.deepEqual(toC.address, c.address);
    assert.deepEqual(a.connected.map((peer) => peer.peerId), [b.peerId, c.peerId]);
  });
});

Deno.test("Torrent does no PEX for a private torrent (BEP 27)", async () => {
  const metainfo = await fixture({ private: true });
  assert.equal(metainfo.private, true);
  await using b = node(metainfo, PEX);
  await using c = node(metainfo, PEX);
  await using a = node(metainfo, PEX);
  b.torrent.addPeers([c.address]);
  a.torrent.addPeers([b.address]);
  await until(() => b.connected.length === 2, "B is connected to A and C");
  // Several intervals: a public torrent would have connected A and C by now.
  await new Promise((resolve) => setTimeout(resolve, 5 * PEX.intervalMs));
  assert.deepEqual(a.connected.map((peer) => peer.peerId), [b.peerId]);
  assert.deepEqual(c.connected.map((peer) => peer.peerId), [b.peerId]);
});

Deno.test("Torrent with pex: false neither tells nor learns", async () => {
  const metainfo = await fixture();
  await using b = node(metainfo, false);
  await using c = node(metainfo, PEX);
  await using a = node(metainfo, PEX);
  b.torrent.addPeers([c.address]);
  a.torrent.addPeers([b.address]);
  await until(() => b.connected.length === 2, "B is connected to A and C");
  await new Promise((resolve) => setTimeout(resolve, 5 * PEX.intervalMs));
  assert.deepEqual(a.connected.map((peer) => peer.peerId), [b.peerId]);
});
