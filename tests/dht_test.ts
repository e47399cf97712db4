import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { asBytes, asDict, asList, decode, encode } from "../lib/bencode/mod.ts";
import {
  compareDistance,
  DhtNode,
  DhtQueryError,
  loadDhtState,
  randomNodeId,
  saveDhtState,
} from "../lib/dht/mod.ts";
import type { PeerAddress } from "../lib/peer/address.ts";

const HOST = "127.0.0.1";
const latin1 = new TextDecoder("latin1");

/** Creates `count` nodes on loopback; each bootstraps through the first and one random other. */
async function swarm(count: number): Promise<DhtNode[]> {
  const nodes: DhtNode[] = [];
  for (let i = 0; i < count; i++) {
    const bootstrap = nodes.length === 0
      ? []
      : [nodes[0]!.address, nodes[Math.floor(Math.random() * nodes.length)]!.address];
    nodes.push(
      await DhtNode.create({
        host: HOST,
        bootstrap,
        queryTimeoutMs: 500,
        maintenanceIntervalMs: false,
      }),
    );
  }
  // Join in order, then once more all together so that early nodes learn of later ones.
  for (const node of nodes.slice(1)) await node.bootstrap();
  await Promise.all(nodes.map((node) => node.bootstrap()));
  return nodes;
}

/** A raw UDP socket speaking hand-built KRPC bytes to a node. */
class RawClient {
  readonly socket: Socket;
  readonly #inbox: Uint8Array[] = [];
  #wake: (() => void) | undefined;

  private constructor(socket: Socket, keepQueries: boolean) {
    this.socket = socket;
    socket.on("message", (message: Uint8Array) => {
      const packet = new Uint8Array(message);
      // Queries from DHT nodes that learned of this socket are not what the tests wait for.
      if (!keepQueries && /1:y1:qe$/.test(latin1.decode(packet))) return;
      this.#inbox.push(packet);
      this.#wake?.();
    });
  }

