import assert from "node:assert/strict";
import { GOOD_NODE_MS, RoutingTable } from "./routing_table.ts";
import { commonPrefixLength, compareDistance } from "./node_id.ts";

const OWN = new Uint8Array(20); // all zero bits

/** An id whose first bytes are `head`, the rest zero. */
function id(...head: number[]): Uint8Array {
  const out = new Uint8Array(20);
  out.set(head);
  return out;
}

function contact(nodeId: Uint8Array, port = 1000 + nodeId[0]! + nodeId[1]!) {
  return { id: nodeId, host: "10.0.0.1", port };
}

/** A table with a controllable clock. */
function table(options: { k?: number } = {}) {
  const clock = { now: 1_000_000 };
  return { clock, table: new RoutingTable(OWN, { ...options, now: () => clock.now }) };
}

Deno.test("RoutingTable splits the bucket holding its own id, and only that one", () => {
  const { table: t } = table();
  // Eight far nodes (first bit 1) fill the single initial bucket.
  for (let i = 0; i < 8; i++) assert.equal(t.add(contact(id(0x80, i))).status, "added");
  assert.equal(t.bucketCount, 1);
  // A node sharing one bit with us: the full bucket holds our id, so it splits.
  assert.equal(t.add(contact(id(0x40))).status, "added");
  assert.equal(t.bucketCount, 2);
  assert.equal(t.size, 9);
  // Another far node: bucket 0 no longer holds our id, so no split; it waits in the cache.
  const result = t.add(contact(id(0x80, 99)));
  assert.equal(result.status, "cached");
  assert.equal(result.status === "cached" && result.questionable.length, 8);
  assert.equal(t.bucketCount, 2);
  assert.equal(t.get(id(0x80, 99)), undefined);
  // Nodes ever closer to us: repeated splits, and every bucket has room for them
  // (1 node shares 23 bits with us, 2 share 22, 4 share 21, 8 share 20). Splitting stops once
  // the last bucket (ids sharing >= 21 bits: 7 nodes) fits: buckets 0 to 21.
  for (let i = 1; i <= 15; i++) assert.equal(t.add(contact(id(0, 0, i))).status, "added");
  assert.equal(t.bucketCount, 22);
  assert.equal(t.size, 9 + 15);
  // 16 nodes sharing 19 bits: their bucket keeps 8.
  for (let i = 16; i <= 31; i++) t.add(contact(id(0, 0, i)));
  assert.equal(t.size, 9 + 15 + 8);
});

Deno.test("RoutingTable replaces a bad node with the newest replacement", () => {
  const { table: t } = table();
  t.add(contact(id(0x01))); // forces a split later; lives near us
  for (let i = 0; i < 8; i++) t.markResponded(contact(id(0x80, i)));
  t.add(contact(id(0x40)));
  t.add(contact(id(0x80, 200))); // cached
  t.add(contact(id(0x80, 201))); // cached, newest
  assert.equal(t.markFailed(id(0x80, 3)), "good"); // one failure: still in
  assert.equal(t.get(id(0x80, 201)), undefined);
  assert.equal(t.markFailed(id(0x80, 3)), "bad");
  assert.equal(t.get(id(0x80, 3)), undefined);
  assert.ok(t.get(id(0x80, 201)));
  assert.equal(t.markFailed(id(0x7f)), undefined);
});

Deno.test("RoutingTable puts a new node in place of a bad one directly", () => {
  const { table: t } = table({ k: 2 });
  t.add(contact(id(0x01)));
  t.add(contact(id(0x80)));
  t.add(contact(id(0x81)));
  t.add(contact(id(0x40))); // splits
  t.markFailed(id(0x80));
  t.markFailed(id(0x80));
  assert.equal(t.get(id(0x80))?.state, "bad");
  assert.equal(t.add(contact(id(0x82))).status, "added");
  assert.equal(t.get(id(0x80)), undefined);
});

