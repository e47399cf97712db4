/**
 * Adversarial peers over loopback: each hostile behaviour runs while an honest (rate-limited)
 * seeder is present too, so the download must still complete byte-identical, and the hostile
 * peer must be dropped or banned without harming anyone else.
 */
import assert from "node:assert/strict";
import { createTorrent, type Metainfo } from "../lib/metainfo/mod.ts";
import { HandshakeError, PeerProtocolError } from "../lib/peer/errors.ts";
import { Bitfield } from "../lib/piece/mod.ts";
import { MemoryStorage } from "../lib/storage/mod.ts";
import { MAX_QUEUED_UPLOADS } from "../lib/torrent/peer_session.ts";
import {
  PeerListener,
  serveTorrent,
  Torrent,
  type TorrentEvent,
  type TorrentOptions,
} from "../lib/torrent/mod.ts";
import { deterministicBytes } from "./_helpers/fixtures.ts";
import {
  HostilePeer,
  type HostileScript,
  openAsSeeder,
  openFdCount,
  sleep,
  SlowSeeder,
  WireConn,
  withTimeout,
} from "./_helpers/hostile_peer.ts";

const PIECE_LENGTH = 32 * 1024;
// 14 pieces (the last one short): a bitfield of 2 bytes with 2 spare bits.
const TOTAL_LENGTH = 13 * PIECE_LENGTH + 5000;
// The honest seeder needs ~0.5 s, so hostile peers get requests too.
const GOOD_RATE = 1_000_000;

async function fixture(): Promise<{ data: Uint8Array; metainfo: Metainfo }> {
  const data = deterministicBytes(TOTAL_LENGTH, 7);
  const { metainfo } = await createTorrent({ name: "hostile.bin", data }, {
    pieceLength: PIECE_LENGTH,
  });
  return { data, metainfo };
}

interface Outcome {
  events: TorrentEvent[];
  hostile: HostilePeer;
  /** Disconnect reasons of the hostile peer's sessions and dials. */
  hostileReasons: unknown[];
  /** Whether the download finished before the hostile peer was first dropped. */
  doneBeforeDrop: boolean;
}

/**
 * Downloads the fixture from an honest slow seeder plus a hostile peer running `script`,
 * checks the result is byte-identical, and (with `expectDrop`) that the engine closed the
 * hostile connection.
 */
async function downloadBeside(
  script: HostileScript,
  options: {
    expectDrop?: boolean;
    torrent?: Partial<TorrentOptions>;
    timeoutMs?: number;
  } = {},
): Promise<Outcome> {
  const { data, metainfo } = await fixture();
  await using good = new SlowSeeder({ geometry: metainfo, data, bytesPerSecond: GOOD_RATE });
  await using hostile = new HostilePeer({ geometry: metainfo, data, script });
  const storage = new MemoryStorage(metainfo.totalLength);
  const events: TorrentEvent[] = [];
  let dropped = false;
  hostile.firstDrop.then(() => dropped = true);
  let doneBeforeDrop = false;
  {
    await using torrent = new Torrent({
      metainfo,
      storage,
      onEvent: (event) => events.push(event),
      ...options.torrent,
    });
    torrent.start();
    // The hostile peer first, and the honest one once the hostile peer was asked for a block
    // (or dropped, or 300 ms passed): otherwise a slow start under load can leave the hostile
    // peer only endgame requests, whose answers are discarded unread once cancelled.
    torrent.addPeers([hostile.address]);
    for (let i = 0; i < 60 && hostile.requestCount === 0 && !dropped; i++) await sleep(5);
    torrent.addPeers([good.address]);
    await withTimeout(torrent.done, options.timeoutMs ?? 15_000, "download beside a hostile peer");
    doneBeforeDrop = !dropped;
    if (options.expectDrop) await withTimeout(hostile.firstDrop, 5_000, "hostile peer dropped");
  }
  assert.deepEqual(storage.bytes, data, "downloaded bytes differ from the source");
  assert.deepEqual(hostile.errors, [], "hostile script failed unexpectedly");
  assert.deepEqual(good.errors, []);
  const hostileReasons = events.flatMap((event) =>
    event.type === "peer-disconnected" && event.address.port === hostile.port &&
      event.reason !== undefined
      ? [event.reason]
      : []
  );
  return { events, hostile, hostileReasons, doneBeforeDrop };
}

