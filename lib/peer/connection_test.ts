import assert from "node:assert/strict";
import { PeerConnection } from "./connection.ts";
import { HandshakeError, PeerProtocolError } from "./errors.ts";
import {
  decodeHandshake,
  encodeHandshake,
  reservedBits,
  supportsExtensionProtocol,
  supportsFastExtension,
} from "./handshake.ts";
import { encodeMessages, type PeerMessage } from "./message.ts";

// Deno 2.9 turns the sanitizers off by default: every test here must close what it opens.
Deno.test.sanitizer({ ops: true, resources: true });

const INFO_HASH = new Uint8Array(20).fill(0xab);
const OTHER_INFO_HASH = new Uint8Array(20).fill(0xcd);
const CLIENT_ID = new TextEncoder().encode("-DT0100-client000001");
const SERVER_ID = new TextEncoder().encode("-DT0100-server000001");

function listen(): Deno.TcpListener {
  return Deno.listen({ hostname: "127.0.0.1", port: 0 });
}

async function readExactly(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const count = await conn.read(buffer.subarray(filled));
    if (count === null) throw new Error(`Connection closed after ${filled} of ${length} bytes`);
    filled += count;
  }
  return buffer;
}

/** Reads until the peer closes; returns how many bytes arrived. */
async function drain(conn: Deno.Conn): Promise<number> {
  const buffer = new Uint8Array(65536);
  let total = 0;
  for (;;) {
    const count = await conn.read(buffer).catch((error) => {
      if (error instanceof Deno.errors.ConnectionReset) return null;
      throw error;
    });
    if (count === null) return total;
    total += count;
  }
}

/** A connected pair over loopback: `client` dialled, `server` accepted. */
async function connectedPair(): Promise<{ client: PeerConnection; server: PeerConnection }> {
  using listener = listen();
  const serving = listener.accept().then((conn) =>
    PeerConnection.accept(conn, {
      peerId: SERVER_ID,
      reserved: reservedBits({ fast: true }),
      lookup: (infoHash) => infoHash.every((byte) => byte === 0xab),
    })
  );
  const client = await PeerConnection.connect(
    { host: "127.0.0.1", port: listener.addr.port },
    { infoHash: INFO_HASH, peerId: CLIENT_ID },
  );
  return { client, server: await serving };
}

Deno.test("PeerConnection.connect() and accept() complete the handshake both ways", async () => {
  const { client, server } = await connectedPair();
  await using _client = client;
  await using _server = server;

  assert.deepEqual(client.infoHash, INFO_HASH);
  assert.deepEqual(client.remotePeerId, SERVER_ID);
  assert.equal(supportsFastExtension(client.remoteReserved), true);
  assert.equal(supportsExtensionProtocol(client.remoteReserved), false);
  assert.equal(client.address.host, "127.0.0.1");

  assert.deepEqual(server.infoHash, INFO_HASH);
  assert.deepEqual(server.remotePeerId, CLIENT_ID);
  assert.equal(supportsExtensionProtocol(server.remoteReserved), true);
  assert.equal(server.address.host, "127.0.0.1");
  assert.notEqual(server.address.port, 0);
});

Deno.test("PeerConnection exchanges messages both ways", async () => {
  const { client, server } = await connectedPair();
  await using _client = client;
  await using _server = server;

  const block = new Uint8Array(16384).map((_, i) => i & 0xff);
  const toServer: PeerMessage[] = [
    { type: "extended", id: 0, payload: new TextEncoder().encode("de") },
    { type: "interested" },
    { type: "request", index: 0, begin: 0, length: 16384 },
    { type: "keep-alive" },
  ];
  const toClient: PeerMessage[] = [
    { type: "have-all" },
    { type: "unchoke" },
    ...Array.from({ length: 64 }, (_, i): PeerMessage => ({
      type: "piece",
      index: i >> 4,
      begin: (i & 15) * 16384,
      block,
    })),
    { type: "reject", index: 9, begin: 0, length: 16384 },
  ];

  const serverReceived = (async () => {
    const received: PeerMessage[] = [];
    const reader = server.messages.getReader();
    while (received.length < toServer.length) received.push((await reader.read()).value!);
    reader.releaseLock();
    return received;
  })();
  const clientReceived = (async () => {
    const received: PeerMessage[] = [];
    const reader = client.messages.getReader();
    while (received.length < toClient.length) received.push((await reader.read()).value!);
    reader.releaseLock();
    return received;
  })();

  await client.send(toServer[0]!);
  await client.send(toServer.slice(1)); // one batched write
  await server.send(toClient.slice(0, 2));
  for (const message of toClient.slice(2)) await server.send(message);

  assert.deepEqual(await serverReceived, toServer);
  assert.deepEqual(await clientReceived, toClient);
});