Deno.test("RoutingTable node states follow the 15 minute rule", () => {
  const { clock, table: t } = table();
  const node = contact(id(0x80));
  t.add(node, { queried: true });
  assert.equal(t.get(node.id)?.state, "questionable"); // never answered us
  t.markResponded(node);
  assert.equal(t.get(node.id)?.state, "good");
  clock.now += GOOD_NODE_MS - 1;
  assert.equal(t.get(node.id)?.state, "good");
  clock.now += 1;
  assert.equal(t.get(node.id)?.state, "questionable");
  assert.deepEqual(t.questionable(), [node]);
  // Answered before, and queries us now: good again (BEP 5).
  t.add(node, { queried: true });
  assert.equal(t.get(node.id)?.state, "good");
  assert.equal(t.markFailed(node.id), "good");
  t.markResponded(node); // an answer clears failures
  assert.equal(t.get(node.id)?.failures, 0);
});

Deno.test("RoutingTable ignores our own id and unproven address changes", () => {
  const { table: t } = table();
  assert.equal(t.add(contact(OWN)).status, "ignored");
  const node = contact(id(0x80), 1);
  t.add(node);
  assert.equal(t.add({ ...node, port: 2 }).status, "ignored");
  assert.equal(t.get(node.id)?.port, 1);
  assert.equal(t.markResponded({ ...node, port: 2 }).status, "updated");
  assert.equal(t.get(node.id)?.port, 2);
  assert.throws(() => t.add({ ...node, id: new Uint8Array(19) }), TypeError);
  assert.equal(t.remove(node.id), true);
  assert.equal(t.size, 0);
});

Deno.test("RoutingTable.closest() sorts by XOR distance and skips bad nodes", () => {
  const { table: t } = table();
  const ids = [0x01, 0x02, 0x03, 0x10, 0x20, 0x40, 0x80, 0xc0, 0xff].map((b) => id(b));
  for (const nodeId of ids) t.markResponded(contact(nodeId));
  const target = id(0x21);
  const expected = [...ids].sort((a, b) => compareDistance(target, a, b)).slice(0, 4);
  assert.deepEqual(t.closest(target, 4).map((c) => c.id), expected);
  assert.deepEqual(expected[0], id(0x20));
  t.markFailed(id(0x20));
  t.markFailed(id(0x20));
  assert.deepEqual(t.closest(target, 1).map((c) => c.id), [expected[1]]);
  assert.equal(t.closest(target).length, 8);
});

Deno.test("RoutingTable.bucketsNeedingRefresh() lists buckets idle for 15 minutes", () => {
  const { clock, table: t } = table();
  for (let i = 0; i < 8; i++) t.add(contact(id(0x80, i)));
  t.add(contact(id(0x40))); // two buckets now
  assert.deepEqual(t.bucketsNeedingRefresh(), []);
  clock.now += GOOD_NODE_MS;
  const stale = t.bucketsNeedingRefresh();
  assert.deepEqual(stale.map((b) => b.index), [0, 1]);
  assert.equal(commonPrefixLength(OWN, stale[0]!.target), 0);
  assert.ok(commonPrefixLength(OWN, stale[1]!.target) >= 1);
  t.touchBucket(stale[0]!.target);
  assert.deepEqual(t.bucketsNeedingRefresh().map((b) => b.index), [1]);
  t.markResponded(contact(id(0x40)));
  assert.deepEqual(t.bucketsNeedingRefresh(), []);
});

Deno.test("RoutingTable.toJSON() and fromJSON() round trip with hex ids and ip:port", () => {
  const { table: t } = table();
  t.markResponded({ id: id(0x80, 1), host: "192.0.2.7", port: 6881 });
  t.add({ id: id(0x40, 2), host: "::1", port: 51413 });
  const state = JSON.parse(JSON.stringify(t));
  assert.deepEqual(state, {
    id: "00".repeat(20),
    nodes: [
      { id: "8001" + "00".repeat(18), address: "192.0.2.7:6881" },
      { id: "4002" + "00".repeat(18), address: "[::1]:51413" },
    ],
  });
  const copy = RoutingTable.fromJSON(state);
  assert.deepEqual(copy.toJSON(), state);
  assert.equal(copy.get(id(0x80, 1))?.state, "questionable");
  assert.throws(() => RoutingTable.fromJSON({ id: "zz", nodes: [] }), TypeError);
  assert.throws(
    () =>
      RoutingTable.fromJSON({ id: "00".repeat(20), nodes: [{ id: "00", address: "1.2.3.4:5" }] }),
    TypeError,
  );
  assert.throws(
    () =>
      RoutingTable.fromJSON({
        id: "00".repeat(20),
        nodes: [{ id: "11".repeat(20), address: "x" }],
      }),
    TypeError,
  );
});