function assertReason(outcome: Outcome, kind: new (...args: never[]) => Error, pattern: RegExp) {
  const matching = outcome.hostileReasons.filter((reason) =>
    reason instanceof kind && pattern.test(reason.message)
  );
  assert.ok(
    matching.length > 0,
    `expected a ${kind.name} matching ${pattern}, got: ${
      outcome.hostileReasons.map((r) => String(r)).join("; ") || "none"
    }`,
  );
}

Deno.test("adversarial: bad handshakes are refused and the download completes", async (t) => {
  await t.step("wrong info hash in the handshake", async () => {
    const outcome = await downloadBeside(async (wire) => {
      if (await wire.readHandshake() === undefined) return;
      await wire.sendHandshake(crypto.getRandomValues(new Uint8Array(20)));
    }, { expectDrop: true });
    assertReason(outcome, HandshakeError, /info hash/);
  });

  await t.step("garbage instead of a handshake", async () => {
    const outcome = await downloadBeside(async (wire) => {
      if (await wire.readHandshake() === undefined) return;
      await wire.sendRaw(deterministicBytes(300, 99));
    }, { expectDrop: true });
    assertReason(outcome, HandshakeError, /protocol string/);
  });

  await t.step("a handshake cut short, then close", async () => {
    const outcome = await downloadBeside(async (wire, { geometry }) => {
      if (await wire.readHandshake() === undefined) return;
      const bytes = new Uint8Array(68);
      bytes[0] = 19;
      bytes.set(new TextEncoder().encode("BitTorrent protocol"), 1);
      bytes.set(geometry.infoHash, 28);
      await wire.sendRaw(bytes.subarray(0, 40));
      wire.close();
    });
    assertReason(outcome, HandshakeError, /closed the connection after 40 of 68 bytes/);
  });
});

