/**
 * Message Stream Encryption (MSE/PE): RC4 vectors, Diffie-Hellman, the two handshake state
 * machines against each other (in memory and over loopback sockets), and the peer listener
 * serving a download to an MSE initiator.
 */

import assert from "node:assert/strict";
import { createTorrent } from "../lib/metainfo/mod.ts";
import { PeerConnection } from "../lib/peer/connection.ts";
import { HandshakeError } from "../lib/peer/errors.ts";
import { decodeHandshake, encodeHandshake, generatePeerId } from "../lib/peer/handshake.ts";
import type { PeerMessage } from "../lib/peer/message.ts";
import { DH_PRIME, generateKeyPair, modPow, sharedSecret } from "../lib/peer/mse/_dh.ts";
import {
  acceptMse,
  connectMse,
  CRYPTO_PLAINTEXT,
  CRYPTO_RC4,
  MseConn,
  MseInitiator,
  MseResponder,
  Rc4,
} from "../lib/peer/mse/mod.ts";
import { MemoryStorage } from "../lib/storage/mod.ts";
import { PeerListener, serveTorrent } from "../lib/torrent/mod.ts";
import { deterministicBytes } from "./_helpers/fixtures.ts";

const ASCII = new TextEncoder();

Deno.test("Rc4.xor() matches the published test vectors", async (t) => {
  for (
    const [key, plaintext, cipher] of [
      ["Key", "Plaintext", "bbf316e8d940af0ad3"],
      ["Wiki", "pedia", "1021bf0420"],
      ["Secret", "Attack at dawn", "45a01f645fc35b383552544b9bf5"],
    ]
  ) {
    await t.step(`key "${key}"`, () => {
      const data = ASCII.encode(plaintext!);
      new Rc4(ASCII.encode(key!)).xor(data);
      assert.equal(data.toHex(), cipher);
    });
  }
  await t.step("streams across calls and decrypts with a fresh cipher", () => {
    const data = ASCII.encode("Attack at dawn");
    const enc = new Rc4(ASCII.encode("Secret"));
    enc.xor(data.subarray(0, 3));
    enc.xor(data.subarray(3));
    assert.equal(data.toHex(), "45a01f645fc35b383552544b9bf5");
    new Rc4(ASCII.encode("Secret")).xor(data);
    assert.equal(new TextDecoder().decode(data), "Attack at dawn");
  });
  await t.step("drop skips the keystream start", () => {
    const dropped = new Rc4(ASCII.encode("k"), { drop: 1024 }).xor(new Uint8Array(8));
    const manual = new Rc4(ASCII.encode("k"));
    manual.skip(1024);
    assert.deepEqual(manual.xor(new Uint8Array(8)), dropped);
    assert.notDeepEqual(new Rc4(ASCII.encode("k")).xor(new Uint8Array(8)), dropped);
  });
  await t.step("rejects an empty key", () => {
    assert.throws(() => new Rc4(new Uint8Array(0)), RangeError);
  });
});

Deno.test("MSE Diffie-Hellman: both sides compute the same 96-byte secret", () => {
  assert.equal(modPow(3n, 5n, 7n), 5n); // 243 % 7
  const a = generateKeyPair();
  const b = generateKeyPair();
  assert.equal(a.publicKey.length, 96);
  assert.ok(a.privateKey < 1n << 160n);
  const s1 = sharedSecret(a.privateKey, b.publicKey);
  const s2 = sharedSecret(b.privateKey, a.publicKey);
  assert.equal(s1.length, 96);
  assert.deepEqual(s1, s2);
  assert.notDeepEqual(s1, sharedSecret(a.privateKey, generateKeyPair().publicKey));
  // Degenerate public keys (1, P - 1) would force a known secret.
  assert.throws(
    () => sharedSecret(a.privateKey, new Uint8Array(96).fill(0, 0, 95).fill(1, 95)),
    RangeError,
  );
  const pMinus1 = Uint8Array.fromHex((DH_PRIME - 1n).toString(16));
  assert.throws(() => sharedSecret(a.privateKey, pMinus1), RangeError);
});

