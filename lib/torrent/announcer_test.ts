import assert from "node:assert/strict";
import { encode } from "../bencode/mod.ts";
import type { PeerAddress } from "../peer/address.ts";
import { startHttpTracker } from "../../tests/_helpers/http_tracker.ts";
import { startUdpTracker } from "../../tests/_helpers/udp_tracker.ts";
import { Announcer, type AnnouncerOptions, type AnnouncerTimers } from "./announcer.ts";

const INFO_HASH = new Uint8Array(20).fill(0x11);
const PEER_ID = new TextEncoder().encode("-DT0001-abcdefghijkl");
const SWARM_PEER: PeerAddress = { host: "10.1.2.3", port: 5555 };

/** A manual clock: timers fire only when the test advances time. */
class FakeClock {
  now = 1_000_000;
  #timers = new Map<number, { at: number; callback: () => void }>();
  #nextId = 1;
  readonly timers: AnnouncerTimers = {
    setTimeout: (callback, ms) => {
      const id = this.#nextId++;
      this.#timers.set(id, { at: this.now + ms, callback });
      return id;
    },
    clearTimeout: (handle) => {
      this.#timers.delete(handle as number);
    },
  };

  /** Delays (from now) of the pending timers, ascending. */
  get pending(): number[] {
    return [...this.#timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const target = this.now + ms;
    for (;;) {
      let next: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= target && (next === undefined || entry[1].at < next[1].at)) next = entry;
      }
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.now = next[1].at;
      next[1].callback();
    }
    this.now = target;
  }
}

/** Polls `condition` every few ms (real time) until true, failing after `timeoutMs`. */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > timeoutMs) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A URL on which nothing listens: connections are refused at once. */
function deadHttpUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return `http://127.0.0.1:${port}/announce`;
}

/** Compact peers + intervals as a tracker response body. */
function responseBody(fields: Record<string, number | string>): Uint8Array {
  return encode({ peers: new Uint8Array([10, 1, 2, 3, 0x15, 0xb3]), ...fields });
}

function makeAnnouncer(
  overrides: Partial<AnnouncerOptions> & Pick<AnnouncerOptions, "announceList">,
): {
  announcer: Announcer;
  peers: [PeerAddress[], string][];
  errors: [string, Error][];
  stats: { uploaded: number; downloaded: number; left: number };
} {
  const peers: [PeerAddress[], string][] = [];
  const errors: [string, Error][] = [];
  const stats = { uploaded: 0, downloaded: 0, left: 1000 };
  const announcer = new Announcer({
    infoHash: INFO_HASH,
    peerId: PEER_ID,
    port: 6881,
    stats: () => stats,
    onPeers: (list, source) => peers.push([list, source]),
    onError: (url, error) => errors.push([url, error]),
    random: () => 0.999, // keep tiers in the given order
    ...overrides,
  });
  return { announcer, peers, errors, stats };
}

Deno.test("Announcer fails over inside a tier and promotes the tracker that answered", async () => {
  await using tracker = await startHttpTracker();
  tracker.setPeers(INFO_HASH, [SWARM_PEER]);
  const dead = deadHttpUrl();
  const clock = new FakeClock();
  const { announcer, peers, errors } = makeAnnouncer({
    announceList: [[dead, tracker.url]],
    now: () => clock.now,
    timers: clock.timers,
  });
  announcer.start();
  await waitFor(() => peers.length === 1, "peers from the second tracker");
  assert.deepEqual(peers[0], [[SWARM_PEER], tracker.url]);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]![0], dead);
  const [deadStatus, liveStatus] = announcer.status();
  assert.equal(deadStatus!.state, "error");
  assert.equal(deadStatus!.failures, 1);
  assert.ok(deadStatus!.lastError);
  assert.equal(deadStatus!.nextAnnounceAt, undefined);
  assert.equal(liveStatus!.state, "ok");
  assert.equal(liveStatus!.leechers, 2);
  // Promotion: the next round starts with the tracker that answered.
  assert.equal(liveStatus!.nextAnnounceAt, clock.now + 1800_000);
  clock.advance(1800_000);
  await waitFor(() => tracker.announces.length === 2, "the re-announce");
  await waitFor(() => announcer.status()[1]!.state === "ok", "the re-announce answer");
  assert.equal(errors.length, 1, "the dead tracker is not tried while the live one answers");
  assert.equal(tracker.announces[1]!.event, undefined);
  await announcer.stop();
  assert.deepEqual(tracker.announces.map((a) => a.event), ["started", undefined, "stopped"]);
});

