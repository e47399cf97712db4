/**
 * Magnet metadata over loopback (BEP 9 over BEP 10): `fetchMetadata` and
 * `extensionHandshake` against scripted serving peers on real sockets.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { encode } from "../lib/bencode/mod.ts";
import type { PeerAddress } from "../lib/peer/address.ts";
import { PeerConnection } from "../lib/peer/connection.ts";
import { HandshakeError, PeerProtocolError } from "../lib/peer/errors.ts";
import {
  decodeExtensionHandshake,
  encodeExtensionHandshake,
  type ExtensionHandshake,
  ExtensionRegistry,
} from "../lib/peer/extension.ts";
import { generatePeerId, reservedBits } from "../lib/peer/handshake.ts";
import type { PeerMessage } from "../lib/peer/message.ts";
import {
  extensionHandshake,
  fetchMetadata,
  MetadataFetchError,
  metadataResponder,
} from "../lib/peer/metadata_exchange.ts";
import { decodeMetadataMessage, encodeMetadataMessage } from "../lib/peer/ut_metadata.ts";

/** A v1 info dictionary whose `pieces` makes it `hashes * 20` bytes plus a little. */
function infoDict(hashes: number, seed = 7): Uint8Array {
  const pieces = new Uint8Array(hashes * 20);
  let state = seed;
  for (let i = 0; i < pieces.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    pieces[i] = state >>> 24;
  }
  return encode({
    length: hashes * 16384,
    name: "fixture.bin",
    "piece length": 16384,
    pieces,
  });
}

function sha1(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(bytes).digest());
}

/** 12 metadata pieces, the last one short. */
const BIG_INFO = infoDict(9500);
const BIG_HASH = sha1(BIG_INFO);
/** One metadata piece. */
const SMALL_INFO = infoDict(10);
const SMALL_HASH = sha1(SMALL_INFO);

type Behavior =
  /** Serves the metadata. */
  | "honest"
  /** Serves metadata of the right size with every piece's first byte flipped. */
  | "liar"
  /** Rejects every request. */
  | "reject"
  /** Never sends an extension handshake. */
  | "silent";

interface ScriptedPeerOptions {
  behavior?: Behavior;
  /** Set the extension protocol bit in our handshake. Defaults to true. */
  extensionBit?: boolean;
  /** Our `ut_metadata` id. Defaults to 3. */
  metadataId?: number;
}

interface ScriptedPeer {
  address: PeerAddress;
  peerId: Uint8Array;
  /** Pieces the client requested from us. */
  requests: number[];
  /** The first message the client sent after the BitTorrent handshake. */
  firstMessage: PeerMessage | undefined;
  /** The client's extension handshake. */
  clientHandshake: ExtensionHandshake | undefined;
  /** Whether the client's connection reached us. */
  connected: boolean;
  close(): Promise<void>;
}

/**
 * A serving peer on 127.0.0.1 that accepts one connection, answers the
 * BitTorrent handshake, sends some BEP 3 noise and an unknown extended
 * message around its extension handshake, and answers `ut_metadata`
 * requests according to `behavior`.
 */
function startPeer(info: Uint8Array, options: ScriptedPeerOptions = {}): ScriptedPeer {
  const behavior = options.behavior ?? "honest";
  const metadataId = options.metadataId ?? 3;
  const infoHash = sha1(info);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peerId = generatePeerId("-SP0001-");
  const served = info.slice();
  if (behavior === "liar") {
    for (let i = 0; i < served.length; i += 16384) served[i]! ^= 0xff;
  }
  const respond = metadataResponder(served);
  const peer: ScriptedPeer = {
    address: { host: "127.0.0.1", port: listener.addr.port },
    peerId,
    requests: [],
    firstMessage: undefined,
    clientHandshake: undefined,
    connected: false,
    close: async () => {
      listener.close();
      await serving;
    },
  };

  async function serve(): Promise<void> {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      // The test closed the listener without anyone connecting.
      if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
        return;
      }
      throw error;
    }
    peer.connected = true;
    await using connection = await PeerConnection.accept(conn, {
      peerId,
      reserved: reservedBits({ extensionProtocol: options.extensionBit ?? true }),
      lookup: (hash) => hash.every((byte, i) => byte === infoHash[i]),
    });
    const registry = new ExtensionRegistry({ ut_metadata: metadataId });
    // BEP 3 noise and an extended message with an id nobody assigned.
    const noise: PeerMessage[] = [
      { type: "bitfield", bitfield: new Uint8Array([0xff]) },
      { type: "have", index: 0 },
    ];
    if (behavior !== "silent") {
      noise.push({
        type: "extended",
        id: 0,
        payload: encodeExtensionHandshake(
          registry.localHandshake({ metadataSize: info.length, v: "scripted 1.0" }),
        ),
      });
    }
    noise.push({ type: "extended", id: 77, payload: new Uint8Array([1, 2, 3]) });
    await connection.send(noise);
    for await (const message of connection.messages) {
      peer.firstMessage ??= message;
      if (message.type !== "extended") continue;
      if (message.id === 0) {
        const handshake = decodeExtensionHandshake(message.payload);
        peer.clientHandshake = handshake;
        registry.receiveHandshake(handshake);
        continue;
      }
      if (registry.localName(message.id) !== "ut_metadata") continue;
      const request = decodeMetadataMessage(message.payload);
      if (request.type !== "request") continue;
      peer.requests.push(request.piece);
      const answer = behavior === "reject"
        ? { type: "reject" as const, piece: request.piece }
        : respond(request);
      if (answer === undefined) continue;
      await connection.send(
        registry.extendedMessage("ut_metadata", encodeMetadataMessage(answer)),
      );
    }
  }

  const serving = serve().catch((error) => {
    // The client hangs up as soon as it has the metadata, possibly mid-handshake or mid-send.
    if (error instanceof HandshakeError || error instanceof Deno.errors.BrokenPipe) return;
    if (error instanceof Error && /connection is closed|reset/i.test(error.message)) return;
    throw error;
  });
  return peer;
}