Deno.test("adversarial: malformed and unsolicited messages close the session", async (t) => {
  await t.step("a 4 GiB length prefix", async () => {
    const outcome = await downloadBeside(async (wire, { geometry }) => {
      if (!await openAsSeeder(wire, geometry)) return;
      await wire.sendRaw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0, 0]));
    }, { expectDrop: true });
    assertReason(outcome, PeerProtocolError, /frame length 4294967295 exceeds/);
  });

  await t.step("a piece we did not request", async () => {
    const outcome = await downloadBeside(async (wire, { geometry, data }) => {
      if (await wire.readHandshake() === undefined) return;
      await wire.sendHandshake(geometry.infoHash);
      const have = new Bitfield(geometry.pieceCount);
      have.setAll();
      // Still choking us, so nothing can have been requested yet.
      await wire.send({ type: "bitfield", bitfield: have.toBytes() }, {
        type: "piece",
        index: 0,
        begin: 0,
        block: data.subarray(0, 16384),
      });
    }, { expectDrop: true });
    assertReason(outcome, PeerProtocolError, /block 0:0 was not requested/);
  });

  for (const delta of [-1, +1]) {
    await t.step(`a piece of the wrong length (${delta > 0 ? "+" : ""}${delta} byte)`, async () => {
      const outcome = await downloadBeside(async (wire, { geometry, data }) => {
        if (!await openAsSeeder(wire, geometry)) return;
        const request = await wire.expect("request");
        if (request === undefined) return;
        const offset = request.index * geometry.pieceLength + request.begin;
        await wire.send({
          type: "piece",
          index: request.index,
          begin: request.begin,
          block: data.slice(offset, offset + request.length + delta),
        });
      }, { expectDrop: true });
      assertReason(outcome, PeerProtocolError, /Invalid piece message.*bytes, expected/);
    });
  }

  await t.step("a piece it does not have", async () => {
    const outcome = await downloadBeside(async (wire, { geometry, data }) => {
      const only0 = new Bitfield(geometry.pieceCount);
      only0.set(0);
      if (!await openAsSeeder(wire, geometry, { bitfield: only0.toBytes() })) return;
      const request = await wire.expect("request");
      if (request === undefined) return;
      // Answers with a block of piece 5, which its bitfield says it lacks.
      const offset = 5 * geometry.pieceLength;
      await wire.send({
        type: "piece",
        index: 5,
        begin: 0,
        block: data.subarray(offset, offset + 16384),
      });
    }, { expectDrop: true });
    assertReason(outcome, PeerProtocolError, /block 5:0 was not requested/);
  });

  const bitfields: [string, (geometry: Metainfo) => Uint8Array, RegExp][] = [
    ["a bitfield one byte short", () => new Uint8Array([0xff]), /expected 2 bytes/],
    ["a bitfield one byte long", () => new Uint8Array([0xff, 0xfc, 0x00]), /expected 2 bytes/],
    ["a bitfield with spare bits set", () => new Uint8Array([0xff, 0xff]), /spare bits/],
  ];
  for (const [name, bitfield, pattern] of bitfields) {
    await t.step(name, async () => {
      const outcome = await downloadBeside(async (wire, { geometry }) => {
        await openAsSeeder(wire, geometry, { bitfield: bitfield(geometry as Metainfo) });
      }, { expectDrop: true });
      assertReason(outcome, PeerProtocolError, pattern);
    });
  }

  for (const index of [14, 0xffff_ffff]) {
    await t.step(`have ${index}, out of range`, async () => {
      const outcome = await downloadBeside(async (wire, { geometry }) => {
        if (!await openAsSeeder(wire, geometry, { bitfield: new Uint8Array(2) })) return;
        await wire.send({ type: "have", index });
      }, { expectDrop: true });
      assertReason(outcome, PeerProtocolError, new RegExp(`piece index ${index} out of range`));
    });
  }

  await t.step("closing in the middle of a piece message", async () => {
    const outcome = await downloadBeside(async (wire, { geometry, data }) => {
      if (!await openAsSeeder(wire, geometry)) return;
      const request = await wire.expect("request");
      if (request === undefined) return;
      const offset = request.index * geometry.pieceLength + request.begin;
      const header = new Uint8Array(13);
      const view = new DataView(header.buffer);
      view.setUint32(0, 9 + request.length); // length prefix
      header[4] = 7; // piece
      view.setUint32(5, request.index);
      view.setUint32(9, request.begin);
      await wire.sendRaw(header);
      await wire.sendRaw(data.subarray(offset, offset + 1000));
      wire.close();
    });
    assertReason(outcome, PeerProtocolError, /stream ended inside a frame/);
  });
});

Deno.test("adversarial: a peer sending corrupt blocks is banned after the failed hash", async () => {
  const outcome = await downloadBeside(async (wire, { geometry, data }) => {
    if (!await openAsSeeder(wire, geometry)) return;
    for (;;) {
      const request = await wire.expect("request");
      if (request === undefined) return;
      const offset = request.index * geometry.pieceLength + request.begin;
      const block = data.slice(offset, offset + request.length).map((byte) => byte ^ 0x5a);
      await wire.send({ type: "piece", index: request.index, begin: request.begin, block });
    }
  }, { expectDrop: true });
  const banned = outcome.events.filter((event) =>
    event.type === "peer-banned" && event.address.port === outcome.hostile.port
  );
  assert.equal(banned.length, 1, "the corrupting peer is banned once");
  assert.ok(outcome.events.some((event) => event.type === "piece-failed"));
  // Banned: never dialled again.
  await sleep(100);
  assert.equal(outcome.hostile.connections, 1);
});

