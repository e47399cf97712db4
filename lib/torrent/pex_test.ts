import assert from "node:assert/strict";
import type { PeerAddress } from "../peer/address.ts";
import { PeerProtocolError } from "../peer/errors.ts";
import type { ExtensionHandshake } from "../peer/extension.ts";
import { decodePexMessage, encodePexMessage, PEX_FLAGS, type PexMessage } from "../peer/ut_pex.ts";
import { PeerExchange, type PeerExchangeOptions, type PexSession } from "./pex.ts";

/** A session double: records what the exchange sends it. */
class FakeSession implements PexSession {
  address: PeerAddress;
  closed = false;
  isSeed = false;
  remoteExtensions: ExtensionHandshake | undefined;
  readonly sent: PexMessage[] = [];

  constructor(host: string, port: number, handshake: ExtensionHandshake = { m: { ut_pex: 3 } }) {
    this.address = { host, port };
    this.remoteExtensions = handshake;
  }

  sendExtension(name: string, payload: Uint8Array): boolean {
    assert.equal(name, "ut_pex");
    if ((this.remoteExtensions?.m[name] ?? 0) === 0) return false;
    this.sent.push(decodePexMessage(payload, { maxAdded: 1000, maxDropped: 1000 }));
    return true;
  }
}

/** A manual clock and timer, and an exchange using them. */
function setup(options: PeerExchangeOptions<FakeSession> = {}) {
  const clock = { now: 1_000_000 };
  const timer = { running: false, period: 0, starts: 0, callback: () => {} };
  const learned: PeerAddress[] = [];
  const known = new Set<string>();
  const pex = new PeerExchange<FakeSession>((peers) => {
    let added = 0;
    for (const peer of peers) {
      learned.push(peer);
      const key = `${peer.host}:${peer.port}`;
      if (!known.has(key)) added++;
      known.add(key);
    }
    return added;
  }, {
    now: () => clock.now,
    setTimer: (callback, ms) => {
      assert.equal(timer.running, false, "one timer at a time");
      Object.assign(timer, { running: true, period: ms, callback, starts: timer.starts + 1 });
      return () => {
        timer.running = false;
      };
    },
    ...options,
  });
  const join = (session: FakeSession) =>
    pex.hooks.onHandshake?.(session, session.remoteExtensions ?? { m: {} });
  return { pex, clock, timer, learned, join };
}

function addresses(peers: readonly PeerAddress[]): string[] {
  return peers.map((peer) => `${peer.host}:${peer.port}`).sort();
}

Deno.test("PeerExchange tells a newcomer the swarm at once, then diffs once per interval", () => {
  const { pex, clock, timer, join } = setup();
  const a = new FakeSession("10.0.0.1", 6881);
  const b = new FakeSession("10.0.0.2", 6882);
  join(a);
  assert.deepEqual(a.sent, [], "nobody else to tell a about yet");
  assert.equal(timer.running, true);
  assert.equal(timer.period, 15_000, "a quarter of the minute");
  join(b);
  assert.deepEqual(b.sent, [{ added: [{ host: "10.0.0.1", port: 6881, flags: 0 }], dropped: [] }]);

  // a had nothing to hear, so its turn was not used: the first tick tells it about b.
  clock.now += 1;
  timer.callback();
  assert.deepEqual(a.sent, [{ added: [{ host: "10.0.0.2", port: 6882, flags: 0 }], dropped: [] }]);

  // c joins and b leaves: nobody hears of it before a minute has passed since their last message.
  clock.now += 10_000;
  const c = new FakeSession("10.0.0.3", 6883);
  join(c);
  assert.deepEqual(c.sent, [{
    added: [{ host: "10.0.0.1", port: 6881, flags: 0 }, {
      host: "10.0.0.2",
      port: 6882,
      flags: 0,
    }],
    dropped: [],
  }]);
  b.closed = true;
  clock.now += 49_000;
  timer.callback();
  assert.equal(a.sent.length, 1, "a minute has not passed for a");
  clock.now += 1_000;
  timer.callback();
  assert.equal(a.sent.length, 2);
  assert.deepEqual(a.sent[1], {
    added: [{ host: "10.0.0.3", port: 6883, flags: 0 }],
    dropped: [{ host: "10.0.0.2", port: 6882 }],
  });
  assert.equal(c.sent.length, 1, "c heard from us less than a minute ago");
  clock.now += 10_000;
  timer.callback();
  assert.deepEqual(c.sent[1], { added: [], dropped: [{ host: "10.0.0.2", port: 6882 }] });
  assert.deepEqual(pex.stats(), {
    peers: 2,
    messagesSent: 5,
    messagesReceived: 0,
    messagesIgnored: 0,
    peersLearned: 0,
  });
});

