import assert from "node:assert/strict";
import { type PieceReader, streamPieces } from "./file_stream.ts";

/** Pieces verified on demand; counts what is read. */
function fakeReader(data: Uint8Array, pieceLength: number) {
  const verified = new Set<number>();
  const waiting = new Map<number, () => void>();
  const state = { bytesRead: 0 };
  const reader: PieceReader = {
    pieceLength,
    totalLength: data.length,
    has: (index) => verified.has(index),
    waitFor: (index, signal) =>
      new Promise((resolve, reject) => {
        waiting.set(index, resolve);
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      }),
    read: (offset, length) => {
      state.bytesRead += length;
      return Promise.resolve(data.slice(offset, offset + length));
    },
  };
  const verify = (index: number) => {
    verified.add(index);
    waiting.get(index)?.();
  };
  return { reader, verify, state };
}

Deno.test("streamPieces() yields the range in order, one piece-bounded chunk at a time", async () => {
  const data = new Uint8Array(100).map((_, i) => i);
  const { reader, verify } = fakeReader(data, 16);
  for (let i = 0; i < 7; i++) verify(i);
  const chunks: number[] = [];
  for await (const chunk of streamPieces(reader, { start: 10, end: 70 })) chunks.push(chunk.length);
  // 10..16, then whole pieces, then 64..70.
  assert.deepEqual(chunks, [6, 16, 16, 16, 6]);
  const bytes = new Uint8Array(
    await new Response(streamPieces(reader, { start: 10, end: 70 })).arrayBuffer(),
  );
  assert.deepEqual(bytes, data.subarray(10, 70));
});

Deno.test("streamPieces() reads no further than one chunk ahead of its reader", async () => {
  const data = new Uint8Array(1000);
  const { reader, verify, state } = fakeReader(data, 100);
  for (let i = 0; i < 10; i++) verify(i);
  const stream = streamPieces(reader, { start: 0, end: 1000 });
  const r = stream.getReader();
  await r.read();
  await new Promise((resolve) => setTimeout(resolve, 10));
  // One chunk taken, one queued (highWaterMark 1): nothing more.
  assert.equal(state.bytesRead, 200);
  await r.cancel();
});

Deno.test("streamPieces() reports its window and clears it at the end, on cancel and on abort", async (t) => {
  const data = new Uint8Array(100);
  await t.step("end", async () => {
    const { reader, verify } = fakeReader(data, 10);
    const windows: number[][] = [];
    const stream = streamPieces(reader, {
      start: 25,
      end: 60,
      readahead: 20,
      onWindow: (pieces) => windows.push([...pieces]),
    });
    const reading = new Response(stream).arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 5));
    // 20 bytes of readahead in 10-byte pieces: the current piece and two more.
    assert.deepEqual(windows[0], [2, 3, 4]);
    for (const index of [5, 4, 3, 2]) verify(index);
    assert.equal((await reading).byteLength, 35);
    assert.deepEqual(windows.at(-1), []);
  });
  await t.step("cancel", async () => {
    const { reader } = fakeReader(data, 10);
    const windows: number[][] = [];
    const stream = streamPieces(reader, {
      start: 0,
      end: 100,
      onWindow: (p) => windows.push([...p]),
    });
    const r = stream.getReader();
    const pending = r.read();
    await new Promise((resolve) => setTimeout(resolve, 5));
    await r.cancel(new Error("gone"));
    assert.deepEqual(await pending, { done: true, value: undefined });
    assert.deepEqual(windows.at(-1), []);
  });
  await t.step("abort", async () => {
    const { reader } = fakeReader(data, 10);
    const controller = new AbortController();
    const windows: number[][] = [];
    const stream = streamPieces(reader, {
      start: 0,
      end: 100,
      signal: controller.signal,
      onWindow: (p) => windows.push([...p]),
    });
    const reading = new Response(stream).arrayBuffer();
    controller.abort(new Error("stop"));
    await assert.rejects(reading, /stop/);
    assert.deepEqual(windows.at(-1), []);
  });
});

Deno.test("streamPieces() rejects ranges outside the torrent", () => {
  const { reader } = fakeReader(new Uint8Array(10), 4);
  assert.throws(() => streamPieces(reader, { start: 0, end: 11 }), RangeError);
  assert.throws(() => streamPieces(reader, { start: 5, end: 4 }), RangeError);
  assert.throws(() => streamPieces(reader, { start: 0.5, end: 4 }), RangeError);
  assert.throws(() => streamPieces(reader, { start: 0, end: 4, readahead: -1 }), RangeError);
});