Deno.test("MseResponder and MseInitiator agree when fed 1 byte at a time", () => {
  const infoHash = new Uint8Array(20).fill(4);
  const ia = ASCII.encode("initial payload");
  for (const provide of [CRYPTO_PLAINTEXT, CRYPTO_RC4, CRYPTO_PLAINTEXT | CRYPTO_RC4]) {
    const a = new MseInitiator(infoHash, { provide, initialPayload: ia, padLength: 300 });
    const b = new MseResponder([new Uint8Array(20).fill(9), infoHash], { padLength: 200 });
    const feed = (bytes: Uint8Array, to: MseInitiator | MseResponder) => {
      const sent: Uint8Array[] = [];
      let result;
      for (let i = 0; i < bytes.length; i++) {
        const step = to.receive(bytes.subarray(i, i + 1));
        if (step.send) sent.push(step.send);
        if (step.result) result = step.result;
      }
      return { sent, result };
    };
    const yb = feed(a.start(), b);
    assert.equal(yb.sent.length, 1);
    assert.equal(yb.sent[0]!.length, 96 + 200);
    const step3 = feed(yb.sent[0]!, a);
    assert.equal(step3.sent.length, 1);
    assert.equal(step3.result, undefined);
    // The responder's answer, then 5 bytes of application data in the selected mode.
    const done = feed(step3.sent[0]!, b);
    assert.ok(done.result);
    assert.deepEqual(done.result.initialPayload, ia);
    assert.deepEqual(done.result.infoHash, infoHash);
    const expected = provide === CRYPTO_RC4 ? "rc4" : "plaintext";
    assert.equal(done.result.method, expected);
    const app = new Uint8Array([1, 2, 3, 4, 5]);
    const wire = done.result.encrypt ? done.result.encrypt.xor(app.slice()) : app.slice();
    assert.equal(done.result.encrypt !== undefined, expected === "rc4");
    // Byte by byte up to the answer's last byte, which arrives with the application data.
    const answer = done.sent[0]!;
    assert.equal(feed(answer.subarray(0, -1), a).result, undefined);
    const final = a.receive(new Uint8Array([answer.at(-1)!, ...wire]));
    assert.ok(final.result);
    assert.equal(final.result.method, expected);
    assert.deepEqual(final.result.rest, app);
  }
});

Deno.test("MseResponder prefers RC4 only when asked", () => {
  const infoHash = new Uint8Array(20).fill(2);
  const a = new MseInitiator(infoHash);
  const b = new MseResponder([infoHash], { prefer: "rc4" });
  const step3 = a.receive(b.receive(a.start()).send!).send!;
  assert.equal(b.receive(step3).result?.method, "rc4");
});

/** A connected pair of loopback sockets. */
async function socketPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const dialled = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  return [dialled, await accepted];
}

async function readExactly(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const count = await conn.read(out.subarray(filled));
    if (count === null) throw new Error(`Stream ended after ${filled} of ${length} bytes`);
    filled += count;
  }
  return out;
}

Deno.test("acceptMse() and connectMse() over loopback sockets", async (t) => {
  const infoHash = new Uint8Array(20).fill(0xab);
  const btHandshake = encodeHandshake({ infoHash, peerId: generatePeerId() });
  for (const provide of [CRYPTO_PLAINTEXT | CRYPTO_RC4, CRYPTO_RC4]) {
    for (const padLength of [0, 512]) {
      for (const ia of [new Uint8Array(0), btHandshake]) {
        const method = provide === CRYPTO_RC4 ? "rc4" : "plaintext";
        await t.step(`${method}, padding ${padLength}, IA of ${ia.length} bytes`, async () => {
          const [a, b] = await socketPair();
          const served = acceptMse(b, { infoHashes: [new Uint8Array(20), infoHash], padLength });
          using client = await connectMse(a, infoHash, { provide, padLength, initialPayload: ia });
          using server = await served;
          assert.equal(client.method, method);
          assert.equal(server.method, method);
          assert.deepEqual(server.infoHash, infoHash);
          if (ia.length > 0) assert.deepEqual(await readExactly(server, ia.length), ia);
          // A megabyte each way, then a small frame: RC4 state stays in step.
          const big = deterministicBytes(1 << 20, 3);
          const [, got] = await Promise.all([client.write(big), readExactly(server, big.length)]);
          assert.deepEqual(got, big);
          const writer = server.writable.getWriter();
          await writer.write(new Uint8Array([7, 7, 7]));
          writer.releaseLock();
          assert.deepEqual(await readExactly(client, 3), new Uint8Array([7, 7, 7]));
        });
      }
    }
  }
});

Deno.test("acceptMse() rejects an unknown SKEY and closes the socket", async () => {
  const [a, b] = await socketPair();
  const served = acceptMse(b, { infoHashes: [new Uint8Array(20).fill(1)] });
  const dialled = connectMse(a, new Uint8Array(20).fill(2), { timeoutMs: 5_000 });
  await assert.rejects(served, HandshakeError);
  // The initiator sees the socket close before any answer.
  await assert.rejects(dialled, HandshakeError);
});

Deno.test("acceptMse() rejects bytes that are no MSE handshake", async () => {
  const [a, b] = await socketPair();
  const served = acceptMse(b, { infoHashes: [new Uint8Array(20)], timeoutMs: 5_000 });
  // 96 bytes of "Ya", then 700 bytes without HASH('req1', S).
  await a.write(new Uint8Array(96).fill(5));
  await readExactly(a, 96); // Yb (padding may follow)
  await a.write(new Uint8Array(700));
  await assert.rejects(served, HandshakeError);
  a.close();
});

Deno.test("acceptMse() times out on a silent peer", async () => {
  const [a, b] = await socketPair();
  await assert.rejects(
    acceptMse(b, { infoHashes: [new Uint8Array(20)], timeoutMs: 100 }),
    (error: unknown) => error instanceof HandshakeError && /within 100 ms/.test(error.message),
  );
  a.close();
});