async function closeAll(peers: ScriptedPeer[]): Promise<void> {
  await Promise.all(peers.map((peer) => peer.close()));
}

Deno.test("fetchMetadata() gets the info dictionary from one peer", async () => {
  const peer = startPeer(SMALL_INFO);
  try {
    const info = await fetchMetadata([peer.address], SMALL_HASH);
    assert.deepEqual(info, SMALL_INFO);
    assert.deepEqual(peer.requests, [0]);
  } finally {
    await peer.close();
  }
});

Deno.test("fetchMetadata() sends its extension handshake first", async () => {
  const peer = startPeer(BIG_INFO);
  try {
    const info = await fetchMetadata([peer.address], BIG_HASH);
    assert.deepEqual(info, BIG_INFO);
    assert.equal(peer.firstMessage?.type, "extended");
    assert.equal(peer.firstMessage?.type === "extended" && peer.firstMessage.id, 0);
    assert.equal(peer.clientHandshake?.m.ut_metadata, 1);
    // All 12 pieces, each asked once.
    assert.deepEqual(peer.requests.toSorted((a, b) => a - b), [...Array(12).keys()]);
  } finally {
    await peer.close();
  }
});

Deno.test("fetchMetadata() splits the pieces over several peers", async () => {
  const peers = [startPeer(BIG_INFO), startPeer(BIG_INFO), startPeer(BIG_INFO)];
  try {
    const info = await fetchMetadata(peers.map((peer) => peer.address), BIG_HASH);
    assert.deepEqual(info, BIG_INFO);
    const asked = peers.filter((peer) => peer.requests.length > 0).length;
    assert.ok(asked >= 2, `expected pieces from several peers, got ${asked}`);
  } finally {
    await closeAll(peers);
  }
});

Deno.test("fetchMetadata() survives a peer that sends bad metadata", async (t) => {
  await t.step("a liar among three peers", async () => {
    const peers = [
      startPeer(BIG_INFO, { behavior: "liar" }),
      startPeer(BIG_INFO),
      startPeer(BIG_INFO, { behavior: "liar" }),
      startPeer(BIG_INFO),
    ];
    try {
      const info = await fetchMetadata(peers.map((peer) => peer.address), BIG_HASH);
      assert.deepEqual(info, BIG_INFO);
      assert.ok(peers[0]!.requests.length > 0, "the liar was asked for pieces");
    } finally {
      await closeAll(peers);
    }
  });

  await t.step("one liar, then an honest peer", async () => {
    const peers = [startPeer(SMALL_INFO, { behavior: "liar" }), startPeer(SMALL_INFO)];
    try {
      const info = await fetchMetadata(peers.map((peer) => peer.address), SMALL_HASH, {
        maxConnections: 1,
      });
      assert.deepEqual(info, SMALL_INFO);
      assert.deepEqual(peers[0]!.requests, [0]);
    } finally {
      await closeAll(peers);
    }
  });

  await t.step("only liars", async () => {
    const peers = [startPeer(BIG_INFO, { behavior: "liar" })];
    try {
      await assert.rejects(
        fetchMetadata(peers.map((peer) => peer.address), BIG_HASH),
        MetadataFetchError,
      );
    } finally {
      await closeAll(peers);
    }
  });
});

