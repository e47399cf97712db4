import assert from "node:assert/strict";
import { Bitfield } from "./bitfield.ts";
import { type BlockRequest, PiecePicker } from "./picker.ts";
import { seededRandom } from "../../tests/_helpers/fixtures.ts";

function full(length: number): Bitfield {
  const bits = new Bitfield(length);
  bits.setAll();
  return bits;
}

function bitsOf(length: number, indices: number[]): Bitfield {
  const bits = new Bitfield(length);
  for (const i of indices) bits.set(i);
  return bits;
}

function keys(requests: BlockRequest[]): string[] {
  return requests.map((r) => `${r.index}:${r.begin}:${r.length}`);
}

Deno.test("PiecePicker validates geometry", () => {
  assert.throws(
    () => new PiecePicker({ pieceCount: 3, pieceLength: 10, totalLength: 31 }),
    RangeError,
  );
  assert.throws(
    () => new PiecePicker({ pieceCount: 1, pieceLength: 0, totalLength: 0 }),
    RangeError,
  );
  const picker = new PiecePicker({ pieceCount: 4, pieceLength: 10, totalLength: 31 });
  assert.throws(() => picker.nextRequests(new Bitfield(3), 1), RangeError);
  assert.throws(() => picker.peerHas(4), RangeError);
  assert.throws(() => picker.blockReceived(3, 1), RangeError);
});

Deno.test("PiecePicker picks the rarest piece first", () => {
  // 4 pieces of 2 blocks (block 4 bytes, piece 8), last piece 1 block.
  const picker = new PiecePicker({
    pieceCount: 4,
    pieceLength: 8,
    totalLength: 28,
    blockSize: 4,
    random: seededRandom(1),
    randomFirstPieces: 0,
  });
  const seed = full(4);
  picker.addPeerBitfield(seed);
  picker.addPeerBitfield(bitsOf(4, [0, 1, 3]));
  picker.addPeerBitfield(bitsOf(4, [0, 3]));
  // Availability: piece 0 = 3, 1 = 2, 2 = 1, 3 = 3.
  assert.deepEqual([0, 1, 2, 3].map((i) => picker.availability(i)), [3, 2, 1, 3]);
  assert.deepEqual(keys(picker.nextRequests(seed, 2)), ["2:0:4", "2:4:4"]);
  assert.deepEqual(keys(picker.nextRequests(seed, 2)), ["1:0:4", "1:4:4"]);
  // Then pieces 0 and 3 tie; the last piece is short (one 4-byte block).
  const rest = keys(picker.nextRequests(seed, 10)).sort();
  assert.deepEqual(rest, ["0:0:4", "0:4:4", "3:0:4"]);
  assert.deepEqual(picker.nextRequests(seed, 10), []);
});

Deno.test("PiecePicker breaks ties with the injected RNG", () => {
  function firstPick(seed: number): number {
    const picker = new PiecePicker({
      pieceCount: 64,
      pieceLength: 4,
      totalLength: 256,
      blockSize: 4,
      random: seededRandom(seed),
      randomFirstPieces: 0,
    });
    const all = full(64);
    picker.addPeerBitfield(all);
    return picker.nextRequests(all, 1)[0]!.index;
  }
  assert.equal(firstPick(7), firstPick(7));
  const seen = new Set<number>();
  for (let s = 0; s < 20; s++) seen.add(firstPick(s));
  assert.ok(seen.size > 5, `expected varied picks, got ${[...seen]}`);
});

Deno.test("PiecePicker only requests pieces the peer has", () => {
  const picker = new PiecePicker({
    pieceCount: 3,
    pieceLength: 4,
    totalLength: 12,
    blockSize: 4,
    random: seededRandom(3),
  });
  const peer = bitsOf(3, [1]);
  picker.addPeerBitfield(peer);
  picker.addPeerBitfield(full(3));
  assert.deepEqual(keys(picker.nextRequests(peer, 5)), ["1:0:4"]);
  assert.deepEqual(picker.nextRequests(peer, 5), []);
  assert.equal(picker.isInteresting(peer), true);
  picker.markHave(1);
  assert.equal(picker.isInteresting(peer), false);
});