Deno.test("Announcer announces to every tier: a dead first tier does not block the second", async () => {
  await using tracker = await startHttpTracker({ interval: 900 });
  tracker.setPeers(INFO_HASH, [SWARM_PEER]);
  const dead = deadHttpUrl();
  const clock = new FakeClock();
  const { announcer, peers, errors } = makeAnnouncer({
    announceList: [[dead], [tracker.url]],
    now: () => clock.now,
    timers: clock.timers,
  });
  announcer.start();
  await waitFor(() => peers.length === 1 && errors.length === 1, "both tiers");
  assert.equal(peers[0]![1], tracker.url);
  const [tier0, tier1] = announcer.status();
  assert.equal(tier0!.tier, 0);
  assert.equal(tier0!.nextAnnounceAt, clock.now + 15_000); // failure backoff
  assert.equal(tier1!.tier, 1);
  assert.equal(tier1!.nextAnnounceAt, clock.now + 900_000);
  assert.deepEqual(clock.pending, [15_000, 900_000]);
  await announcer.stop();
  assert.deepEqual(clock.pending, [], "stop() clears every timer");
  // Only the tier that knows us gets `stopped`.
  assert.deepEqual(tracker.announces.map((a) => a.event), ["started", "stopped"]);
});

Deno.test("Announcer honours interval, min interval and the floor", async (t) => {
  await using tracker = await startHttpTracker();
  let body = responseBody({ interval: 120, "min interval": 45 });
  tracker.setResponse(() => ({ body }));
  const clock = new FakeClock();
  const { announcer, peers } = makeAnnouncer({
    announceList: [[tracker.url]],
    now: () => clock.now,
    timers: clock.timers,
  });
  const announced = async (count: number) => {
    await waitFor(() => tracker.announces.length === count, `announce ${count}`);
    await waitFor(() => announcer.status()[0]!.state === "ok", `answer ${count}`);
  };
  announcer.start();
  await announced(1);

  await t.step("regular announce comes after `interval`", async () => {
    assert.deepEqual(clock.pending, [120_000]);
    clock.advance(119_999);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(tracker.announces.length, 1);
    clock.advance(1);
    await announced(2);
    assert.equal(announcer.status()[0]!.minInterval, 45);
  });

  await t.step("requestMorePeers() waits for `min interval`", async () => {
    clock.advance(10_000);
    announcer.requestMorePeers();
    assert.deepEqual(clock.pending, [35_000]); // 45 s after the last answer
    clock.advance(34_999);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(tracker.announces.length, 2);
    clock.advance(1);
    await announced(3);
  });

  await t.step("requestMorePeers() announces at once when min interval has passed", async () => {
    clock.advance(50_000);
    announcer.requestMorePeers();
    await announced(4);
    assert.equal(peers.length, 4);
  });

  await t.step("a tiny interval is raised to the 30 s floor", async () => {
    body = responseBody({ interval: 1 });
    clock.advance(120_000);
    await announced(5);
    assert.deepEqual(clock.pending, [30_000]);
    announcer.requestMorePeers(); // nothing sooner than the floor either
    assert.deepEqual(clock.pending, [30_000]);
  });

  await announcer.stop();
  assert.equal(tracker.announces.at(-1)!.event, "stopped");
  assert.equal(new Set(tracker.announces.map((a) => a.key)).size, 1, "one key per session");
});

