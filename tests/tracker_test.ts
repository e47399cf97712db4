import assert from "node:assert/strict";
import {
  AllTrackersFailedError,
  announce,
  announceHttp,
  type AnnounceRequest,
  announceToTiers,
  announceUdp,
  ConnectionIdCache,
  TrackerError,
  TrackerFailureError,
  TrackerTiers,
} from "../lib/tracker/mod.ts";
import { startHttpTracker } from "./_helpers/http_tracker.ts";
import { startUdpTracker } from "./_helpers/udp_tracker.ts";

const text = new TextEncoder();
// An info hash with bytes of every class: unreserved, reserved, NUL, high bit.
const INFO_HASH = Uint8Array.fromHex("00202d2e5f7e3039415a617a252b2f3d2680ff0a");

function request(
  peer: string,
  port: number,
  extra: Partial<AnnounceRequest> = {},
): AnnounceRequest {
  return {
    infoHash: INFO_HASH,
    peerId: text.encode(`-DT0001-${peer.padEnd(12, "x")}`),
    port,
    uploaded: 0,
    downloaded: 0,
    left: 1000,
    event: "started",
    ...extra,
  };
}

Deno.test("announceHttp() against a loopback tracker", async (t) => {
  await using tracker = await startHttpTracker({ interval: 120 });

  await t.step("compact: two peers see each other", async () => {
    const first = await announceHttp(tracker.url, request("a", 6881));
    assert.deepEqual(first.peers, []);
    assert.equal(first.interval, 120);
    const second = await announceHttp(tracker.url, request("b", 6882, { numWant: 10, key: 7 }));
    assert.deepEqual(second.peers, [{ host: "127.0.0.1", port: 6881 }]);
    assert.equal(second.incomplete, 2);
    const seen = tracker.announces.at(-1)!;
    assert.deepEqual(seen.infoHash, INFO_HASH); // binary percent-encoding survived the trip
    assert.equal(new TextDecoder().decode(seen.peerId), "-DT0001-bxxxxxxxxxxx");
    assert.equal(seen.compact, true);
    assert.equal(seen.event, "started");
    assert.equal(seen.numWant, 10);
    assert.equal(seen.key, "00000007");
  });

  await t.step("dictionary model when the tracker ignores compact", async () => {
    tracker.setResponse((seen) => {
      // Answer as an old tracker would: dictionary peers whatever the client asked.
      const dict = `d8:intervali60e5:peersld2:ip9:127.0.0.17:peer id20:${
        new TextDecoder().decode(seen.peerId)
      }4:porti9999eeee`;
      return { body: dict };
    });
    const response = await announceHttp(tracker.url, request("c", 6883));
    assert.deepEqual(response, { interval: 60, peers: [{ host: "127.0.0.1", port: 9999 }] });
    tracker.setResponse(undefined);
  });

  await t.step("peers6 for IPv6 peers", async () => {
    const hash = new Uint8Array(20).fill(6);
    tracker.setPeers(hash, [{ host: "::1", port: 7000 }, { host: "10.1.2.3", port: 7001 }]);
    const response = await announceHttp(tracker.url, request("d", 6884, { infoHash: hash }));
    assert.deepEqual(
      response.peers,
      [{ host: "10.1.2.3", port: 7001 }, { host: "::1", port: 7000 }],
    );
  });

  await t.step("failure reason", async () => {
    tracker.setResponse({ failure: "unregistered torrent" });
    await assert.rejects(announceHttp(tracker.url, request("e", 1)), (error) => {
      assert.ok(error instanceof TrackerFailureError);
      assert.equal(error.reason, "unregistered torrent");
      return true;
    });
  });

  await t.step("HTTP 500", async () => {
    tracker.setResponse({ status: 500 });
    await assert.rejects(announceHttp(tracker.url, request("e", 1)), (error) => {
      assert.ok(error instanceof TrackerError);
      assert.match(
        error.message,
        /^Cannot announce to "http:\/\/127\.0\.0\.1:\d+\/announce": HTTP status 500/,
      );
      return true;
    });
  });

  await t.step("garbage body", async () => {
    tracker.setResponse({ garbage: true });
    await assert.rejects(
      announceHttp(tracker.url, request("e", 1)),
      (error) =>
        error instanceof TrackerError && /Cannot parse tracker response/.test(error.message),
    );
  });

  await t.step("oversized body", async () => {
    tracker.setResponse({ body: "d8:intervali1e5:peers" + "x".repeat(5000) });
    await assert.rejects(
      announceHttp(tracker.url, request("e", 1), { maxBodyBytes: 1024 }),
      /exceeds the 1024-byte limit/,
    );
  });

  await t.step("redirect is followed", async () => {
    await using other = await startHttpTracker({ interval: 77 });
    tracker.setResponse({ redirect: other.url });
    const response = await announceHttp(tracker.url, request("f", 6885));
    assert.equal(response.interval, 77);
    assert.equal(other.announces.length, 1);
    assert.deepEqual(other.announces[0]!.infoHash, INFO_HASH);
  });

  await t.step("redirect loop becomes TrackerError", async () => {
    tracker.setResponse({ redirectLoop: true });
    await assert.rejects(announceHttp(tracker.url, request("g", 1)), TrackerError);
  });

  await t.step("hang becomes a timeout", async () => {
    tracker.setResponse({ hang: true });
    const started = performance.now();
    await assert.rejects(
      announceHttp(tracker.url, request("h", 1), { timeoutMs: 200 }),
      (error) => error instanceof TrackerError && /timed out after 200 ms/.test(error.message),
    );
    assert.ok(performance.now() - started < 3000);
  });

  await t.step("caller abort surfaces the caller's reason", async () => {
    tracker.setResponse({ hang: true });
    const controller = new AbortController();
    const pending = announceHttp(tracker.url, request("i", 1), { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("user gave up")), 50);
    await assert.rejects(pending, /user gave up/);
  });
});