Deno.test("adversarial: stalling peers do not hold the download up", async (t) => {
  await t.step("handshake, then silence", async () => {
    await downloadBeside(async (wire, { geometry, signal }) => {
      if (await wire.readHandshake() === undefined) return;
      await wire.sendHandshake(geometry.infoHash);
      await sleep(30_000, signal);
    }, { timeoutMs: 8_000 });
  });

  await t.step("bitfield and unchoke, then silence with requests outstanding", async () => {
    const outcome = await downloadBeside(async (wire, { geometry, signal }) => {
      if (!await openAsSeeder(wire, geometry)) return;
      await sleep(30_000, signal);
    }, { timeoutMs: 8_000 });
    assert.equal(outcome.hostile.connections, 1);
  });

  for (const fast of [false, true]) {
    await t.step(`choking forever after unchoking (fast extension: ${fast})`, async () => {
      await downloadBeside(async (wire, { geometry, signal }) => {
        if (!await openAsSeeder(wire, geometry, { fast })) return;
        if (await wire.expect("request") === undefined) return;
        await wire.send({ type: "choke" });
        // Never rejects the requests, never unchokes.
        await sleep(30_000, signal);
      }, { timeoutMs: 8_000 });
    });
  }

  await t.step("one byte per 200 ms of handshake: dropped at the handshake timeout", async () => {
    const outcome = await downloadBeside(async (wire, { signal }) => {
      if (await wire.readHandshake() === undefined) return;
      const bytes = new Uint8Array(68);
      bytes[0] = 19;
      for (let i = 0; i < bytes.length && !signal.aborted && !wire.ended; i++) {
        await wire.sendRaw(bytes.subarray(i, i + 1));
        await sleep(200, signal);
      }
    }, { expectDrop: true, torrent: { handshakeTimeoutMs: 1_500 } });
    assert.ok(outcome.doneBeforeDrop, "the download finished while the slow peer dribbled");
    assertReason(outcome, HandshakeError, /no answer within 1500 ms/);
  });

  await t.step("one byte per 200 ms after the handshake", async () => {
    await downloadBeside(async (wire, { geometry, signal }) => {
      if (!await openAsSeeder(wire, geometry)) return;
      // A keep-alive stream, one byte at a time.
      for (let i = 0; i < 100 && !signal.aborted && !wire.ended; i++) {
        await wire.sendRaw(new Uint8Array(1));
        await sleep(200, signal);
      }
    }, { timeoutMs: 8_000 });
  });
});

/** A seeder of the fixture behind a listener with a short handshake timeout. */
async function seeder(metainfo: Metainfo, data: Uint8Array, handshakeTimeoutMs = 10_000) {
  const storage = new MemoryStorage(data.length);
  await storage.write(0, data);
  const have = new Bitfield(metainfo.pieceCount);
  have.setAll();
  const errors: unknown[] = [];
  const listener = PeerListener.listen({
    hostname: "127.0.0.1",
    handshakeTimeoutMs,
    onError: (error) => errors.push(error),
  });
  const torrent = new Torrent({ metainfo, storage, have, listener });
  torrent.start();
  return {
    port: listener.port,
    torrent,
    errors,
    async [Symbol.asyncDispose]() {
      await torrent.close();
      await listener.close();
    },
  };
}

async function leech(metainfo: Metainfo, port: number, timeoutMs: number): Promise<Uint8Array> {
  const storage = new MemoryStorage(metainfo.totalLength);
  await using torrent = new Torrent({ metainfo, storage });
  torrent.start();
  torrent.addPeers([{ host: "127.0.0.1", port }]);
  await withTimeout(torrent.done, timeoutMs, "leecher download");
  return storage.bytes;
}