Deno.test("PiecePicker finishes partially requested pieces first", () => {
  const picker = new PiecePicker({
    pieceCount: 3,
    pieceLength: 12,
    totalLength: 36,
    blockSize: 4,
    random: seededRandom(5),
    randomFirstPieces: 0,
  });
  const a = full(3);
  const b = full(3);
  picker.addPeerBitfield(a);
  picker.addPeerBitfield(b);
  const first = picker.nextRequests(a, 1);
  assert.equal(first.length, 1);
  const index = first[0]!.index;
  // Another peer continues the same piece before opening a new one.
  assert.deepEqual(picker.nextRequests(b, 2).map((r) => r.index), [index, index]);
  const next = picker.nextRequests(b, 1);
  assert.notEqual(next[0]!.index, index);
});

Deno.test("PiecePicker uses random order for the first pieces", () => {
  const picker = new PiecePicker({
    pieceCount: 8,
    pieceLength: 4,
    totalLength: 32,
    blockSize: 4,
    random: () => 0.99, // start near the end
    randomFirstPieces: 1,
  });
  const seed = full(8);
  picker.addPeerBitfield(seed);
  picker.addPeerBitfield(bitsOf(8, [0, 1, 2, 3, 4, 5, 6])); // piece 7 is rarest
  picker.addPeerBitfield(bitsOf(8, [1, 2, 3, 4, 5, 6, 7])); // now piece 0 is rarest
  picker.peerHas(0);
  picker.peerHas(7);
  picker.peerHas(7); // piece 7: 4, piece 0: 3, others 3
  picker.addPeerBitfield(bitsOf(8, [1, 2, 3, 4, 5, 6])); // others 4, piece 0 rarest
  // Random phase: random() = 0.99 starts at piece 7, not the rarest piece 0.
  const random = picker.nextRequests(seed, 1);
  assert.deepEqual(keys(random), ["7:0:4"]);
  picker.blockReceived(7, 0);
  picker.markHave(7);
  // One piece complete: rarest-first from now on.
  assert.deepEqual(keys(picker.nextRequests(seed, 1)), ["0:0:4"]);
});

Deno.test("PiecePicker tracks availability as peers come and go", () => {
  const picker = new PiecePicker({
    pieceCount: 3,
    pieceLength: 4,
    totalLength: 12,
    blockSize: 4,
    random: seededRandom(9),
    randomFirstPieces: 0,
  });
  const a = bitsOf(3, [0, 1]);
  const b = bitsOf(3, [1, 2]);
  picker.addPeerBitfield(a);
  picker.addPeerBitfield(b);
  picker.peerHas(2);
  b.set(0);
  picker.peerHas(0);
  assert.deepEqual([0, 1, 2].map((i) => picker.availability(i)), [2, 2, 2]);
  picker.removePeerBitfield(b);
  assert.deepEqual([0, 1, 2].map((i) => picker.availability(i)), [1, 1, 1]);
  picker.removePeerBitfield(a);
  assert.throws(() => picker.removePeerBitfield(a), RangeError);
  assert.deepEqual([0, 1, 2].map((i) => picker.availability(i)), [0, 0, 1]);
  picker.addPeerHaveAll();
  assert.deepEqual([0, 1, 2].map((i) => picker.availability(i)), [1, 1, 2]);
  // The rarest piece counts the have-all peer: pieces 0 and 1 before 2.
  const picks = picker.nextRequests(full(3), 2).map((r) => r.index).sort();
  assert.deepEqual(picks, [0, 1]);
  picker.removePeerHaveAll();
  assert.throws(() => picker.removePeerHaveAll(), RangeError);
});

