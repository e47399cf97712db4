import assert from "node:assert/strict";
import { PeerProtocolError } from "./errors.ts";
import { encodeMessages, type PeerMessage } from "./message.ts";
import {
  DEFAULT_MAX_MESSAGE_LENGTH,
  PeerMessageDecoderStream,
  PeerMessageEncoderStream,
  PeerMessageSplitter,
} from "./message_streams.ts";

// Deno 2.9 turns the sanitizers off by default: every test here must close what it opens.
Deno.test.sanitizer({ ops: true, resources: true });

function hex(...fields: string[]): Uint8Array {
  const text = fields.join("");
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

function decodeChunks(
  chunks: Uint8Array[],
  options: { maxMessageLength?: number } = {},
): Promise<PeerMessage[]> {
  return Array.fromAsync(
    ReadableStream.from(chunks).pipeThrough(new PeerMessageDecoderStream(options)),
  );
}

/** Splits `bytes` at the given offsets. */
function splitAt(bytes: Uint8Array, ...offsets: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const offset of [...offsets, bytes.length]) {
    chunks.push(bytes.slice(start, offset));
    start = offset;
  }
  return chunks;
}

/** A stream of several messages, keep-alives included. */
const STREAM = hex(
  "00000000", // keep-alive
  "00000003", // length 3
  "05", // id 5 = bitfield
  "ff80", // bitfield
  "00000001", // length 1
  "01", // id 1 = unchoke
  "0000000c", // length 12
  "07", // id 7 = piece
  "00000000", // piece index 0
  "00004000", // begin 16384
  "010203", // block
  "00000000", // keep-alive
  "00000000", // keep-alive
  "00000005", // length 5
  "04", // id 4 = have
  "00000009", // piece index 9
);

const STREAM_MESSAGES: PeerMessage[] = [
  { type: "keep-alive" },
  { type: "bitfield", bitfield: hex("ff80") },
  { type: "unchoke" },
  { type: "piece", index: 0, begin: 16384, block: hex("010203") },
  { type: "keep-alive" },
  { type: "keep-alive" },
  { type: "have", index: 9 },
];

Deno.test("PeerMessageDecoderStream decodes whatever the chunk boundaries", async (t) => {
  await t.step("one chunk", async () => {
    assert.deepEqual(await decodeChunks([STREAM]), STREAM_MESSAGES);
  });
  await t.step("1-byte chunks", async () => {
    const chunks = Array.from(STREAM, (byte) => new Uint8Array([byte]));
    assert.deepEqual(await decodeChunks(chunks), STREAM_MESSAGES);
  });
  await t.step("every two-way split", async () => {
    for (let offset = 0; offset <= STREAM.length; offset++) {
      assert.deepEqual(
        await decodeChunks(splitAt(STREAM, offset)),
        STREAM_MESSAGES,
        `split at ${offset}`,
      );
    }
  });
  await t.step("length prefix split across three chunks", async () => {
    // The bitfield frame's prefix starts at 4: split it 1 + 2 + 1.
    assert.deepEqual(await decodeChunks(splitAt(STREAM, 5, 7)), STREAM_MESSAGES);
  });
  await t.step("prefix complete but body in the next chunk", async () => {
    assert.deepEqual(await decodeChunks(splitAt(STREAM, 8)), STREAM_MESSAGES);
  });
  await t.step("empty chunks in between", async () => {
    const chunks = splitAt(STREAM, 0, 3, 3, 20, 20);
    assert.deepEqual(await decodeChunks(chunks), STREAM_MESSAGES);
  });
  await t.step("random splits", async () => {
    for (let round = 0; round < 50; round++) {
      const offsets = Array.from({ length: 5 }, () => Math.floor(Math.random() * STREAM.length))
        .sort((a, b) => a - b);
      assert.deepEqual(
        await decodeChunks(splitAt(STREAM, ...offsets)),
        STREAM_MESSAGES,
        `${offsets}`,
      );
    }
  });
});

Deno.test("PeerMessageDecoderStream yields views for frames inside one chunk", async () => {
  const block = new Uint8Array(16384).fill(0x5a);
  const bytes = encodeMessages([
    { type: "piece", index: 1, begin: 0, block },
    { type: "piece", index: 1, begin: 16384, block },
  ]);
  const [first, second] = await decodeChunks([bytes]);
  assert.equal(first?.type, "piece");
  assert.equal(second?.type, "piece");
  if (first?.type !== "piece" || second?.type !== "piece") return;
  assert.equal(first.block.buffer, bytes.buffer);
  assert.equal(first.block.byteOffset, 13);
  assert.equal(second.block.buffer, bytes.buffer);
  assert.deepEqual(second.block, block);
});

Deno.test("PeerMessageDecoderStream copies a frame that straddles chunks", async () => {
  const bytes = encodeMessages([{ type: "piece", index: 1, begin: 0, block: new Uint8Array(100) }]);
  const chunks = splitAt(bytes, 50);
  const [message] = await decodeChunks(chunks);
  assert.equal(message?.type, "piece");
  if (message?.type !== "piece") return;
  assert.notEqual(message.block.buffer, chunks[0]!.buffer);
  assert.notEqual(message.block.buffer, chunks[1]!.buffer);
  assert.deepEqual(message.block, new Uint8Array(100));
});

