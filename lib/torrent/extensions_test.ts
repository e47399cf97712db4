import assert from "node:assert/strict";
import { decodeExtensionHandshake, encodeExtensionHandshake } from "../peer/extension.ts";
import { decodeMetadataMessage, encodeMetadataMessage } from "../peer/ut_metadata.ts";
import { SessionExtensions } from "./extensions.ts";

const INFO = new Uint8Array(20_000).map((_, i) => i % 251); // two metadata pieces

function request(piece: number): Uint8Array {
  return encodeMetadataMessage({ type: "request", piece });
}

function answer(extensions: SessionExtensions, piece: number) {
  const reply = extensions.receive(1, request(piece)).replies[0];
  assert.ok(reply?.type === "extended");
  assert.equal(reply.id, 7, "sent with the peer's id");
  return decodeMetadataMessage(reply.payload);
}

Deno.test("SessionExtensions.handshake() announces ut_metadata, ut_pex, size, v, reqq, p", () => {
  const ours = new SessionExtensions({ infoBytes: INFO, port: 6881, clientName: "x 1", reqq: 250 });
  const hello = ours.handshake();
  assert.ok(hello.type === "extended" && hello.id === 0);
  assert.deepEqual(decodeExtensionHandshake(hello.payload), {
    m: { ut_metadata: 1, ut_pex: 2 },
    v: "x 1",
    p: 6881,
    reqq: 250,
    metadataSize: INFO.length,
  });
  const none = new SessionExtensions();
  assert.ok(none.handshake().type === "extended");
  const payload = (none.handshake() as { payload: Uint8Array }).payload;
  assert.equal(decodeExtensionHandshake(payload).metadataSize, undefined, "no metadata yet");
});

Deno.test("SessionExtensions.receive() serves metadata pieces and rejects the rest", async (t) => {
  const ours = new SessionExtensions({ infoBytes: INFO });
  const handshake = ours.receive(0, encodeExtensionHandshake({ m: { ut_metadata: 7 }, reqq: 9 }));
  assert.equal(handshake.handshake?.reqq, 9);
  assert.equal(ours.remoteHandshake?.m.ut_metadata, 7);

  await t.step("data for each piece", () => {
    const first = answer(ours, 0);
    const second = answer(ours, 1);
    assert.ok(first.type === "data" && second.type === "data");
    assert.deepEqual(first.data, INFO.subarray(0, 16384));
    assert.deepEqual(second.data, INFO.subarray(16384));
    assert.equal(second.totalSize, INFO.length);
  });
  await t.step("a reject past the end, not a closed session", () => {
    assert.deepEqual(answer(ours, 2), { type: "reject", piece: 2 });
  });
  await t.step("rejects once a peer asked too often", () => {
    let rejected = 0;
    for (let i = 0; i < 40; i++) if (answer(ours, 0).type === "reject") rejected++;
    assert.ok(rejected > 0 && rejected < 40, `rejected ${rejected}`);
  });
});

Deno.test("SessionExtensions.receive() names other extensions and ignores unknown ids", () => {
  const ours = new SessionExtensions();
  ours.receive(0, encodeExtensionHandshake({ m: { ut_metadata: 7, ut_pex: 3 } }));
  assert.deepEqual(ours.receive(2, new Uint8Array([0x64, 0x65])), { replies: [], name: "ut_pex" });
  assert.deepEqual(ours.receive(99, new Uint8Array(0)), { replies: [] });
  // Without metadata, every request is rejected.
  const reply = ours.receive(1, request(0)).replies[0];
  assert.ok(reply?.type === "extended");
  assert.deepEqual(decodeMetadataMessage(reply.payload), { type: "reject", piece: 0 });
  // Data from the peer (a metadata fetch) goes to the hooks: no reply.
  const data = encodeMetadataMessage({
    type: "data",
    piece: 0,
    totalSize: 3,
    data: INFO.subarray(0, 3),
  });
  assert.deepEqual(ours.receive(1, data), { replies: [], name: "ut_metadata" });
  assert.deepEqual(ours.message("ut_pex", new Uint8Array([1])), {
    type: "extended",
    id: 3,
    payload: new Uint8Array([1]),
  });
  assert.equal(ours.message("lt_donthave", new Uint8Array(0)), undefined);
});
