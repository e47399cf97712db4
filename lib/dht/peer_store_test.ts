import assert from "node:assert/strict";
import { PEER_TTL_MS, PeerStore } from "./peer_store.ts";

const HASH_A = new Uint8Array(20).fill(0xa);
const HASH_B = new Uint8Array(20).fill(0xb);
const HASH_C = new Uint8Array(20).fill(0xc);
const peer = (port: number) => ({ host: "10.0.0.1", port });

Deno.test("PeerStore expires announcements unless refreshed", () => {
  let now = 0;
  const store = new PeerStore({ now: () => now });
  store.add(HASH_A, peer(1));
  store.add(HASH_A, peer(2));
  now += PEER_TTL_MS - 1;
  store.add(HASH_A, peer(1)); // refreshed
  assert.deepEqual(store.get(HASH_A), [peer(1), peer(2)]);
  now += 1;
  assert.deepEqual(store.get(HASH_A), [peer(1)]);
  assert.deepEqual(store.get(HASH_B), []);
  now += PEER_TTL_MS;
  store.prune();
  assert.equal(store.size, 0);
});

Deno.test("PeerStore keeps the newest peers per hash and the most recent hashes", () => {
  const store = new PeerStore({ maxPeersPerHash: 3, maxInfoHashes: 2 });
  for (let port = 1; port <= 5; port++) store.add(HASH_A, peer(port));
  assert.deepEqual(store.get(HASH_A), [peer(5), peer(4), peer(3)]);
  assert.deepEqual(store.get(HASH_A, { limit: 2 }), [peer(5), peer(4)]);
  store.add(HASH_B, peer(1));
  store.add(HASH_A, peer(6)); // HASH_A is now the most recent
  store.add(HASH_C, peer(1)); // evicts HASH_B
  assert.equal(store.size, 2);
  assert.deepEqual(store.get(HASH_B), []);
  assert.deepEqual(store.get(HASH_C), [peer(1)]);
  assert.equal(store.get(HASH_A).length, 3);
});
