import assert from "node:assert/strict";
import { HashQueue, PieceHashMismatchError, sha1, verifyPiece } from "./verify.ts";

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("sha1() matches known vectors", async () => {
  assert.equal(hex(await sha1(new Uint8Array(0))), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  assert.equal(
    hex(await sha1(new TextEncoder().encode("abc"))),
    "a9993e364706816aba3e25717850c26c9cd0d89d",
  );
});

Deno.test("sha1() hashes only the view, not the whole buffer", async () => {
  const backing = new Uint8Array([9, 9, 0x61, 0x62, 0x63, 9]);
  assert.equal(hex(await sha1(backing.subarray(2, 5))), "a9993e364706816aba3e25717850c26c9cd0d89d");
});

Deno.test("verifyPiece() compares digests", async () => {
  const piece = new Uint8Array([0, 1, 2, 0, 255]);
  const good = await sha1(piece);
  assert.equal(await verifyPiece(piece, good), true);
  const bad = good.slice();
  bad[19]! ^= 1;
  assert.equal(await verifyPiece(piece, bad), false);
  await assert.rejects(() => verifyPiece(piece, new Uint8Array(19)), TypeError);
});

Deno.test("PieceHashMismatchError carries the piece index and cause", () => {
  const cause = new Error("inner");
  const error = new PieceHashMismatchError(3, { cause });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "PieceHashMismatchError");
  assert.equal(error.pieceIndex, 3);
  assert.equal(error.cause, cause);
  assert.equal(error.message, "Cannot verify piece 3: SHA-1 hash mismatch");
});

Deno.test("HashQueue bounds digests in flight", async () => {
  const queue = new HashQueue({ concurrency: 3 });
  const data = new Uint8Array(1 << 16);
  const jobs: Promise<Uint8Array>[] = [];
  let maxInFlight = 0;
  for (let i = 0; i < 10; i++) {
    jobs.push(queue.digest(data));
    maxInFlight = Math.max(maxInFlight, queue.inFlight);
  }
  assert.equal(maxInFlight, 3);
  assert.equal(queue.pending, 7);
  const digests = await Promise.all(jobs);
  const expected = hex(await sha1(data));
  for (const d of digests) assert.equal(hex(d), expected);
  assert.equal(queue.inFlight, 0);
  assert.equal(queue.pending, 0);
  assert.throws(() => new HashQueue({ concurrency: 0 }), RangeError);
});