Deno.test("PeerConnection.connect() rejects a peer answering with another info hash", async () => {
  using listener = listen();
  const peer = (async () => {
    using conn = await listener.accept();
    await readExactly(conn, 68);
    await conn.write(encodeHandshake({ infoHash: OTHER_INFO_HASH, peerId: SERVER_ID }));
    return await drain(conn);
  })();
  await assert.rejects(
    PeerConnection.connect({ host: "127.0.0.1", port: listener.addr.port }, {
      infoHash: INFO_HASH,
      peerId: CLIENT_ID,
    }),
    {
      name: "HandshakeError",
      message: `Peer answered with info hash ${"cd".repeat(20)}, expected ${"ab".repeat(20)}`,
    },
  );
  assert.equal(await peer, 0); // we closed without sending anything past the handshake
});

Deno.test("PeerConnection.connect() rejects a peer that closes during the handshake", async () => {
  using listener = listen();
  const peer = (async () => {
    const conn = await listener.accept();
    await readExactly(conn, 68);
    // The first 30 bytes of a handshake, then hang up.
    await conn.write(encodeHandshake({ infoHash: INFO_HASH, peerId: SERVER_ID }).subarray(0, 30));
    conn.close();
  })();
  await assert.rejects(
    PeerConnection.connect({ host: "127.0.0.1", port: listener.addr.port }, {
      infoHash: INFO_HASH,
      peerId: CLIENT_ID,
    }),
    (error: unknown) =>
      error instanceof HandshakeError &&
      error.message.endsWith("peer closed the connection after 30 of 68 bytes"),
  );
  await peer;
});

Deno.test("PeerConnection.connect() times out on a peer that never answers", async () => {
  using listener = listen();
  const accepted = listener.accept();
  const start = performance.now();
  await assert.rejects(
    PeerConnection.connect({ host: "127.0.0.1", port: listener.addr.port }, {
      infoHash: INFO_HASH,
      peerId: CLIENT_ID,
      timeoutMs: 100,
    }),
    (error: unknown) =>
      error instanceof HandshakeError && error.message.endsWith("no answer within 100 ms"),
  );
  const elapsed = performance.now() - start;
  assert.ok(elapsed >= 90 && elapsed < 2000, `took ${elapsed} ms`);
  using conn = await accepted;
  assert.equal((await readExactly(conn, 68))[0], 19); // our handshake did go out
  assert.equal(await drain(conn), 0); // then we hung up
});

Deno.test("PeerConnection.connect() rejects with the abort reason", async (t) => {
  await t.step("aborted while waiting for the peer", async () => {
    using listener = listen();
    const accepted = listener.accept();
    const controller = new AbortController();
    const reason = new Error("Shutting down");
    const connecting = PeerConnection.connect({ host: "127.0.0.1", port: listener.addr.port }, {
      infoHash: INFO_HASH,
      peerId: CLIENT_ID,
      signal: controller.signal,
    });
    using conn = await accepted;
    await readExactly(conn, 68);
    controller.abort(reason);
    await assert.rejects(connecting, (error) => error === reason);
    assert.equal(await drain(conn), 0);
  });
  await t.step("aborted before starting", async () => {
    const reason = new Error("Too late");
    await assert.rejects(
      PeerConnection.connect({ host: "127.0.0.1", port: 9 }, {
        infoHash: INFO_HASH,
        peerId: CLIENT_ID,
        signal: AbortSignal.abort(reason),
      }),
      (error) => error === reason,
    );
  });
});