Deno.test("MseConn passes peeked bytes through in plaintext", async () => {
  const [a, b] = await socketPair();
  using conn = new MseConn(b, { prefix: new Uint8Array([1, 2, 3]) });
  assert.equal(conn.method, "plaintext");
  await a.write(new Uint8Array([4]));
  assert.deepEqual(await readExactly(conn, 4), new Uint8Array([1, 2, 3, 4]));
  await conn.write(new Uint8Array([5]));
  assert.deepEqual(await readExactly(a, 1), new Uint8Array([5]));
  a.close();
});

/** Dials the listener with MSE (IA = our BitTorrent handshake) and wraps it as a PeerConnection. */
async function dialEncrypted(
  port: number,
  infoHash: Uint8Array,
  provide: number,
): Promise<{ peer: PeerConnection; method: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const ours = encodeHandshake({ infoHash, peerId: generatePeerId() });
  const mse = await connectMse(conn, infoHash, { provide, initialPayload: ours });
  const remote = decodeHandshake(await readExactly(mse, 68));
  assert.deepEqual(remote.infoHash, infoHash);
  return { peer: new PeerConnection(mse, { infoHash, remote }), method: mse.method };
}

Deno.test("PeerListener accepts MSE and plaintext handshakes", async (t) => {
  const errors: unknown[] = [];
  await using listener = PeerListener.listen({
    hostname: "127.0.0.1",
    onError: (error) => errors.push(error),
  });
  const infoHash = new Uint8Array(20).fill(0x11);
  const incoming: PeerConnection[] = [];
  const arrived = () => Promise.withResolvers<PeerConnection>();
  let next = arrived();
  listener.register(infoHash, (conn) => {
    incoming.push(conn);
    next.resolve(conn);
  });
  for (const provide of [CRYPTO_PLAINTEXT | CRYPTO_RC4, CRYPTO_RC4]) {
    await t.step(`MSE, crypto_provide ${provide}`, async () => {
      next = arrived();
      const { peer, method } = await dialEncrypted(listener.port, infoHash, provide);
      await using client = peer;
      await using server = await next.promise;
      assert.equal(method, provide === CRYPTO_RC4 ? "rc4" : "plaintext");
      assert.deepEqual(client.remotePeerId, listener.peerId);
      await client.send({ type: "have", index: 3 });
      const reader = server.messages.getReader();
      assert.deepEqual((await reader.read()).value, { type: "have", index: 3 });
      reader.releaseLock();
    });
  }
  await t.step("plaintext still works", async () => {
    next = arrived();
    await using client = await PeerConnection.connect(
      { host: "127.0.0.1", port: listener.port },
      { infoHash, peerId: generatePeerId() },
    );
    await using server = await next.promise;
    await server.send({ type: "have", index: 1 });
    const reader = client.messages.getReader();
    assert.deepEqual((await reader.read()).value, { type: "have", index: 1 });
    reader.releaseLock();
  });
  await t.step("MSE for an unregistered info hash is refused", async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
    await assert.rejects(connectMse(conn, new Uint8Array(20).fill(0x22)), HandshakeError);
    for (let i = 0; i < 50 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof HandshakeError);
  });
  assert.equal(incoming.length, 3);
});

Deno.test("serveTorrent() serves a whole download to an MSE peer", async (t) => {
  const data = deterministicBytes(300_000, 11);
  const { metainfo } = await createTorrent({ name: "mse.bin", data }, { pieceLength: 32768 });
  const storage = new MemoryStorage(data.length);
  await storage.write(0, data);
  await using server = await serveTorrent({ metainfo, storage, hostname: "127.0.0.1" });
  for (const provide of [CRYPTO_PLAINTEXT | CRYPTO_RC4, CRYPTO_RC4]) {
    await t.step(`crypto_provide ${provide}`, async () => {
      const { peer } = await dialEncrypted(server.port, metainfo.infoHash, provide);
      await using client = peer;
      const received = new Uint8Array(data.length);
      let got = 0;
      const reader = client.messages.getReader();
      await client.send({ type: "interested" });
      let unchoked = false;
      while (!unchoked) {
        const { value, done } = await reader.read();
        assert.ok(!done, "seeder closed before unchoking");
        unchoked = value.type === "unchoke";
      }
      const requests: PeerMessage[] = [];
      for (let begin = 0; begin < data.length; begin += 16384) {
        const index = Math.floor(begin / 32768);
        requests.push({
          type: "request",
          index,
          begin: begin - index * 32768,
          length: Math.min(16384, data.length - begin),
        });
      }
      await client.send(requests);
      while (got < data.length) {
        const { value, done } = await reader.read();
        assert.ok(!done, `seeder closed after ${got} bytes`);
        if (value.type !== "piece") continue;
        received.set(value.block, value.index * 32768 + value.begin);
        got += value.block.length;
      }
      reader.releaseLock();
      assert.deepEqual(received, data);
    });
  }
});