Deno.test("PeerExchange advertises listen ports and seeds, and skips peers without ut_pex", () => {
  const { join } = setup();
  // An incoming connection: ephemeral port 50000, listen port 7000 from its handshake.
  const incoming = new FakeSession("10.0.0.4", 50_000, { m: { ut_pex: 1 }, p: 7000 });
  incoming.isSeed = true;
  // Speaks BEP 10 but not ut_pex (0 disables an extension): told nothing, still advertised.
  const quiet = new FakeSession("10.0.0.5", 6885, { m: { ut_metadata: 2, ut_pex: 0 } });
  join(incoming);
  join(quiet);
  const newcomer = new FakeSession("10.0.0.6", 6886);
  join(newcomer);
  assert.deepEqual(quiet.sent, []);
  assert.deepEqual(newcomer.sent, [{
    added: [
      { host: "10.0.0.4", port: 7000, flags: PEX_FLAGS.seed },
      { host: "10.0.0.5", port: 6885, flags: 0 },
    ],
    dropped: [],
  }]);
});

Deno.test("PeerExchange sends at most maxPeers per message, the rest later", async (t) => {
  await t.step("default cap of 50", () => {
    const { clock, timer, join } = setup();
    for (let i = 0; i < 60; i++) join(new FakeSession(`10.0.1.${i}`, 6881));
    const newcomer = new FakeSession("10.0.2.1", 6881);
    join(newcomer);
    assert.equal(newcomer.sent.length, 1);
    assert.equal(newcomer.sent[0]!.added.length, 50);
    clock.now += 60_000;
    timer.callback();
    assert.equal(newcomer.sent.length, 2);
    assert.equal(newcomer.sent[1]!.added.length, 10, "the ten left over");
    const all = [...newcomer.sent[0]!.added, ...newcomer.sent[1]!.added];
    assert.equal(new Set(addresses(all)).size, 60);
  });
  await t.step("maxPeers option", () => {
    const { join } = setup({ maxPeers: 2 });
    for (let i = 0; i < 5; i++) join(new FakeSession(`10.0.1.${i}`, 6881));
    const newcomer = new FakeSession("10.0.2.1", 6881);
    join(newcomer);
    assert.equal(newcomer.sent[0]!.added.length, 2);
  });
});

Deno.test("PeerExchange learns at most 50 peers a message, never ourselves or the sender", () => {
  const { pex, learned, join } = setup({ listenPort: 6881 });
  const sender = new FakeSession("10.0.0.1", 51_000, {
    m: { ut_pex: 1 },
    p: 6999,
    yourIp: Uint8Array.of(203, 0, 113, 7),
  });
  join(sender);
  const added = [
    { host: "127.0.0.1", port: 6881 }, // us, on loopback
    { host: "203.0.113.7", port: 6881 }, // us, as the sender sees us (yourip)
    { host: "10.0.0.1", port: 6999 }, // the sender itself
    { host: "203.0.113.7", port: 6882 }, // our address, another port: someone else
  ];
  for (let i = 0; i < 70; i++) added.push({ host: `10.9.${i >> 8}.${i & 255}`, port: 1000 + i });
  pex.hooks.onMessage?.(sender, "ut_pex", encodePexMessage({ added }, { maxAdded: 100 }));
  assert.equal(learned.length, 47, "50 kept by the decoder, 3 of them ours or the sender's");
  assert.equal(learned[0]!.host, "203.0.113.7");
  assert.equal(learned[0]!.port, 6882);
  assert.ok(!learned.some((peer) => peer.port === 6881 || peer.port === 6999));
  assert.equal(pex.stats().peersLearned, 47);
  assert.equal(pex.stats().messagesReceived, 1);
});