Deno.test("PiecePicker re-requests cancelled blocks", () => {
  const picker = new PiecePicker({
    pieceCount: 1,
    pieceLength: 12,
    totalLength: 12,
    blockSize: 4,
  });
  const seed = full(1);
  picker.addPeerBitfield(seed);
  assert.deepEqual(keys(picker.nextRequests(seed, 3)), ["0:0:4", "0:4:4", "0:8:4"]);
  assert.deepEqual(picker.nextRequests(seed, 3), []);
  picker.blockCancelled(0, 4);
  assert.equal(picker.inFlight(0, 4), 0);
  assert.deepEqual(keys(picker.nextRequests(seed, 3)), ["0:4:4"]);
});

Deno.test("PiecePicker re-requests a piece that failed its hash check", () => {
  const picker = new PiecePicker({
    pieceCount: 2,
    pieceLength: 8,
    totalLength: 16,
    blockSize: 4,
    random: seededRandom(2),
    randomFirstPieces: 0,
  });
  const seed = full(2);
  picker.addPeerBitfield(seed);
  const requests = picker.nextRequests(seed, 2);
  const index = requests[0]!.index;
  assert.equal(picker.blockReceived(index, 0), false);
  assert.equal(picker.blockReceived(index, 4), true); // piece now ready to verify
  assert.equal(picker.blockReceived(index, 4), false); // duplicate
  picker.markPieceFailed(index);
  const again = picker.nextRequests(bitsOf(2, [index]), 5);
  assert.deepEqual(keys(again), [`${index}:0:4`, `${index}:4:4`]);
  picker.blockReceived(index, 0);
  picker.blockReceived(index, 4);
  picker.markHave(index);
  assert.equal(picker.has(index), true);
  assert.equal(picker.missingPieceCount, 1);
  assert.equal(picker.isComplete, false);
  const other = 1 - index;
  for (const r of picker.nextRequests(seed, 5)) picker.blockReceived(r.index, r.begin);
  picker.markHave(other);
  assert.equal(picker.isComplete, true);
  assert.equal(picker.missingPieceCount, 0);
  assert.deepEqual(picker.nextRequests(seed, 5), []);
  assert.deepEqual(picker.have.toBytes(), new Uint8Array([0b1100_0000]));
});

Deno.test("PiecePicker endgame requests in-flight blocks again", () => {
  const picker = new PiecePicker({
    pieceCount: 2,
    pieceLength: 8,
    totalLength: 12,
    blockSize: 4,
    random: seededRandom(4),
  });
  const slow = full(2);
  const fast = full(2);
  picker.addPeerBitfield(slow);
  picker.addPeerBitfield(fast);
  const slowRequests = picker.nextRequests(slow, 10);
  assert.equal(slowRequests.length, 3); // 2 + 1 short-piece blocks
  assert.equal(picker.inEndgame, true);
  assert.deepEqual(picker.nextRequests(fast, 10), []); // no endgame unless asked
  picker.blockReceived(0, 0);
  const asked = new Set<string>();
  const dup = picker.nextRequests(fast, 10, {
    endgame: true,
    skip: (i, b) => asked.has(`${i}:${b}`),
  });
  assert.deepEqual(keys(dup).sort(), ["0:4:4", "1:0:4"]);
  assert.equal(picker.inFlight(0, 4), 2);
  for (const r of dup) asked.add(`${r.index}:${r.begin}`);
  // Already asked this peer for everything outstanding.
  assert.deepEqual(
    picker.nextRequests(fast, 10, { endgame: true, skip: (i, b) => asked.has(`${i}:${b}`) }),
    [],
  );
  // One copy arrives; the other is cancelled and does not free the block.
  assert.equal(picker.blockReceived(0, 4), true);
  picker.blockCancelled(0, 4);
  assert.equal(picker.inFlight(0, 4), 0);
  assert.deepEqual(picker.nextRequests(fast, 10), []);
  // A cancelled duplicate leaves one request in flight: still not free.
  picker.blockCancelled(1, 0);
  assert.equal(picker.inFlight(1, 0), 1);
  assert.deepEqual(picker.nextRequests(fast, 10), []);
  picker.blockCancelled(1, 0);
  assert.deepEqual(keys(picker.nextRequests(fast, 10)), ["1:0:4"]);
});