Deno.test("announceUdp() against a loopback tracker", async (t) => {
  await using tracker = await startUdpTracker({ interval: 300 });
  const options = { retryBaseMs: 50, maxAttempts: 4, connectionCache: new ConnectionIdCache() };

  await t.step("two peers see each other", async () => {
    const first = await announceUdp(tracker.url, request("a", 6881), options);
    assert.deepEqual(first, { interval: 300, incomplete: 1, complete: 0, peers: [] });
    const second = await announceUdp(tracker.url, request("b", 6882, { key: 9 }), options);
    assert.deepEqual(second.peers, [{ host: "127.0.0.1", port: 6881 }]);
    const seen = tracker.announces.at(-1)!;
    assert.deepEqual(seen.infoHash, INFO_HASH);
    assert.equal(seen.event, 2); // started
    assert.equal(seen.key, 9);
    assert.equal(seen.numWant, -1);
    assert.equal(seen.port, 6882);
    assert.equal(tracker.connects, 1, "the connection id is reused within a minute");
  });

  await t.step("retries after dropped packets", async () => {
    const retry = { retryBaseMs: 50, maxAttempts: 4, connectionCache: new ConnectionIdCache() };
    tracker.dropNext(2); // the connect and its first retransmission are lost
    const response = await announceUdp(tracker.url, request("c", 6883), retry);
    assert.equal(response.interval, 300);
    assert.equal(tracker.dropped, 2);
  });

  await t.step("gives up after maxAttempts", async () => {
    tracker.setResponse({ ignore: true });
    const before = tracker.announces.length;
    await assert.rejects(
      announceUdp(tracker.url, request("d", 1), options),
      (error) =>
        error instanceof TrackerError && /no response after 4 attempts/.test(error.message),
    );
    assert.equal(tracker.announces.length - before, 4);
  });

  await t.step("overall timeout bounds the retries", async () => {
    tracker.setResponse({ ignore: true });
    const started = performance.now();
    await assert.rejects(
      announceUdp(tracker.url, request("d", 1), {
        ...options,
        retryBaseMs: 10_000,
        timeoutMs: 150,
      }),
      /timed out after 150 ms/,
    );
    assert.ok(performance.now() - started < 2000);
  });

  await t.step("error action becomes TrackerFailureError", async () => {
    tracker.setResponse({ error: "torrent not registered" });
    await assert.rejects(announceUdp(tracker.url, request("e", 1), options), (error) => {
      assert.ok(error instanceof TrackerFailureError);
      assert.equal(error.reason, "torrent not registered");
      return true;
    });
    tracker.setResponse(undefined);
  });

  await t.step(
    "a packet from the wrong transaction is ignored, garbage is a TrackerError",
    async () => {
      tracker.setResponse({ raw: Uint8Array.fromHex("00000001" + "00000000" + "0000") });
      await assert.rejects(
        announceUdp(tracker.url, request("f", 1), options),
        /no response after 4/,
      );
      tracker.setResponse((seen) => {
        const packet = new Uint8Array(25); // header + 5 bytes: peers not a multiple of 6
        new DataView(packet.buffer).setUint32(0, 1);
        new DataView(packet.buffer).setUint32(4, seen.transactionId);
        return { raw: packet };
      });
      await assert.rejects(announceUdp(tracker.url, request("f", 1), options), /multiple of 6/);
      tracker.setResponse(undefined);
    },
  );
});

