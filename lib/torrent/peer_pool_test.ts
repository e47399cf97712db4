import assert from "node:assert/strict";
import { PeerPool } from "./peer_pool.ts";

const A = { host: "127.0.0.1", port: 6881 };
const B = { host: "127.0.0.1", port: 6882 };
const C = { host: "::1", port: 6881 };

Deno.test("PeerPool.add() deduplicates addresses", () => {
  const pool = new PeerPool({ now: () => 0 });
  assert.equal(pool.add([A, B, { ...A }]), 2);
  assert.equal(pool.add([B, C]), 1);
  assert.equal(pool.counts().known, 3);
});

Deno.test("PeerPool.nextToDial() respects maxConnections", () => {
  const pool = new PeerPool({ maxConnections: 2, now: () => 0 });
  pool.add([A, B, C]);
  const first = pool.nextToDial();
  const second = pool.nextToDial();
  assert.ok(first && second);
  assert.notDeepEqual(first, second);
  assert.equal(pool.nextToDial(), undefined);
  pool.connected(first);
  assert.deepEqual(pool.counts(), { known: 3, connecting: 1, connected: 1, banned: 0 });
  pool.disconnected(first);
  assert.ok(pool.nextToDial());
});

Deno.test("PeerPool.failed() backs off exponentially and forgets after maxFailures", () => {
  let now = 0;
  const pool = new PeerPool({ retryBaseMs: 100, maxFailures: 3, now: () => now });
  pool.add([A]);
  assert.deepEqual(pool.nextToDial(), A);
  pool.failed(A);
  assert.equal(pool.nextRetryAt(), 100);
  now = 99;
  assert.equal(pool.nextToDial(), undefined);
  now = 100;
  assert.deepEqual(pool.nextToDial(), A);
  pool.failed(A);
  assert.equal(pool.nextRetryAt(), 300); // 100 + 200
  now = 300;
  assert.deepEqual(pool.nextToDial(), A);
  pool.failed(A);
  assert.equal(pool.stateOf(A), undefined);
  assert.equal(pool.counts().known, 0);
});

Deno.test("PeerPool.ban() blocks dialling, accepting and re-adding", () => {
  const pool = new PeerPool({ now: () => 0 });
  pool.add([A]);
  assert.deepEqual(pool.nextToDial(), A);
  pool.connected(A);
  pool.ban(A);
  assert.ok(pool.isBanned(A));
  assert.equal(pool.counts().connected, 0);
  assert.equal(pool.add([A]), 0);
  assert.equal(pool.nextToDial(), undefined);
  assert.equal(pool.accept(A), false);
  pool.failed(A);
  assert.ok(pool.isBanned(A));
});

Deno.test("PeerPool.accept() admits incoming peers and never dials them", () => {
  const pool = new PeerPool({ maxConnections: 2, now: () => 0 });
  assert.ok(pool.accept(A));
  assert.equal(pool.accept(A), false); // already connected
  assert.equal(pool.nextToDial(), undefined);
  assert.ok(pool.accept(B));
  assert.equal(pool.accept(C), false); // limit
  pool.disconnected(A);
  assert.equal(pool.stateOf(A), undefined);
  assert.equal(pool.counts().connected, 1);
});

Deno.test("PeerPool prefers fresh addresses over flaky ones", () => {
  let now = 0;
  const pool = new PeerPool({ retryBaseMs: 10, now: () => now });
  pool.add([A]);
  pool.nextToDial();
  pool.failed(A);
  now = 1000;
  pool.add([B]);
  assert.deepEqual(pool.nextToDial(), B);
  assert.deepEqual(pool.nextToDial(), A);
});