Deno.test("adversarial: slow-loris handshakes at our port time out; others are served", async () => {
  const { data, metainfo } = await fixture();
  await using seed = await seeder(metainfo, data, 1_000);
  const abort = new AbortController();
  const dribblers = Array.from({ length: 20 }, async () => {
    const wire = await WireConn.dial(seed.port);
    try {
      const bytes = new Uint8Array(68);
      bytes[0] = 19;
      for (let i = 0; i < 68 && !wire.ended && !abort.signal.aborted; i++) {
        await wire.sendRaw(bytes.subarray(i, i + 1));
        await sleep(200, abort.signal);
      }
      return wire.ended;
    } catch (error) {
      if (wire.ended) return true;
      throw error;
    } finally {
      wire.close();
    }
  });
  try {
    assert.deepEqual(await leech(metainfo, seed.port, 5_000), data);
    const started = performance.now();
    const ended = await withTimeout(Promise.all(dribblers), 4_000, "slow handshakes dropped");
    assert.ok(ended.every(Boolean), "every slow handshake was closed by the listener");
    assert.ok(performance.now() - started < 3_000);
    assert.ok(seed.errors.every((error) => error instanceof HandshakeError));
  } finally {
    abort.abort();
    await Promise.allSettled(dribblers);
  }
});

Deno.test("adversarial: a request flood against our serving side stays bounded", async (t) => {
  const { data, metainfo } = await fixture();
  for (const fast of [false, true]) {
    await t.step(`fast extension: ${fast}`, async () => {
      await using seed = await seeder(metainfo, data);
      const wire = await WireConn.dial(seed.port);
      try {
        await wire.sendHandshake(metainfo.infoHash, { fast });
        assert.ok(await wire.readHandshake());
        await wire.send({ type: "interested" });
        assert.ok(await wire.expect("unchoke"), "the seeder unchokes the flooder");
        // 200,000 requests (3.4 MB), valid and invalid mixed, sent without reading answers.
        const count = 200_000;
        const frame = new Uint8Array(17 * count);
        const view = new DataView(frame.buffer);
        for (let i = 0; i < count; i++) {
          const at = i * 17;
          view.setUint32(at, 13);
          frame[at + 4] = 6; // request
          view.setUint32(at + 5, i % 16); // index, sometimes out of range
          view.setUint32(at + 9, (i % 3) * 16384); // begin, sometimes past the piece
          view.setUint32(at + 13, 16384);
        }
        // What the seeder holds for its peers, sampled through the flood: the requests it
        // keeps queued and the bytes written that the sockets have not taken.
        let peakRequests = 0;
        let peakBytes = 0;
        const sample = () => {
          for (const peer of seed.torrent.peers()) {
            peakRequests = Math.max(peakRequests, peer.requestsQueued);
            peakBytes = Math.max(peakBytes, peer.bytesQueued);
          }
        };
        const sampler = setInterval(sample, 2);
        const rssBefore = Deno.memoryUsage().rss;
        const sending = wire.sendRaw(frame).catch((error) => error);
        try {
          // Meanwhile an honest leecher is served in full.
          assert.deepEqual(await leech(metainfo, seed.port, 10_000), data);
          await sleep(200);
        } finally {
          clearInterval(sampler);
        }
        const growth = Deno.memoryUsage().rss - rssBefore;
        // Now read what the flooder got: at most the upload queue plus what socket buffers held.
        let pieces = 0;
        let rejects = 0;
        const reading = (async () => {
          for (let m = await wire.next(); m !== undefined; m = await wire.next()) {
            if (m.type === "piece") pieces++;
            if (m.type === "reject") rejects++;
          }
        })();
        await sleep(1_000);
        wire.close();
        await reading;
        const sent = await sending;
        console.log(
          `flood (fast ${fast}): peak ${peakRequests} requests and ${peakBytes} bytes queued, ` +
            `rss +${(growth / 1048576).toFixed(1)} MiB, ${pieces} pieces, ${rejects} rejects, ` +
            `sender ${sent instanceof Error ? sent.name : "finished"}`,
        );
        // Under BEP 6 the flooder is gone before a sample (see below); otherwise it is served.
        if (!fast) assert.ok(peakRequests > 0, "the sampler saw the flood");
        assert.ok(peakRequests <= MAX_QUEUED_UPLOADS, `${peakRequests} requests queued`);
        // Blocks in flight: 2 MiB, plus the batch (at most a span) that went past it.
        assert.ok(peakBytes <= 4 * 1048576, `${peakBytes} bytes queued`);
        // A backstop only: the process's RSS also moves with the heap and other test files.
        assert.ok(growth < 256 * 1048576, `rss grew by ${growth} bytes`);
        assert.ok(pieces < count / 10, `${pieces} blocks served to the flooder`);
        // Under BEP 6 every dropped request costs a reject; a flooder that does not read them
        // is disconnected instead of having them buffered.
        if (fast) assert.ok(wire.ended, "the flooder was disconnected");
      } finally {
        wire.close();
      }
    });
  }
});