Deno.test("PeerConnection.connect() passes connect errors through", async () => {
  const listener = listen();
  const port = listener.addr.port;
  listener.close();
  await assert.rejects(
    PeerConnection.connect({ host: "127.0.0.1", port }, { infoHash: INFO_HASH, peerId: CLIENT_ID }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("PeerConnection.connect() rejects bad arguments before dialling", async () => {
  await assert.rejects(
    PeerConnection.connect({ host: "127.0.0.1", port: 9 }, {
      infoHash: new Uint8Array(19),
      peerId: CLIENT_ID,
    }),
    TypeError,
  );
});

Deno.test("PeerConnection.accept() closes the connection for an unknown info hash", async () => {
  using listener = listen();
  const lookups: Uint8Array[] = [];
  const serving = listener.accept().then((conn) =>
    PeerConnection.accept(conn, {
      peerId: SERVER_ID,
      lookup: (infoHash) => {
        lookups.push(infoHash);
        return Promise.resolve(false);
      },
    })
  );
  const connecting = PeerConnection.connect({ host: "127.0.0.1", port: listener.addr.port }, {
    infoHash: OTHER_INFO_HASH,
    peerId: CLIENT_ID,
  });
  await assert.rejects(serving, {
    name: "HandshakeError",
    message: `Peer asked for unknown info hash ${"cd".repeat(20)}`,
  });
  await assert.rejects(
    connecting,
    (error: unknown) =>
      error instanceof HandshakeError &&
      error.message.endsWith("peer closed the connection after 0 of 68 bytes"),
  );
  assert.deepEqual(lookups, [OTHER_INFO_HASH]);
});

Deno.test("PeerConnection.accept() rejects a malformed handshake", async () => {
  using listener = listen();
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  // 68 bytes of an HTTP request where a handshake belongs.
  const request = new Uint8Array(68).fill(0x20);
  request.set(new TextEncoder().encode("GET /announce HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  await client.write(request);
  await assert.rejects(
    PeerConnection.accept(await listener.accept(), { peerId: SERVER_ID, lookup: () => true }),
    HandshakeError,
  );
  assert.equal(await drain(client), 0);
  client.close();
});

Deno.test("PeerConnection.accept() times out on a silent peer", async () => {
  using listener = listen();
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  await assert.rejects(
    PeerConnection.accept(await listener.accept(), {
      peerId: SERVER_ID,
      lookup: () => true,
      timeoutMs: 50,
    }),
    (error: unknown) => error instanceof HandshakeError && error.message.includes("within 50 ms"),
  );
  assert.equal(await drain(client), 0);
  client.close();
});

Deno.test("PeerConnection keeps messages sent in the same packet as the handshake", async () => {
  using listener = listen();
  const peer = (async () => {
    using conn = await listener.accept();
    const ours = decodeHandshake(await readExactly(conn, 68));
    assert.deepEqual(ours.peerId, CLIENT_ID);
    const handshake = encodeHandshake({ infoHash: INFO_HASH, peerId: SERVER_ID });
    const messages = encodeMessages([
      { type: "bitfield", bitfield: new Uint8Array([0xf0]) },
      { type: "unchoke" },
    ]);
    const packet = new Uint8Array(handshake.length + messages.length);
    packet.set(handshake);
    packet.set(messages, handshake.length);
    await conn.write(packet);
    return await drain(conn);
  })();
  const client = await PeerConnection.connect({ host: "127.0.0.1", port: listener.addr.port }, {
    infoHash: INFO_HASH,
    peerId: CLIENT_ID,
  });
  const reader = client.messages.getReader();
  assert.deepEqual((await reader.read()).value, {
    type: "bitfield",
    bitfield: new Uint8Array([0xf0]),
  });
  assert.deepEqual((await reader.read()).value, { type: "unchoke" });
  client.close();
  assert.deepEqual(await reader.read(), { done: true, value: undefined });
  await client.closed;
  assert.equal(await peer, 0);
});

Deno.test("PeerConnection.messages ends when the peer closes cleanly", async () => {
  const { client, server } = await connectedPair();
  await server.send({ type: "have", index: 4 });
  server.close();
  await server.closed;
  const received = await Array.fromAsync(client.messages);
  assert.deepEqual(received, [{ type: "have", index: 4 }]);
  await client.closed; // closed by itself at end of stream
  await assert.rejects(client.send({ type: "choke" }), /connection is closed/);
});

Deno.test("PeerConnection.messages errors on a protocol violation and closes", async () => {
  using listener = listen();
  const interestedSeen = Promise.withResolvers<void>();
  const peer = (async () => {
    using conn = await listener.accept();
    await readExactly(conn, 68);
    await conn.write(encodeHandshake({ infoHash: INFO_HASH, peerId: SERVER_ID }));
    await conn.write(new Uint8Array([0, 0, 0, 1, 2])); // length 1 | interested
    // Wait, so that the bad frame arrives in a chunk of its own: an error
    // discards messages not yet read.
    await interestedSeen.promise;
    await conn.write(new Uint8Array([0xff, 0xff, 0xff, 0xff])); // length 2^32-1
    return await drain(conn);
  })();
  const client = await PeerConnection.connect({ host: "127.0.0.1", port: listener.addr.port }, {
    infoHash: INFO_HASH,
    peerId: CLIENT_ID,
  });
  const reader = client.messages.getReader();
  assert.deepEqual((await reader.read()).value, { type: "interested" });
  interestedSeen.resolve();
  await assert.rejects(reader.read(), {
    name: "PeerProtocolError",
    message:
      "Cannot decode peer message: frame length 4294967295 exceeds the maximum of 1048589 bytes",
  });
  await client.closed;
  await assert.rejects(
    client.send({ type: "choke" }),
    (error: unknown) => error instanceof Error && error.cause instanceof PeerProtocolError,
  );
  assert.equal(await peer, 0);
});

Deno.test("PeerConnection.close() is idempotent and ends messages", async () => {
  const { client, server } = await connectedPair();
  const reading = Array.fromAsync(client.messages);
  const reason = new Error("Snubbed");
  client.close(reason);
  client.close();
  await client.closed;
  assert.deepEqual(await reading, []);
  await assert.rejects(
    client.send({ type: "interested" }),
    (error: unknown) => error instanceof Error && error.cause === reason,
  );
  // The peer sees the end of the stream.
  assert.deepEqual(await Array.fromAsync(server.messages), []);
  await server.closed;
});

Deno.test("PeerConnection closes when messages is cancelled", async () => {
  const { client, server } = await connectedPair();
  await server.send({ type: "choke" });
  for await (const message of client.messages) {
    assert.deepEqual(message, { type: "choke" });
    break; // cancels the stream
  }
  await client.closed;
  await assert.rejects(client.send({ type: "interested" }), /connection is closed/);
  // The peer sees the end of the stream.
  assert.deepEqual(await Array.fromAsync(server.messages), []);
  await server.closed;
});

Deno.test("PeerConnection.send() rejects once the peer has gone", async () => {
  const { client, server } = await connectedPair();
  server.close();
  await server.closed;
  const block = new Uint8Array(65536);
  await assert.rejects(async () => {
    for (let i = 0; i < 1000; i++) await client.send({ type: "piece", index: 0, begin: 0, block });
  });
  await client.closed;
});

Deno.test("PeerConnection grows a reused read buffer for a fast peer, and keeps every block intact", async () => {
  for (const reuseReadBuffer of [true, false]) {
    using listener = listen();
    const serving = listener.accept().then((conn) =>
      PeerConnection.accept(conn, { peerId: SERVER_ID, lookup: () => true })
    );
    await using client = await PeerConnection.connect(
      { host: "127.0.0.1", port: listener.addr.port },
      { infoHash: INFO_HASH, peerId: CLIENT_ID, reuseReadBuffer },
    );
    await using server = await serving;
    const blockOf = (index: number, begin: number) =>
      Uint8Array.from({ length: 16384 }, (_, i) => (index * 31 + begin / 16384 + i * 7) & 0xff);
    const sent: PeerMessage[] = [];
    for (let index = 0; index < 32; index++) {
      for (let begin = 0; begin < 4 * 16384; begin += 16384) {
        sent.push({ type: "piece", index, begin, block: blockOf(index, begin) });
      }
    }
    sent.push({ type: "have", index: 99 });
    let received = 0;
    client.setPieceHandler((index, begin, block) => {
      assert.deepEqual(block, blockOf(index, begin));
      assert.equal(index * 4 + begin / 16384, received);
      received++;
    });
    // 2 MiB in one write: it piles up in the socket before the client starts reading.
    const sending = server.send(sent);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const reader = client.messages.getReader();
    assert.deepEqual((await reader.read()).value, { type: "have", index: 99 });
    reader.releaseLock();
    await sending;
    assert.equal(received, 128);
    if (reuseReadBuffer) assert.equal(client.readBufferSize > 65536, true);
    else assert.equal(client.readBufferSize, 65536);
  }
});