Deno.test("PeerMessageDecoderStream rejects oversize frames before allocating", async (t) => {
  await t.step("a 2 GiB length prefix alone errors at once", async () => {
    const decoder = new PeerMessageDecoderStream();
    const writer = decoder.writable.getWriter();
    const reader = decoder.readable.getReader();
    const write = writer.write(hex("7fffffff")); // length 2^31-1, no body
    await assert.rejects(reader.read(), {
      name: "PeerProtocolError",
      message:
        `Cannot decode peer message: frame length 2147483647 exceeds the maximum of ${DEFAULT_MAX_MESSAGE_LENGTH} bytes`,
    });
    await assert.rejects(write, PeerProtocolError);
  });
  await t.step("the limit is inclusive", async () => {
    const frame = hex("00000005", "04", "00000001"); // length 5 | have | index 1
    assert.deepEqual(await decodeChunks([frame], { maxMessageLength: 5 }), [{
      type: "have",
      index: 1,
    }]);
    await assert.rejects(decodeChunks([frame], { maxMessageLength: 4 }), PeerProtocolError);
  });
  await t.step("the default allows a 1 MiB block", async () => {
    const block = new Uint8Array(1024 * 1024);
    const bytes = encodeMessages([{ type: "piece", index: 0, begin: 0, block }]);
    const [message] = await decodeChunks(splitAt(bytes, 65536, 131072));
    assert.equal(message?.type === "piece" && message.block.length, 1024 * 1024);
  });
  await t.step("a bad limit is a RangeError", () => {
    assert.throws(() => new PeerMessageDecoderStream({ maxMessageLength: -1 }), RangeError);
  });
});

Deno.test("PeerMessageDecoderStream errors on input that ends inside a frame", async (t) => {
  await t.step("inside the length prefix", async () => {
    await assert.rejects(decodeChunks([hex("000000")]), {
      name: "PeerProtocolError",
      message:
        "Cannot decode peer message: stream ended inside a length prefix, 3 of 4 bytes received",
    });
  });
  await t.step("inside the body", async () => {
    await assert.rejects(decodeChunks([hex("00000005", "0400")]), {
      name: "PeerProtocolError",
      message: "Cannot decode peer message: stream ended inside a frame, 2 of 5 bytes received",
    });
  });
});

Deno.test("PeerMessageDecoderStream errors on a malformed message", async () => {
  const bytes = hex(
    "00000001", // length 1
    "02", // interested
    "00000004", // length 4
    "04", // id 4 = have
    "000001", // a 3-byte index
  );
  await assert.rejects(decodeChunks([bytes]), {
    name: "PeerProtocolError",
    message: "Cannot decode have message: payload is 3 bytes, expected 4",
  });
});

Deno.test("PeerMessageSplitter reports messages and buffered bytes", () => {
  const messages: PeerMessage[] = [];
  const splitter = new PeerMessageSplitter();
  assert.equal(splitter.push(hex("00000001", "02", "0000"), messages), 1); // interested + half a prefix
  assert.equal(splitter.bufferedBytes, 2);
  assert.equal(splitter.push(hex("0005", "04"), messages), 0); // rest of prefix + id
  assert.equal(splitter.bufferedBytes, 5);
  assert.throws(() => splitter.finish(), PeerProtocolError);
  assert.equal(splitter.push(hex("00000007", "00000000"), messages), 2); // index 7 + keep-alive
  assert.equal(splitter.bufferedBytes, 0);
  splitter.finish();
  assert.deepEqual(messages, [
    { type: "interested" },
    { type: "have", index: 7 },
    { type: "keep-alive" },
  ]);
});

Deno.test("PeerMessageEncoderStream encodes messages and batches arrays into one chunk", async () => {
  const input = ReadableStream.from<PeerMessage | PeerMessage[]>([
    { type: "choke" },
    [],
    [{ type: "have", index: 1 }, { type: "port", port: 6881 }],
  ]);
  const chunks = await Array.fromAsync(input.pipeThrough(new PeerMessageEncoderStream()));
  assert.deepEqual(chunks, [
    hex("00000001", "00"), // choke
    hex(
      "00000005", // length 5
      "04", // have
      "00000001", // piece index 1
      "00000003", // length 3
      "09", // port
      "1ae1", // 6881
    ),
  ]);
});

Deno.test("PeerMessageEncoderStream output decodes back through PeerMessageDecoderStream", async () => {
  const messages: PeerMessage[] = [
    { type: "have-all" },
    { type: "allowed-fast", index: 3 },
    { type: "piece", index: 3, begin: 0, block: new Uint8Array(5000).fill(1) },
    { type: "keep-alive" },
    { type: "extended", id: 1, payload: hex("6465") },
  ];
  const decoded = await Array.fromAsync(
    ReadableStream.from<PeerMessage | PeerMessage[]>([messages[0]!, messages.slice(1)])
      .pipeThrough(new PeerMessageEncoderStream())
      .pipeThrough(new PeerMessageDecoderStream()),
  );
  assert.deepEqual(decoded, messages);
});