Deno.test("PeerExchange ignores a peer's messages sent more often than allowed", () => {
  const { pex, clock, learned, join } = setup({ intervalMs: 60_000 });
  const sender = new FakeSession("10.0.0.1", 6881);
  join(sender);
  const message = (port: number) => encodePexMessage({ added: [{ host: "10.1.0.1", port }] });
  pex.hooks.onMessage?.(sender, "ut_pex", message(1));
  clock.now += 29_000;
  pex.hooks.onMessage?.(sender, "ut_pex", message(2));
  assert.deepEqual(addresses(learned), ["10.1.0.1:1"]);
  clock.now += 31_000;
  pex.hooks.onMessage?.(sender, "ut_pex", message(3));
  assert.deepEqual(addresses(learned), ["10.1.0.1:1", "10.1.0.1:3"]);
  assert.equal(pex.stats().messagesIgnored, 1);
});

Deno.test("PeerExchange closes a peer's session over a malformed message", () => {
  const { pex, join } = setup();
  const sender = new FakeSession("10.0.0.1", 6881);
  join(sender);
  // d 5:added 5:<five bytes> e: not a multiple of 6.
  const payload = new TextEncoder().encode("d5:added5:abcdee");
  assert.throws(() => pex.hooks.onMessage?.(sender, "ut_pex", payload), PeerProtocolError);
});

Deno.test("PeerExchange does nothing for a private torrent (BEP 27)", () => {
  const { pex, timer, learned, join } = setup({ private: true });
  const a = new FakeSession("10.0.0.1", 6881);
  const b = new FakeSession("10.0.0.2", 6882);
  join(a);
  join(b);
  pex.hooks.onMessage?.(a, "ut_pex", encodePexMessage({ added: [{ host: "10.1.0.1", port: 1 }] }));
  pex.tick();
  assert.deepEqual([a.sent, b.sent, learned], [[], [], []]);
  assert.equal(timer.starts, 0, "no timer");
  assert.equal(pex.active, false);
  assert.equal(pex.stats().peers, 0);
});

Deno.test("PeerExchange runs its timer only while it has peers, and stops on abort", () => {
  const controller = new AbortController();
  const { pex, timer, join } = setup({ signal: controller.signal });
  assert.equal(timer.starts, 0, "no peers, no timer");
  const a = new FakeSession("10.0.0.1", 6881);
  join(a);
  assert.equal(timer.running, true);
  a.closed = true;
  timer.callback();
  assert.equal(timer.running, false, "the last peer left");
  assert.equal(pex.stats().peers, 0);
  join(new FakeSession("10.0.0.2", 6882));
  assert.equal(timer.running, true);
  assert.equal(timer.starts, 2);
  controller.abort();
  assert.equal(timer.running, false);
  assert.equal(pex.active, false);
  join(new FakeSession("10.0.0.3", 6883));
  assert.equal(timer.starts, 2, "closed: later handshakes are ignored");
});

Deno.test("PeerExchange calls the chained hooks first, with every event", () => {
  const events: string[] = [];
  const { pex, learned } = setup({
    hooks: {
      onHandshake: (peer) => events.push(`handshake ${peer.address.host}`),
      onMessage: (_peer, name) => events.push(`message ${name}`),
    },
  });
  const a = new FakeSession("10.0.0.1", 6881);
  pex.hooks.onHandshake?.(a, a.remoteExtensions!);
  pex.hooks.onMessage?.(a, "ut_metadata", new Uint8Array(0));
  pex.hooks.onMessage?.(a, "ut_pex", encodePexMessage({ added: [{ host: "10.1.0.1", port: 1 }] }));
  assert.deepEqual(events, ["handshake 10.0.0.1", "message ut_metadata", "message ut_pex"]);
  assert.equal(learned.length, 1);
});

Deno.test("PeerExchange rejects bad settings", () => {
  const addPeers = () => 0;
  assert.throws(() => new PeerExchange(addPeers, { intervalMs: -1 }), RangeError);
  assert.throws(() => new PeerExchange(addPeers, { maxPeers: 0 }), RangeError);
  assert.throws(() => new PeerExchange(addPeers, { maxPeers: 1.5 }), RangeError);
});