Deno.test("announce() dispatches on the URL scheme", async () => {
  await using http = await startHttpTracker({ interval: 11 });
  await using udp = await startUdpTracker({ interval: 22 });
  assert.equal((await announce(http.url, request("a", 1))).interval, 11);
  assert.equal((await announce(udp.url, request("a", 1), { retryBaseMs: 50 })).interval, 22);
  await assert.rejects(announce("ftp://127.0.0.1/x", request("a", 1)), (error) => {
    assert.ok(error instanceof TypeError);
    assert.match(error.message, /^Unsupported tracker URL scheme/);
    return true;
  });
});

Deno.test("announceToTiers() fails over from a dead tier to a working one", async () => {
  await using dead = await startUdpTracker();
  dead.setResponse({ ignore: true });
  await using refusing = await startHttpTracker();
  refusing.setResponse({ failure: "not here" });
  await using working = await startHttpTracker({ interval: 33 });
  const tiers = new TrackerTiers(
    [[dead.url, refusing.url], ["ftp://nowhere/", working.url]],
    { random: () => 0.999 }, // keep the given order
  );
  const result = await announceToTiers(tiers, request("a", 6881), {
    retryBaseMs: 30,
    maxAttempts: 2,
  });
  assert.equal(result.url, working.url);
  assert.equal(result.response.interval, 33);
  // Two sends in all: the connect (answered) and one announce (ignored).
  assert.equal(dead.connects, 1);
  assert.equal(dead.announces.length, 1);
  assert.equal(refusing.announces.length, 1);
  // The working tracker moved to the front of its tier.
  assert.deepEqual(tiers.tiers, [[dead.url, refusing.url], [working.url, "ftp://nowhere/"]]);

  await working.close();
  await assert.rejects(
    announceToTiers(new TrackerTiers([[dead.url], [refusing.url]]), request("a", 1), {
      retryBaseMs: 30,
      maxAttempts: 1,
    }),
    (error) => {
      assert.ok(error instanceof AllTrackersFailedError);
      assert.ok(error instanceof TrackerError);
      assert.equal(error.errors.length, 2);
      assert.doesNotMatch(error.message, /\n/);
      assert.match(
        error.message,
        /^Cannot announce to any of 2 trackers: udp:.*no response after 1 attempt; http:.*Tracker refused the announce: not here$/,
      );
      return true;
    },
  );
});