Deno.test("Announcer backs off after failures, doubling, and recovers", async () => {
  await using tracker = await startHttpTracker();
  tracker.setResponse({ status: 500 });
  const clock = new FakeClock();
  const { announcer, errors } = makeAnnouncer({
    announceList: [[tracker.url]],
    now: () => clock.now,
    timers: clock.timers,
    retryMaxMs: 50_000,
  });
  announcer.start();
  const delays: number[] = [];
  for (let i = 1; i <= 4; i++) {
    await waitFor(() => errors.length === i && clock.pending.length === 1, `failure ${i}`);
    delays.push(clock.pending[0]!);
    clock.advance(clock.pending[0]!);
  }
  assert.deepEqual(delays, [15_000, 30_000, 50_000, 50_000]);
  assert.equal(announcer.status()[0]!.failures, 4);
  // Every failed attempt was a `started`: the tracker never acknowledged one.
  assert.ok(tracker.announces.every((a) => a.event === "started"));
  tracker.setResponse(undefined);
  await waitFor(() => announcer.status()[0]!.state === "ok", "recovery");
  assert.equal(announcer.status()[0]!.failures, 0);
  assert.equal(announcer.status()[0]!.lastError, undefined);
  assert.deepEqual(clock.pending, [1800_000]);
  await announcer.stop();
});

Deno.test("Announcer sends started, completed once, and stopped with current stats", async () => {
  await using tracker = await startHttpTracker();
  tracker.setResponse(() => ({ body: responseBody({ interval: 1800, "tracker id": "T-42" }) }));
  const { announcer, stats } = makeAnnouncer({ announceList: [[tracker.url]], numWant: 33 });
  announcer.start();
  announcer.start(); // idempotent
  await waitFor(() => announcer.status()[0]!.state === "ok", "started");
  stats.downloaded = 1000;
  stats.left = 0;
  stats.uploaded = 7;
  announcer.completed();
  announcer.completed(); // once only
  await waitFor(() => tracker.announces.length === 2, "completed");
  await waitFor(() => announcer.status()[0]!.state === "ok", "completed answer");
  await announcer.stop();
  await announcer.stop(); // idempotent
  const seen = tracker.announces.map((a) => ({
    event: a.event,
    left: a.left,
    downloaded: a.downloaded,
    uploaded: a.uploaded,
    numWant: a.numWant,
    trackerId: a.trackerId,
  }));
  assert.deepEqual(seen, [
    { event: "started", left: 1000, downloaded: 0, uploaded: 0, numWant: 33, trackerId: undefined },
    { event: "completed", left: 0, downloaded: 1000, uploaded: 7, numWant: 33, trackerId: "T-42" },
    { event: "stopped", left: 0, downloaded: 1000, uploaded: 7, numWant: 0, trackerId: "T-42" },
  ]);
  assert.equal(tracker.announces[0]!.key, tracker.announces[2]!.key);
  assert.throws(() => announcer.start(), Error);
});

Deno.test("Announcer sends completed after an announce that was in flight", async () => {
  await using tracker = await startHttpTracker();
  const release = Promise.withResolvers<void>();
  tracker.setResponse(async () => {
    await release.promise;
    return { swarm: true };
  });
  const { announcer, stats } = makeAnnouncer({ announceList: [[tracker.url]] });
  announcer.start();
  await waitFor(() => tracker.announces.length === 1, "started in flight");
  stats.left = 0;
  announcer.completed();
  release.resolve();
  await waitFor(() => tracker.announces.length === 2, "completed");
  await announcer.stop();
  assert.deepEqual(tracker.announces.map((a) => a.event), ["started", "completed", "stopped"]);
});

Deno.test("Announcer.stop() returns within its timeout under a hanging tracker", async (t) => {
  /** Starts with a tracker that answers, then times `stop()` while it hangs. */
  const stopWhileStoppedHangs = async (options: Partial<AnnouncerOptions>) => {
    await using tracker = await startHttpTracker();
    const { announcer, errors } = makeAnnouncer({ announceList: [[tracker.url]], ...options });
    announcer.start();
    await waitFor(() => announcer.status()[0]!.state === "ok", "started");
    tracker.setResponse({ hang: true });
    const start = performance.now();
    await announcer.stop();
    const elapsed = performance.now() - start;
    return { elapsed, events: tracker.announces.map((a) => a.event), errors };
  };
  await t.step("stopped hangs", async () => {
    const { elapsed, events, errors } = await stopWhileStoppedHangs({ stopTimeoutMs: 300 });
    assert.ok(elapsed >= 250 && elapsed < 1500, `stop() took ${elapsed} ms`);
    assert.deepEqual(events, ["started", "stopped"]);
    assert.equal(errors.length, 1);
    assert.match(errors[0]![1].message, /stopped/);
  });
  await t.step("started hangs: it is cut short and stopped is still tried", async () => {
    await using tracker = await startHttpTracker();
    tracker.setResponse({ hang: true });
    const { announcer } = makeAnnouncer({ announceList: [[tracker.url]], stopTimeoutMs: 300 });
    announcer.start();
    await waitFor(() => tracker.announces.length === 1, "started in flight");
    const start = performance.now();
    await announcer.stop();
    const elapsed = performance.now() - start;
    assert.ok(elapsed < 1500, `stop() took ${elapsed} ms`);
    await waitFor(() => tracker.announces.length === 2, "stopped");
    assert.deepEqual(tracker.announces.map((a) => a.event), ["started", "stopped"]);
  });
  await t.step("by default it gives up after 2 s", async () => {
    const { elapsed } = await stopWhileStoppedHangs({});
    assert.ok(elapsed >= 1900 && elapsed < 3500, `stop() took ${elapsed} ms`);
  });
});

