/**
 * Benchmarks of the peer wire framing layer.
 *
 * - `deno bench tests/bench/framing_bench.ts`: per-iteration numbers.
 * - `deno run -A tests/bench/framing_bench.ts [MiB]`: one throughput run of
 *   the decoder stream over 1 GiB (or `MiB`) of 16 KiB `piece` messages
 *   delivered in 64 KiB chunks, printed in GB/s; then 256 MiB of the same
 *   through two `PeerConnection`s over loopback in this one process.
 *
 * @module
 */

import { PeerConnection } from "../../lib/peer/connection.ts";
import { encodeMessages, type PeerMessage } from "../../lib/peer/message.ts";
import { PeerMessageDecoderStream, PeerMessageSplitter } from "../../lib/peer/message_streams.ts";

const BLOCK_LENGTH = 16 * 1024;
const CHUNK_LENGTH = 64 * 1024;

/** 64 MiB of back-to-back 16 KiB piece frames, as 64 KiB chunk views. */
function pieceChunks(blocks = 4096): Uint8Array[] {
  const block = new Uint8Array(BLOCK_LENGTH).fill(0xab);
  const messages: PeerMessage[] = [];
  for (let i = 0; i < blocks; i++) {
    messages.push({ type: "piece", index: i >>> 4, begin: (i & 15) * BLOCK_LENGTH, block });
  }
  const bytes = encodeMessages(messages);
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length; offset += CHUNK_LENGTH) {
    chunks.push(bytes.subarray(offset, offset + CHUNK_LENGTH));
  }
  return chunks;
}

/** Feeds `rounds` passes over `chunks` through the decoder stream; returns block bytes seen. */
async function decodeStream(chunks: Uint8Array[], rounds: number): Promise<number> {
  let index = 0;
  let round = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (index === chunks.length) {
        index = 0;
        if (++round === rounds) return controller.close();
      }
      controller.enqueue(chunks[index++]!);
    },
  }, { highWaterMark: 0 });
  let blockBytes = 0;
  for await (const message of source.pipeThrough(new PeerMessageDecoderStream())) {
    if (message.type === "piece") blockBytes += message.block.length;
  }
  return blockBytes;
}

/** Sends `blocks` 16 KiB pieces from one PeerConnection to another over loopback; returns seconds. */
async function loopbackSeconds(blocks: number): Promise<number> {
  const infoHash = new Uint8Array(20);
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = listener.accept().then((conn) =>
    PeerConnection.accept(conn, { peerId: new Uint8Array(20), lookup: () => true })
  );
  await using client = await PeerConnection.connect(
    { host: "127.0.0.1", port: listener.addr.port },
    { infoHash, peerId: new Uint8Array(20).fill(1) },
  );
  await using server = await serving;
  const block = new Uint8Array(BLOCK_LENGTH).fill(0xab);
  const start = performance.now();
  const receiving = (async () => {
    let received = 0;
    const reader = client.messages.getReader();
    while (received < blocks) {
      const { value } = await reader.read();
      if (value?.type === "piece") received++;
    }
    reader.releaseLock();
  })();
  for (let i = 0; i < blocks; i += 4) {
    const batch: PeerMessage[] = [];
    for (let j = i; j < i + 4; j++) batch.push({ type: "piece", index: j >>> 4, begin: 0, block });
    await server.send(batch);
  }
  await receiving;
  return (performance.now() - start) / 1000;
}

function frameBytes(chunks: Uint8Array[]): number {
  return chunks.reduce((sum, chunk) => sum + chunk.length, 0);
}

if (import.meta.main) {
  const mebibytes = Number(Deno.args[0] ?? 1024);
  const chunks = pieceChunks();
  const rounds = Math.max(1, Math.round(mebibytes / 64));
  await decodeStream(chunks, 2); // warm up
  const start = performance.now();
  const blockBytes = await decodeStream(chunks, rounds);
  const seconds = (performance.now() - start) / 1000;
  const total = frameBytes(chunks) * rounds;
  console.log(
    `PeerMessageDecoderStream: ${(total / 2 ** 20).toFixed(0)} MiB of 16 KiB piece frames in ` +
      `64 KiB chunks in ${seconds.toFixed(3)} s: ${(total / seconds / 1e9).toFixed(2)} GB/s ` +
      `(${blockBytes / BLOCK_LENGTH} blocks)`,
  );
  const blocks = 16384;
  const loopback = await loopbackSeconds(blocks);
  console.log(
    `PeerConnection over loopback (one process): ${blocks * BLOCK_LENGTH / 2 ** 20} MiB of ` +
      `16 KiB pieces sent 4 per write in ${loopback.toFixed(3)} s: ` +
      `${(blocks * BLOCK_LENGTH / loopback / 1e9).toFixed(2)} GB/s`,
  );
} else {
  const chunks = pieceChunks();
  const total = frameBytes(chunks);

  Deno.bench({
    name: "PeerMessageDecoderStream, 64 MiB of 16 KiB pieces in 64 KiB chunks",
    group: "decode",
    baseline: true,
    async fn() {
      const blockBytes = await decodeStream(chunks, 1);
      if (blockBytes !== 4096 * BLOCK_LENGTH) throw new Error(`Decoded ${blockBytes} block bytes`);
    },
  });

  Deno.bench({
    name: "PeerMessageSplitter.push (no streams), same input",
    group: "decode",
    fn() {
      const splitter = new PeerMessageSplitter();
      let count = 0;
      const sink = { enqueue: () => count++ };
      for (const chunk of chunks) splitter.push(chunk, sink);
      if (count !== 4096) throw new Error(`Decoded ${count} messages of ${total} bytes`);
    },
  });

  const block = new Uint8Array(BLOCK_LENGTH);
  const batch: PeerMessage[] = Array.from({ length: 4 }, (_, i) => ({
    type: "piece",
    index: 0,
    begin: i * BLOCK_LENGTH,
    block,
  }));
  Deno.bench({
    name: "encodeMessages, 4 x 16 KiB pieces into one buffer",
    group: "encode",
    fn() {
      encodeMessages(batch);
    },
  });
}