Deno.test("adversarial: 1000 connection attempts at our port; the seed carries on", async () => {
  const { data, metainfo } = await fixture();
  await using seed = await seeder(metainfo, data, 2_000);
  // Warm up once, so lazily opened runtime resources are not counted as leaks.
  assert.deepEqual(await leech(metainfo, seed.port, 10_000), data);
  const fdsBefore = openFdCount();
  const handshake = new Uint8Array(68);
  handshake[0] = 19;
  handshake.set(new TextEncoder().encode("BitTorrent protocol"), 1);
  const unknownHash = handshake.slice();
  unknownHash.fill(0xee, 28, 48);
  const kinds = [
    async (_wire: WireConn) => {}, // connect and close at once
    (wire: WireConn) => wire.sendRaw(deterministicBytes(100, 3)), // garbage
    (wire: WireConn) => wire.sendRaw(unknownHash), // an info hash nobody serves
    (wire: WireConn) => wire.sendRaw(handshake.subarray(0, 30)), // half a handshake
  ];
  const leeching = leech(metainfo, seed.port, 20_000);
  let attempts = 0;
  for (let batch = 0; batch < 20; batch++) {
    await Promise.all(Array.from({ length: 50 }, async (_, i) => {
      const wire = await WireConn.dial(seed.port);
      attempts++;
      try {
        await kinds[(batch * 50 + i) % kinds.length]!(wire);
      } catch (error) {
        if (!wire.ended) throw error;
      } finally {
        wire.close();
      }
    }));
  }
  assert.equal(attempts, 1000);
  assert.deepEqual(await leeching, data, "a leecher is served during the storm");
  // The listener survives and answers new peers.
  assert.deepEqual(await leech(metainfo, seed.port, 10_000), data);
  // Every half-open handshake times out (2 s) and its descriptor is released.
  let fdsAfter = openFdCount();
  for (let i = 0; i < 40 && fdsAfter > fdsBefore + 2; i++) {
    await sleep(100);
    fdsAfter = openFdCount();
  }
  assert.ok(fdsAfter <= fdsBefore + 2, `open fds went from ${fdsBefore} to ${fdsAfter}`);
  for (let i = 0; i < 20 && seed.torrent.stats().peersConnected > 0; i++) await sleep(50);
  assert.equal(seed.torrent.stats().peersConnected, 0, "every session ended");
});

Deno.test("adversarial: serveTorrent survives a hostile peer dialling it", async () => {
  // A smoke test of the public one-call seeder with the nastiest opening: a 4 GiB frame.
  const { data, metainfo } = await fixture();
  const storage = new MemoryStorage(data.length);
  await storage.write(0, data);
  await using server = await serveTorrent({ metainfo, storage, hostname: "127.0.0.1" });
  const wire = await WireConn.dial(server.port);
  try {
    await wire.sendHandshake(metainfo.infoHash);
    assert.ok(await wire.readHandshake());
    await wire.sendRaw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 7]));
    assert.equal(await wire.waitForClose(3_000), true, "the server closed the connection");
  } finally {
    wire.close();
  }
  assert.deepEqual(await leech(metainfo, server.port, 10_000), data);
});
