import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { decodeHandshake, encodeHandshake, reservedBits } from "./handshake.ts";
import {
  extensionHandshake,
  fetchMetadata,
  MetadataFetchError,
  metadataResponder,
} from "./metadata_exchange.ts";

const ascii = (text: string) => new TextEncoder().encode(text);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A frame: 4-byte big-endian length, then the payload. */
function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
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

async function readFrame(conn: Deno.Conn): Promise<Uint8Array> {
  const length = new DataView((await readExactly(conn, 4)).buffer).getUint32(0);
  return await readExactly(conn, length);
}

Deno.test("metadataResponder() serves 16 KiB pieces and rejects the rest", () => {
  const info = new Uint8Array(40000).map((_, i) => i & 0xff);
  const respond = metadataResponder(info);
  const last = respond({ type: "request", piece: 2 });
  assert.equal(last?.type, "data");
  if (last?.type === "data") {
    assert.equal(last.totalSize, 40000);
    assert.deepEqual(last.data, info.subarray(32768));
    assert.equal(last.data.buffer, info.buffer); // a view, not a copy
  }
  const first = respond({ type: "request", piece: 0 });
  assert.equal(first?.type === "data" && first.data.length, 16384);
  assert.deepEqual(respond({ type: "request", piece: 3 }), { type: "reject", piece: 3 });
  assert.equal(
    respond({ type: "data", piece: 0, totalSize: 1, data: new Uint8Array(1) }),
    undefined,
  );
  assert.equal(respond({ type: "unknown", msgType: 5 }), undefined);
});

Deno.test("metadataResponder() rejects everything while we have no metadata", () => {
  const respond = metadataResponder(undefined);
  assert.deepEqual(respond({ type: "request", piece: 0 }), { type: "reject", piece: 0 });
});

Deno.test("fetchMetadata() checks its arguments", async () => {
  await assert.rejects(fetchMetadata([], new Uint8Array(19)), TypeError);
  await assert.rejects(fetchMetadata([], new Uint8Array(20), { timeoutMs: 0 }), RangeError);
  await assert.rejects(fetchMetadata([], new Uint8Array(20), { maxConnections: -1 }), RangeError);
  await assert.rejects(
    fetchMetadata([], new Uint8Array(20), { requestTimeoutMs: Number.NaN }),
    RangeError,
  );
  const reason = new Error("already aborted");
  await assert.rejects(
    fetchMetadata([{ host: "127.0.0.1", port: 1 }], new Uint8Array(20), {
      signal: AbortSignal.abort(reason),
    }),
    (error: unknown) => error === reason,
  );
  const empty = await fetchMetadata([], new Uint8Array(20)).catch((error: unknown) => error);
  assert.ok(empty instanceof MetadataFetchError);
  assert.match(empty.message, /no peers to ask/);
});

Deno.test("fetchMetadata() speaks BEP 9 and BEP 10 byte for byte", async () => {
  const info = ascii(
    "d6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:" + "x".repeat(20) + "e",
  );
  const infoHash = new Uint8Array(createHash("sha1").update(info).digest());
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });

  const peer = (async () => {
    using conn = await listener.accept();
    const theirs = decodeHandshake(await readExactly(conn, 68));
    assert.deepEqual(theirs.infoHash, infoHash);
    assert.deepEqual(theirs.reserved, reservedBits({ extensionProtocol: true }));
    await conn.write(encodeHandshake({ infoHash, peerId: new Uint8Array(20).fill(0x50) }));

    // The client's first message: its extension handshake.
    assert.deepEqual(
      await readFrame(conn),
      concat(
        new Uint8Array([20, 0]), // extended, id 0 = handshake
        ascii("d1:md11:ut_metadatai1eee"), // m: ut_metadata = 1
      ),
    );

    // Ours, a metadata request of our own, and noise, written in 1-byte chunks.
    const ours = concat(
      frame(
        concat(
          new Uint8Array([20, 0]),
          ascii(`d1:md11:ut_metadatai9ee13:metadata_sizei${info.length}ee`),
        ),
      ),
      frame(new Uint8Array([4, 0, 0, 0, 1])), // have 1
      frame(concat(new Uint8Array([20, 1]), ascii("d8:msg_typei0e5:piecei0ee"))), // request piece 0
      frame(new Uint8Array([20, 42, 1, 2])), // extended id 42: nobody's
    );
    for (const byte of ours) await conn.write(new Uint8Array([byte]));

    // The client rejects our request (it has no metadata) and asks for piece 0, with our id 9.
    const answers = [text(await readFrame(conn)), text(await readFrame(conn))].sort();
    assert.deepEqual(answers, [
      "\x14\x09d8:msg_typei0e5:piecei0ee", // extended, our id 9: request piece 0
      "\x14\x09d8:msg_typei2e5:piecei0ee", // extended, our id 9: reject piece 0
    ]);
    await conn.write(
      frame(concat(
        new Uint8Array([20, 1]), // extended, the client's ut_metadata id
        ascii(`d8:msg_typei1e5:piecei0e10:total_sizei${info.length}ee`),
        info,
      )),
    );
    // The client hangs up once it has the metadata.
    assert.equal(await conn.read(new Uint8Array(1)), null);
  })();

  const result = await fetchMetadata([{ host: "127.0.0.1", port: listener.addr.port }], infoHash);
  assert.deepEqual(result, info);
  await peer;
});

Deno.test("extensionHandshake() hangs up after the handshakes", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const infoHash = new Uint8Array(20).fill(3);
  const peer = (async () => {
    using conn = await listener.accept();
    await readExactly(conn, 68);
    await conn.write(encodeHandshake({ infoHash, peerId: new Uint8Array(20).fill(0x51) }));
    assert.deepEqual((await readFrame(conn)).subarray(0, 2), new Uint8Array([20, 0]));
    await conn.write(
      frame(concat(new Uint8Array([20, 0]), ascii("d1:md6:ut_pexi4eee"))), // no ut_metadata
    );
    assert.equal(await conn.read(new Uint8Array(1)), null);
  })();
  const result = await extensionHandshake(
    { host: "127.0.0.1", port: listener.addr.port },
    infoHash,
    {
      localHandshake: { m: { ut_metadata: 1, ut_pex: 2 }, v: "test" },
    },
  );
  assert.deepEqual(result.handshake, { m: { ut_pex: 4 } });
  assert.deepEqual(result.peerId, new Uint8Array(20).fill(0x51));
  await peer;
});