Deno.test("fetchMetadata() reports why each peer failed", async () => {
  const liar = startPeer(SMALL_INFO, { behavior: "liar" });
  const rejecter = startPeer(SMALL_INFO, { behavior: "reject" });
  try {
    const failure = await fetchMetadata([liar.address, rejecter.address], SMALL_HASH).then(
      () => assert.fail("expected a MetadataFetchError"),
      (error: unknown) => error,
    );
    assert.ok(failure instanceof MetadataFetchError);
    const reasons = new Map(
      failure.failures.map((f) => [f.address.port, String(f.reason)]),
    );
    assert.match(reasons.get(liar.address.port) ?? "", /does not match the info hash/);
    assert.match(reasons.get(rejecter.address.port) ?? "", /rejected/);
  } finally {
    await closeAll([liar, rejecter]);
  }
});

Deno.test("fetchMetadata() asks another peer after a reject", async () => {
  const peers = [startPeer(BIG_INFO, { behavior: "reject" }), startPeer(BIG_INFO)];
  try {
    const info = await fetchMetadata(peers.map((peer) => peer.address), BIG_HASH);
    assert.deepEqual(info, BIG_INFO);
    assert.ok(peers[0]!.connected);
  } finally {
    await closeAll(peers);
  }
});

Deno.test("fetchMetadata() skips peers without the extension or its handshake", async () => {
  const peers = [
    startPeer(SMALL_INFO, { extensionBit: false }),
    startPeer(SMALL_INFO, { behavior: "silent" }),
    startPeer(SMALL_INFO),
  ];
  try {
    const info = await fetchMetadata(peers.map((peer) => peer.address), SMALL_HASH, {
      handshakeTimeoutMs: 300,
    });
    assert.deepEqual(info, SMALL_INFO);
    assert.deepEqual(peers[0]!.requests, []);
    assert.deepEqual(peers[1]!.requests, []);
  } finally {
    await closeAll(peers);
  }
});

Deno.test("fetchMetadata() fails when no peer answers", async (t) => {
  await t.step("refused connections", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const address = { host: "127.0.0.1", port: listener.addr.port };
    listener.close();
    const error = await fetchMetadata([address], SMALL_HASH).catch((e: unknown) => e);
    assert.ok(error instanceof MetadataFetchError);
    assert.equal(error.failures.length, 1);
    assert.deepEqual(error.failures[0]!.address, address);
  });

  await t.step("silent peers and a deadline", async () => {
    const peer = startPeer(SMALL_INFO, { behavior: "silent" });
    try {
      await assert.rejects(
        fetchMetadata([peer.address], SMALL_HASH, { timeoutMs: 200 }),
        (error: unknown) =>
          error instanceof MetadataFetchError && /within 200 ms/.test(error.message),
      );
    } finally {
      await peer.close();
    }
  });

  await t.step("an abort signal", async () => {
    const peer = startPeer(SMALL_INFO, { behavior: "silent" });
    try {
      const controller = new AbortController();
      const reason = new Error("stop");
      setTimeout(() => controller.abort(reason), 50);
      await assert.rejects(
        fetchMetadata([peer.address], SMALL_HASH, { signal: controller.signal }),
        (error: unknown) => error === reason,
      );
    } finally {
      await peer.close();
    }
  });
});

Deno.test("extensionHandshake() returns the peer's extension handshake", async () => {
  const peer = startPeer(SMALL_INFO, { metadataId: 5 });
  try {
    const result = await extensionHandshake(peer.address, SMALL_HASH);
    assert.equal(result.handshake.m.ut_metadata, 5);
    assert.equal(result.handshake.metadataSize, SMALL_INFO.length);
    assert.equal(result.handshake.v, "scripted 1.0");
    assert.deepEqual(result.peerId, peer.peerId);
    assert.deepEqual(result.reserved, reservedBits({ extensionProtocol: true }));
  } finally {
    await peer.close();
  }
  assert.equal(peer.firstMessage?.type === "extended" && peer.firstMessage.id, 0);
});

Deno.test("extensionHandshake() rejects peers without the extension protocol", async (t) => {
  await t.step("no extension bit", async () => {
    const peer = startPeer(SMALL_INFO, { extensionBit: false });
    try {
      await assert.rejects(
        extensionHandshake(peer.address, SMALL_HASH),
        (error: unknown) =>
          error instanceof PeerProtocolError &&
          /does not support the extension/.test(error.message),
      );
    } finally {
      await peer.close();
    }
  });

  await t.step("no extension handshake in time", async () => {
    const peer = startPeer(SMALL_INFO, { behavior: "silent" });
    try {
      await assert.rejects(
        extensionHandshake(peer.address, SMALL_HASH, { timeoutMs: 200 }),
        (error: unknown) =>
          error instanceof PeerProtocolError && /within 200 ms/.test(error.message),
      );
    } finally {
      await peer.close();
    }
  });
});