Deno.test("Announcer works with a UDP tracker", async () => {
  await using tracker = await startUdpTracker({ interval: 600 });
  tracker.setPeers(INFO_HASH, [SWARM_PEER]);
  const clock = new FakeClock();
  const { announcer, peers } = makeAnnouncer({
    announceList: [[tracker.url]],
    now: () => clock.now,
    timers: clock.timers,
    key: 0xdeadbeef,
  });
  announcer.start();
  await waitFor(() => peers.length === 1, "peers over UDP");
  assert.deepEqual(peers[0], [[SWARM_PEER], tracker.url]);
  assert.deepEqual(clock.pending, [600_000]);
  announcer.completed();
  await waitFor(() => tracker.announces.length === 2, "completed over UDP");
  await waitFor(() => announcer.status()[0]!.state === "ok", "completed answer");
  await announcer.stop();
  // BEP 15 event codes: 2 started, 1 completed, 3 stopped.
  assert.deepEqual(tracker.announces.map((a) => a.event), [2, 1, 3]);
  assert.ok(tracker.announces.every((a) => a.key === 0xdeadbeef));
});

Deno.test("Announcer stops at once without `stopped` when its signal aborts", async () => {
  await using tracker = await startHttpTracker();
  const controller = new AbortController();
  const clock = new FakeClock();
  const { announcer } = makeAnnouncer({
    announceList: [[tracker.url]],
    signal: controller.signal,
    now: () => clock.now,
    timers: clock.timers,
  });
  announcer.start();
  await waitFor(() => announcer.status()[0]!.state === "ok", "started");
  assert.equal(clock.pending.length, 1);
  controller.abort();
  assert.equal(announcer.stopped, true);
  assert.deepEqual(clock.pending, []);
  await announcer.stop();
  assert.deepEqual(tracker.announces.map((a) => a.event), ["started"]);
});

Deno.test("Announcer reports a throwing onPeers callback through onError", async () => {
  await using tracker = await startHttpTracker();
  tracker.setPeers(INFO_HASH, [SWARM_PEER]);
  const errors: string[] = [];
  const announcer = new Announcer({
    announceList: [[tracker.url]],
    infoHash: INFO_HASH,
    peerId: PEER_ID,
    port: 6881,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 1 }),
    onPeers: () => {
      throw new Error("engine bug");
    },
    onError: (_url, error) => errors.push(error.message),
  });
  announcer.start();
  await waitFor(() => errors.length === 1, "the callback error");
  assert.deepEqual(errors, ["engine bug"]);
  assert.equal(announcer.status()[0]!.state, "ok");
  await announcer.stop();
});

Deno.test("Announcer rejects bad options", () => {
  const base = {
    announceList: [["http://127.0.0.1:1/announce"]],
    infoHash: INFO_HASH,
    peerId: PEER_ID,
    port: 6881,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 0 }),
    onPeers: () => {},
  };
  assert.throws(() => new Announcer({ ...base, infoHash: new Uint8Array(19) }), TypeError);
  assert.throws(() => new Announcer({ ...base, peerId: new Uint8Array(21) }), TypeError);
  assert.throws(() => new Announcer({ ...base, port: 70000 }), RangeError);
  assert.throws(() => new Announcer({ ...base, retryBaseMs: -1 }), RangeError);
  // Never started: stop() is immediate and sends nothing.
  const idle = new Announcer(base);
  return idle.stop();
});
