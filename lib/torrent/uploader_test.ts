import assert from "node:assert/strict";
import { decodeMessage, type PeerMessage } from "../peer/message.ts";
import { Uploader, type UploaderOptions } from "./uploader.ts";

const KIB = 1024;

/** Splits a write into its messages (4-byte length prefix, then the payload). */
function decodeFrames(bytes: Uint8Array): PeerMessage[] {
  const messages: PeerMessage[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < bytes.length;) {
    const length = view.getUint32(at);
    messages.push(decodeMessage(bytes.slice(at + 4, at + 4 + length)));
    at += 4 + length;
  }
  return messages;
}

/** A torrent of `totalLength` bytes where byte `i` is `i % 251`, read from memory. */
function fixture(
  pieceLength: number,
  totalLength: number,
  overrides: Partial<UploaderOptions> = {},
) {
  const data = new Uint8Array(totalLength).map((_, i) => i % 251);
  const reads: [number, number, number][] = [];
  const writes: PeerMessage[][] = [];
  const errors: unknown[] = [];
  const uploader = new Uploader({
    pieceLength,
    totalLength,
    has: () => true,
    read: (index, begin, length) => {
      reads.push([index, begin, length]);
      const at = index * pieceLength + begin;
      return Promise.resolve(data.slice(at, at + length));
    },
    write: (frames) => {
      writes.push(decodeFrames(frames));
      return Promise.resolve();
    },
    onError: (error) => errors.push(error),
    ...overrides,
  });
  return { data, reads, writes, errors, uploader };
}

function blocks(writes: PeerMessage[][]): string[][] {
  return writes.map((w) => w.map((m) => m.type === "piece" ? `${m.index}:${m.begin}` : m.type));
}

Deno.test("Uploader serves the queued blocks of one span in one read and one write", async () => {
  // Piece 0 is missing: the span [0, 600 KiB) is clipped to pieces 1 and 2.
  const { data, reads, writes, uploader } = fixture(256 * KIB, 600 * KIB, {
    has: (index) => index !== 0,
  });
  for (let begin = 0; begin < 64 * KIB; begin += 16 * KIB) {
    assert.equal(uploader.add({ index: 1, begin, length: 16 * KIB }), true);
  }
  await uploader.idle();
  assert.deepEqual(reads, [[1, 0, 344 * KIB]]);
  assert.deepEqual(blocks(writes), [["1:0", "1:16384", "1:32768", "1:49152"]]);
  const last = writes[0]![3]!;
  assert.ok(last.type === "piece");
  const at = 256 * KIB + 48 * KIB;
  assert.deepEqual(last.block, data.subarray(at, at + 16 * KIB));
  assert.equal(uploader.uploaded, 64 * KIB);
});

Deno.test("Uploader reads the short last piece and unaligned blocks exactly", async (t) => {
  await t.step("last piece", async () => {
    const { reads, writes, uploader } = fixture(256 * KIB, 600 * KIB, {
      has: (index) => index === 2,
    });
    uploader.add({ index: 2, begin: 64 * KIB, length: 16 * KIB });
    await uploader.idle();
    assert.deepEqual(reads, [[2, 0, 88 * KIB]]);
    assert.deepEqual(blocks(writes), [["2:65536"]]);
  });
  await t.step("block across a span boundary", async () => {
    const { data, reads, writes, uploader } = fixture(2048 * KIB, 2048 * KIB);
    uploader.add({ index: 0, begin: 1024 * KIB - 100, length: 1000 });
    await uploader.idle();
    assert.deepEqual(reads, [[0, 1024 * KIB - 100, 1000]]);
    const message = writes[0]![0]!;
    assert.ok(message.type === "piece");
    assert.deepEqual(message.block, data.subarray(1024 * KIB - 100, 1024 * KIB + 900));
  });
});

Deno.test("Uploader keeps served spans for blocks requested again", async () => {
  const { reads, uploader } = fixture(64 * KIB, 256 * KIB);
  uploader.add({ index: 0, begin: 0, length: 16 * KIB });
  await uploader.idle();
  uploader.add({ index: 3, begin: 16 * KIB, length: 16 * KIB });
  await uploader.idle();
  assert.deepEqual(reads, [[0, 0, 256 * KIB]]);
});

Deno.test("Uploader writes a block requested again and again in batches no larger than a span", async () => {
  // A 64 KiB torrent: a span (and a send buffer) holds four blocks and their headers.
  const { writes, uploader } = fixture(16 * KIB, 64 * KIB);
  for (let i = 0; i < 10; i++) uploader.add({ index: 1, begin: 0, length: 16 * KIB });
  await uploader.idle();
  assert.deepEqual(writes.map((w) => w.length), [4, 4, 2]);
  assert.ok(writes.flat().every((m) => m.type === "piece" && m.index === 1 && m.begin === 0));
  assert.equal(uploader.uploaded, 10 * 16 * KIB);
});

