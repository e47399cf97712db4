import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { MemoryStorage } from "../storage/mod.ts";
import { BLOCK_SIZE } from "../piece/mod.ts";
import { PieceBuffer } from "./piece_buffer.ts";

const PIECE = 2 * BLOCK_SIZE;

/** Content of `pieceCount` pieces (the last `lastLength` bytes long) and their hashes. */
function content(pieceCount: number, lastLength = PIECE) {
  const totalLength = (pieceCount - 1) * PIECE + lastLength;
  const bytes = new Uint8Array(totalLength);
  for (let i = 0; i < totalLength; i++) bytes[i] = (i * 31 + (i >> 14)) & 0xff;
  const pieceHashes = new Uint8Array(pieceCount * 20);
  for (let p = 0; p < pieceCount; p++) {
    const piece = bytes.subarray(p * PIECE, Math.min(totalLength, (p + 1) * PIECE));
    pieceHashes.set(createHash("sha1").update(piece).digest(), p * 20);
  }
  return { bytes, geometry: { pieceLength: PIECE, totalLength, pieceCount, pieceHashes } };
}

function blocksOf(bytes: Uint8Array, index: number, totalLength: number) {
  const start = index * PIECE;
  const end = Math.min(totalLength, start + PIECE);
  const blocks: { begin: number; block: Uint8Array }[] = [];
  for (let at = start; at < end; at += BLOCK_SIZE) {
    blocks.push({ begin: at - start, block: bytes.subarray(at, Math.min(end, at + BLOCK_SIZE)) });
  }
  return blocks;
}

Deno.test("PieceBuffer reuses finished pieces' buffers without mixing their data", async () => {
  // One piece of room at a time: every piece after the first reuses the same record.
  const { bytes, geometry } = content(6, BLOCK_SIZE + 100);
  const storage = new MemoryStorage(geometry.totalLength);
  const verified: number[] = [];
  const buffer = new PieceBuffer<string>(geometry, {
    storage,
    maxBufferedBytes: PIECE,
    onVerified: (index) => verified.push(index),
    onFailed: (index) => assert.fail(`piece ${index} failed`),
    onError: (_index, error) => assert.fail(String(error)),
  });
  // Out of order, blocks reversed, the short last piece in the middle.
  for (const index of [3, 5, 0, 4, 1, 2]) {
    buffer.begin(index);
    assert.ok(buffer.full || index === 5, `piece ${index} reserves the whole cap`);
    for (const { begin, block } of blocksOf(bytes, index, geometry.totalLength).reverse()) {
      assert.ok(buffer.add(index, begin, block, "peer"));
    }
    await buffer.settled();
    assert.equal(buffer.has(index), false);
    assert.equal(buffer.bufferedBytes, 0);
  }
  assert.deepEqual(verified, [3, 5, 0, 4, 1, 2]);
  assert.deepEqual(storage.bytes, bytes);
});

Deno.test("PieceBuffer drops a corrupt piece's blocks and verifies the re-sent ones", async () => {
  const { bytes, geometry } = content(2);
  const storage = new MemoryStorage(geometry.totalLength);
  const failed: [number, readonly string[]][] = [];
  const verified: [number, readonly string[]][] = [];
  const buffer = new PieceBuffer<string>(geometry, {
    storage,
    onVerified: (index, peers) => verified.push([index, [...peers]]),
    onFailed: (index, peers) => failed.push([index, [...peers]]),
    onError: (_index, error) => assert.fail(String(error)),
  });
  const [first, second] = blocksOf(bytes, 1, geometry.totalLength);
  buffer.begin(1);
  buffer.add(1, first!.begin, first!.block, "good");
  buffer.add(1, second!.begin, new Uint8Array(second!.block.length), "liar");
  await buffer.settled();
  assert.deepEqual(failed, [[1, ["good", "liar"]]]);
  assert.ok(buffer.has(1), "a failed piece stays, empty, to be fetched again");
  // A duplicate of a block already held is refused; after the failure both are wanted again.
  assert.ok(buffer.add(1, second!.begin, second!.block, "good"));
  assert.equal(buffer.add(1, second!.begin, second!.block, "good"), false);
  assert.ok(buffer.add(1, first!.begin, first!.block, "good"));
  await buffer.settled();
  assert.deepEqual(verified, [[1, ["good"]]]);
  assert.deepEqual(storage.bytes.subarray(PIECE), bytes.subarray(PIECE));
});

Deno.test("PieceBuffer.settled waits for every write under way", async () => {
  const { bytes, geometry } = content(3);
  const memory = new MemoryStorage(geometry.totalLength);
  const release = Promise.withResolvers<void>();
  let writes = 0;
  const storage = {
    totalLength: geometry.totalLength,
    read: (offset: number, length: number) => memory.read(offset, length),
    close: () => memory.close(),
    async write(offset: number, data: Uint8Array) {
      await release.promise;
      await memory.write(offset, data);
      writes++;
    },
  };
  const buffer = new PieceBuffer<string>(geometry, {
    storage,
    onVerified: () => {},
    onFailed: (index) => assert.fail(`piece ${index} failed`),
    onError: (_index, error) => assert.fail(String(error)),
  });
  for (let index = 0; index < 3; index++) {
    buffer.begin(index);
    for (const { begin, block } of blocksOf(bytes, index, geometry.totalLength)) {
      buffer.add(index, begin, block, "peer");
    }
  }
  let settled = false;
  const waiting = buffer.settled().then(() => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(settled, false);
  release.resolve();
  await waiting;
  assert.equal(writes, 3);
  assert.deepEqual(memory.bytes, bytes);
  // Nothing under way: resolves at once.
  await buffer.settled();
});