Deno.test("PiecePicker scales to 10^5 pieces", () => {
  const pieceCount = 100_000;
  const picker = new PiecePicker({
    pieceCount,
    pieceLength: 262144,
    totalLength: pieceCount * 262144,
    random: seededRandom(11),
  });
  const peers: Bitfield[] = [];
  for (let p = 0; p < 20; p++) {
    const bits = new Bitfield(pieceCount);
    if (p % 4 === 0) bits.setAll();
    else for (let i = p; i < pieceCount; i += 3) bits.set(i);
    picker.addPeerBitfield(bits);
    peers.push(bits);
  }
  const started = performance.now();
  let blocks = 0;
  for (let round = 0; round < 2000; round++) {
    const peer = peers[round % peers.length]!;
    const requests = picker.nextRequests(peer, 16);
    blocks += requests.length;
    for (const r of requests) {
      if (picker.blockReceived(r.index, r.begin)) picker.markHave(r.index);
    }
  }
  const elapsed = performance.now() - started;
  assert.equal(blocks, 32000);
  assert.equal(picker.haveCount, 2000);
  // O(pieces) per call would take seconds here.
  assert.ok(elapsed < 1000, `took ${elapsed.toFixed(0)} ms`);
});

Deno.test("PiecePicker startedOnly finishes started pieces and begins no new one", () => {
  // 4 pieces of 4 blocks (block 4 bytes).
  const picker = new PiecePicker({
    pieceCount: 4,
    pieceLength: 16,
    totalLength: 64,
    blockSize: 4,
    random: seededRandom(3),
    randomFirstPieces: 0,
  });
  const seed = full(4);
  picker.addPeerBitfield(seed);
  const first = picker.nextRequests(seed, 2);
  const started = first[0]!.index;
  assert.ok(first.every((r) => r.index === started));
  // Only the two remaining blocks of the started piece, though more were asked for.
  const rest = picker.nextRequests(seed, 10, { startedOnly: true });
  assert.deepEqual(keys(rest), [`${started}:8:4`, `${started}:12:4`]);
  assert.deepEqual(picker.nextRequests(seed, 10, { startedOnly: true }), []);
  // A priority piece not yet started is not begun either.
  const other = (started + 1) % 4;
  picker.setPriority([other]);
  assert.deepEqual(picker.nextRequests(seed, 10, { startedOnly: true }), []);
  // Without the option, new pieces start again (the priority one first).
  assert.equal(picker.nextRequests(seed, 1)[0]!.index, other);
});

Deno.test("PiecePicker starts each piece fresh when it reuses a finished piece's state", () => {
  // 3 pieces of 3 blocks (block 4 bytes); pieces start in order 0, 1, 2 via priority.
  const picker = new PiecePicker({ pieceCount: 3, pieceLength: 12, totalLength: 36, blockSize: 4 });
  const seed = full(3);
  picker.addPeerBitfield(seed);
  picker.setPriority([0, 1, 2]);
  assert.deepEqual(keys(picker.nextRequests(seed, 3)), ["0:0:4", "0:4:4", "0:8:4"]);
  for (const begin of [0, 4, 8]) picker.blockReceived(0, begin);
  picker.markHave(0);
  // Piece 1 gets piece 0's retired arrays: every block must be free and unreceived again.
  assert.deepEqual(keys(picker.nextRequests(seed, 2)), ["1:0:4", "1:4:4"]);
  assert.equal(picker.blockReceived(1, 0), false);
  assert.equal(picker.inFlight(1, 8), 0);
  // A failed piece retires too; started again, it needs all of its blocks.
  picker.blockReceived(1, 4);
  picker.markPieceFailed(1);
  assert.deepEqual(keys(picker.nextRequests(seed, 3)), ["1:0:4", "1:4:4", "1:8:4"]);
  assert.deepEqual(keys(picker.nextRequests(seed, 3)), ["2:0:4", "2:4:4", "2:8:4"]);
  for (const begin of [0, 4]) assert.equal(picker.blockReceived(2, begin), false);
  assert.equal(picker.blockReceived(2, 8), true);
});