  static async open(options: { keepQueries?: boolean } = {}): Promise<RawClient> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, HOST, () => resolve()));
    return new RawClient(socket, options.keepQueries ?? false);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(to: PeerAddress, packet: Uint8Array): void {
    this.socket.send(packet, to.port, to.host);
  }

  /** Waits for the next datagram, or undefined after `ms`. */
  async receive(ms = 1000): Promise<Uint8Array | undefined> {
    if (this.#inbox.length === 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
    return this.#inbox.shift();
  }

  /** Sends a packet and decodes the answer as a bencoded dictionary. */
  async ask(to: PeerAddress, packet: Uint8Array) {
    this.send(to, packet);
    const answer = await this.receive();
    assert.ok(answer, "no answer");
    return asDict(decode(answer), "answer");
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

function text(value: Uint8Array): string {
  return latin1.decode(value);
}

function query(t: string, method: string, args: Record<string, Uint8Array | number>): Uint8Array {
  return encode({ t, y: "q", q: method, a: args });
}

Deno.test("DhtNode: a peer announced in a 24-node DHT is found by a far node", async () => {
  const nodes = await swarm(24);
  const loaded: DhtNode[] = [];
  const dir = await Deno.makeTempDir();
  try {
    for (const node of nodes) assert.ok(node.nodeCount >= 8, `table of ${node.nodeCount}`);
    const infoHash = randomNodeId();
    const byDistance = [...nodes].sort((a, b) => compareDistance(infoHash, a.id, b.id));
    // The announcer and the finder are the two nodes farthest from the info hash.
    const announcer = byDistance.at(-1)!;
    const finder = byDistance.at(-2)!;

    const { storedAt } = await announcer.announcePeer(infoHash, 6881);
    assert.ok(storedAt.length >= 4, `stored at ${storedAt.length} nodes`);
    const storers = new Set(storedAt.map((contact) => contact.port));
    assert.ok(!storers.has(finder.address.port), "the finder must not hold the peer itself");
    // The announce reached the nodes closest to the info hash.
    assert.ok(storers.has(byDistance[0]!.address.port));

    assert.deepEqual(await finder.getPeers(infoHash), [{ host: HOST, port: 6881 }]);
    assert.deepEqual(await Array.fromAsync(finder.lookupPeers(infoHash)), [{
      host: HOST,
      port: 6881,
    }]);
    assert.deepEqual(await finder.getPeers(randomNodeId()), []);
    await finder.lookupPeers(infoHash).cancel(new Error("not needed"));
    await assert.rejects(finder.announcePeer(infoHash, 0), RangeError);
    await assert.rejects(finder.getPeers(new Uint8Array(19)), TypeError);

    // Persistence: a node restored from the finder's saved table, with no bootstrap nodes.
    await saveDhtState(`${dir}/dht.json`, finder.toJSON());
    const state = await loadDhtState(`${dir}/dht.json`);
    assert.ok(state);
    assert.equal(state.id, finder.id.toHex());
    const restored = await DhtNode.create({ host: HOST, state, maintenanceIntervalMs: false });
    loaded.push(restored);
    assert.deepEqual(restored.id, finder.id);
    assert.ok(restored.nodeCount >= 8);
    assert.deepEqual(await restored.getPeers(infoHash), [{ host: HOST, port: 6881 }]);
  } finally {
    await Promise.all([...nodes, ...loaded].map((node) => node.close()));
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("DhtNode answers hand-built KRPC queries", async (t) => {
  const node = await DhtNode.create({ host: HOST, rateLimit: false, maintenanceIntervalMs: false });
  const helpers = await Promise.all(
    [0, 1].map(() =>
      DhtNode.create({
        host: HOST,
        bootstrap: [node.address],
        queryTimeoutMs: 200, // the raw client they learn of never answers
        maintenanceIntervalMs: false,
      })
    ),
  );
  const client = await RawClient.open();
  const clientId = new Uint8Array(20).fill(0x33);
  const infoHash = new Uint8Array(20).fill(0x44);
  try {
    for (const helper of helpers) await helper.bootstrap();

    await t.step("ping", async () => {
      // t: "p1", y: "q", q: "ping", a: { id }
      const answer = await client.ask(node.address, query("p1", "ping", { id: clientId }));
      assert.equal(text(asBytes(answer.t, "t")), "p1");
      assert.equal(text(asBytes(answer.y, "y")), "r");
      assert.deepEqual(asBytes(asDict(answer.r, "r").id, "id"), node.id);
    });

    await t.step("find_node", async () => {
      const answer = await client.ask(
        node.address,
        query("f1", "find_node", { id: clientId, target: helpers[0]!.id }),
      );
      const nodes = asBytes(asDict(answer.r, "r").nodes, "nodes");
      // The two helpers, 26 bytes each; the asker itself is left out.
      assert.equal(nodes.length, 52);
      assert.deepEqual(nodes.subarray(0, 20), helpers[0]!.id);
      assert.deepEqual([...nodes.subarray(20, 24)], [127, 0, 0, 1]);
      assert.equal((nodes[24]! << 8) | nodes[25]!, helpers[0]!.address.port);
    });

    let token: Uint8Array = new Uint8Array();
    await t.step("get_peers without peers: token and nodes", async () => {
      const answer = await client.ask(
        node.address,
        query("g1", "get_peers", { id: clientId, info_hash: infoHash }),
      );
      const r = asDict(answer.r, "r");
      token = asBytes(r.token, "token");
      assert.equal(token.length, 8);
      assert.equal(asBytes(r.nodes, "nodes").length, 52);
      assert.equal(r.values, undefined);
    });

    await t.step("announce_peer with a bad token is refused with 203", async () => {
      const bad = token.slice();
      bad[0]! ^= 0xff;
      const answer = await client.ask(
        node.address,
        query("a0", "announce_peer", { id: clientId, info_hash: infoHash, port: 7000, token: bad }),
      );
      assert.equal(text(asBytes(answer.y, "y")), "e");
      const [code] = asList(answer.e, "e");
      assert.equal(code, 203);
      assert.deepEqual(await helpers[0]!.getPeers(infoHash), []);
    });

    await t.step("announce_peer with the token stores the peer", async () => {
      const answer = await client.ask(
        node.address,
        query("a1", "announce_peer", { id: clientId, info_hash: infoHash, port: 7000, token }),
      );
      assert.equal(text(asBytes(answer.y, "y")), "r");
      const implied = await client.ask(
        node.address,
        query("a2", "announce_peer", {
          id: clientId,
          implied_port: 1,
          info_hash: infoHash,
          port: 1,
          token,
        }),
      );
      assert.equal(text(asBytes(implied.y, "y")), "r");
      const peers = await client.ask(
        node.address,
        query("g2", "get_peers", { id: clientId, info_hash: infoHash }),
      );
      const values = asList(asDict(peers.r, "r").values, "values").map((v) => [...asBytes(v, "v")]);
      assert.deepEqual(values, [
        [127, 0, 0, 1, client.port >> 8, client.port & 0xff], // implied port: the UDP port
        [127, 0, 0, 1, 7000 >> 8, 7000 & 0xff],
      ]);
      // And a DHT lookup from another node finds both.
      const found = await helpers[1]!.getPeers(infoHash);
      assert.deepEqual(
        found.map((p) => p.port).sort((a, b) => a - b),
        [7000, client.port].sort((a, b) => a - b),
      );
    });

    await t.step("unknown method: error 204", async () => {
      const answer = await client.ask(node.address, query("u1", "vote", { id: clientId }));
      assert.equal(text(asBytes(answer.t, "t")), "u1");
      assert.equal(asList(answer.e, "e")[0], 204);
    });

    await t.step("malformed query: error 203", async () => {
      // d1:a d2:id 3:abc e 1:q 4:ping 1:t 2:m1 1:y 1:q e   (id too short)
      const answer = await client.ask(
        node.address,
        new TextEncoder().encode("d1:ad2:id3:abce1:q4:ping1:t2:m11:y1:qe"),
      );
      assert.equal(text(asBytes(answer.t, "t")), "m1");
      assert.equal(asList(answer.e, "e")[0], 203);
    });

    await t.step("garbage is ignored, and the node carries on", async () => {
      const before = node.stats.malformed;
      client.send(node.address, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
      client.send(node.address, Uint8Array.of(0x64, 0xff, 0x00));
      assert.equal(await client.receive(200), undefined);
      assert.equal(node.stats.malformed, before + 2);
      const answer = await client.ask(node.address, query("p2", "ping", { id: clientId }));
      assert.equal(text(asBytes(answer.y, "y")), "r");
    });
  } finally {
    await client.close();
    await Promise.all([node, ...helpers].map((n) => n.close()));
  }
});

Deno.test("DhtNode limits the query rate of each IP address", async () => {
  const node = await DhtNode.create({
    host: HOST,
    rateLimit: { perSecond: 1, burst: 5 },
    maintenanceIntervalMs: false,
  });
  const client = await RawClient.open();
  try {
    const id = new Uint8Array(20).fill(9);
    for (let i = 0; i < 30; i++) client.send(node.address, query(`r${i}`, "ping", { id }));
    const answers: string[] = [];
    for (let packet; (packet = await client.receive(300));) {
      answers.push(text(asBytes(asDict(decode(packet), "answer").t, "t")));
    }
    // Five answers (the burst), to distinct queries; UDP may reorder them.
    assert.equal(answers.length, 5);
    assert.equal(new Set(answers).size, 5);
    assert.ok(answers.every((t) => /^r\d+$/.test(t)));
    assert.equal(node.stats.rateLimited, 25);
  } finally {
    await client.close();
    await node.close();
  }
});

Deno.test("DhtNode queries time out, abort, and fail on close", async (t) => {
  const silent = await RawClient.open({ keepQueries: true });
  const address = { host: HOST, port: silent.port };
  const node = await DhtNode.create({
    host: HOST,
    bootstrap: [address],
    queryTimeoutMs: 150,
    maintenanceIntervalMs: false,
  });
  try {
    await t.step("timeout", async () => {
      const error = await node.ping(address).then(() => undefined, (e) => e);
      assert.ok(error instanceof DhtQueryError);
      assert.equal(error.timeout, true);
      assert.deepEqual(error.address, address);
      assert.equal(node.stats.timeouts, 1);
      assert.ok(await silent.receive(), "the ping reached the silent socket");
    });
    await t.step("remote error", async () => {
      const pending = node.ping(address);
      const packet = await silent.receive();
      assert.ok(packet);
      const t = asBytes(asDict(decode(packet), "query").t, "t");
      silent.send(node.address, encode({ t, y: "e", e: [202, "Server Error"] }));
      const error = await pending.then(() => undefined, (e) => e);
      assert.ok(error instanceof DhtQueryError);
      assert.equal(error.code, 202);
    });
    await t.step("abort", async () => {
      // The lookup waits for the silent bootstrap node when aborted.
      const controller = new AbortController();
      const pending = node.getPeers(new Uint8Array(20), { signal: controller.signal });
      controller.abort(new Error("stop"));
      await assert.rejects(pending, /stop/);
      await assert.rejects(
        node.findNode(new Uint8Array(20), { signal: AbortSignal.abort(new Error("already")) }),
        /already/,
      );
    });
    await t.step("close", async () => {
      const rejected = assert.rejects(
        node.ping(address),
        (error: Error) => error.name === "AbortError",
      );
      await node.close();
      await rejected;
      await assert.rejects(node.ping(address), (error: Error) => error.name === "AbortError");
    });
  } finally {
    await node.close();
    await silent.close();
  }
});

Deno.test("DhtNode upkeep pings questionable nodes and refreshes stale buckets", async () => {
  const peer = await RawClient.open({ keepQueries: true });
  let offset = 0;
  const node = await DhtNode.create({
    host: HOST,
    // A saved table with one node: questionable until it answers.
    state: {
      id: "00".repeat(20),
      nodes: [{ id: "ff".repeat(20), address: `${HOST}:${peer.port}` }],
    },
    now: () => Date.now() + offset,
    maintenanceIntervalMs: 20,
    queryTimeoutMs: 100,
  });
  const methods = async (ms: number) => {
    const seen: string[] = [];
    for (let packet; (packet = await peer.receive(ms));) {
      const message = asDict(decode(packet), "query");
      seen.push(text(asBytes(message.q, "q")));
      if (text(asBytes(message.q, "q")) === "ping") {
        peer.send(
          node.address,
          encode({ t: message.t!, y: "r", r: { id: new Uint8Array(20).fill(0xff) } }),
        );
      }
    }
    return seen;
  };
  try {
    assert.deepEqual(await methods(150), ["ping"]);
    offset += 16 * 60 * 1000; // every bucket is now stale, and the node questionable again
    const later = await methods(150);
    assert.ok(later.includes("find_node"), later.join());
    assert.ok(later.includes("ping"), later.join());
  } finally {
    await node.close();
    await peer.close();
  }
});