Deno.test("Uploader.cancel() and clear() drop queued requests", async () => {
  const { writes, uploader } = fixture(16 * KIB, 64 * KIB);
  // Serving starts after a read settles: the requests are still queued.
  uploader.add({ index: 0, begin: 0, length: 16 * KIB });
  uploader.add({ index: 1, begin: 0, length: 16 * KIB });
  uploader.add({ index: 2, begin: 0, length: 16 * KIB });
  assert.equal(uploader.cancel({ index: 1, begin: 0, length: 16 * KIB }), true);
  assert.equal(uploader.cancel({ index: 1, begin: 0, length: 16 * KIB }), false);
  assert.equal(uploader.queued, 2);
  await uploader.idle();
  assert.deepEqual(blocks(writes), [["0:0", "2:0"]]);

  uploader.add({ index: 3, begin: 0, length: 16 * KIB });
  uploader.add({ index: 3, begin: 0, length: 100 });
  assert.deepEqual(uploader.clear().map((r) => r.length), [16 * KIB, 100]);
  await uploader.idle();
  assert.equal(writes.length, 1);
});

Deno.test("Uploader.add() refuses requests beyond maxQueued and after close()", () => {
  const { uploader } = fixture(16 * KIB, 64 * KIB, { maxQueued: 2 });
  assert.equal(uploader.add({ index: 0, begin: 0, length: 1 }), true);
  assert.equal(uploader.add({ index: 0, begin: 1, length: 1 }), true);
  assert.equal(uploader.add({ index: 0, begin: 2, length: 1 }), false);
  uploader.close();
  assert.equal(uploader.queued, 0);
  assert.equal(uploader.add({ index: 0, begin: 0, length: 1 }), false);
});

Deno.test("Uploader keeps writes in flight without awaiting each one", async () => {
  const pending: PromiseWithResolvers<void>[] = [];
  const { uploader } = fixture(256 * KIB, 4096 * KIB, {
    write: () => {
      const write = Promise.withResolvers<void>();
      pending.push(write);
      return write.promise;
    },
  });
  for (let index = 0; index < 16; index++) {
    for (let begin = 0; begin < 256 * KIB; begin += 16 * KIB) {
      uploader.add({ index, begin, length: 16 * KIB });
    }
  }
  // Let reads settle: 1 MiB writes go out until more than 2 MiB waits on the socket.
  for (let i = 0; i < 20; i++) await Promise.resolve();
  assert.equal(pending.length, 3);
  assert.equal(uploader.uploaded, 0);
  while (pending.length > 0) {
    pending.shift()!.resolve();
    for (let i = 0; i < 20; i++) await Promise.resolve();
  }
  await uploader.idle();
  assert.equal(uploader.uploaded, 4096 * KIB);
});

Deno.test("Uploader reports a failed read or write once and stops", async (t) => {
  await t.step("read", async () => {
    const failure = new Error("disk gone");
    const { writes, errors, uploader } = fixture(16 * KIB, 64 * KIB, {
      read: () => Promise.reject(failure),
    });
    uploader.add({ index: 0, begin: 0, length: 16 * KIB });
    uploader.add({ index: 1, begin: 0, length: 16 * KIB });
    await uploader.idle();
    assert.deepEqual(errors, [failure]);
    assert.equal(writes.length, 0);
    assert.equal(uploader.add({ index: 0, begin: 0, length: 1 }), false);
  });
  await t.step("write", async () => {
    const failure = new Error("connection reset");
    const { errors, uploader } = fixture(16 * KIB, 64 * KIB, {
      write: () => Promise.reject(failure),
    });
    uploader.add({ index: 0, begin: 0, length: 16 * KIB });
    uploader.add({ index: 1, begin: 0, length: 16 * KIB });
    await uploader.idle();
    assert.deepEqual(errors, [failure]);
    assert.equal(uploader.uploaded, 0);
  });
});

Deno.test("Uploader reuses its span and send buffers and serves the right bytes", async () => {
  const pieceLength = 256 * KIB;
  const totalLength = 64 * pieceLength;
  const data = new Uint8Array(totalLength).map((_, i) => (i * 7) % 253);
  const spanBuffers = new Set<ArrayBufferLike>();
  const sendBuffers = new Set<ArrayBufferLike>();
  const served = new Uint8Array(totalLength);
  const uploader = new Uploader({
    pieceLength,
    totalLength,
    has: () => true,
    read: () => Promise.reject(new Error("readInto is given")),
    readInto: async (index, begin, target) => {
      spanBuffers.add(target.buffer);
      await Promise.resolve();
      const at = index * pieceLength + begin;
      target.set(data.subarray(at, at + target.length));
    },
    write: async (frames) => {
      sendBuffers.add(frames.buffer);
      for (const message of decodeFrames(frames)) {
        assert.ok(message.type === "piece");
        served.set(message.block, message.index * pieceLength + message.begin);
      }
      await Promise.resolve();
    },
    onError: (error) => {
      throw error;
    },
  });
  // 16 spans of 1 MiB, asked for 4 at a time.
  for (let index = 0; index < 64; index++) {
    for (let begin = 0; begin < pieceLength; begin += 16 * KIB) {
      uploader.add({ index, begin, length: 16 * KIB });
    }
    if (index % 16 === 15) await uploader.idle();
  }
  await uploader.idle();
  assert.deepEqual(served, data);
  assert.ok(spanBuffers.size <= 10, `${spanBuffers.size} span buffers for 16 spans`);
  assert.ok(sendBuffers.size <= 4, `${sendBuffers.size} send buffers for 16 writes`);
});
