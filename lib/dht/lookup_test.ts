import assert from "node:assert/strict";
import { Lookup } from "./lookup.ts";
import type { DhtContact } from "./krpc.ts";
import { compareDistance } from "./node_id.ts";
import { RoutingTable } from "./routing_table.ts";

function node(byte: number, port = byte + 1): DhtContact {
  const id = new Uint8Array(20);
  id[0] = byte;
  return { id, host: "10.0.0.1", port };
}

const TARGET = new Uint8Array(20);

/** A deterministic RNG (xorshift32) filling buffers, for reproducible networks. */
function seeded(seed: number): (bytes: Uint8Array) => Uint8Array {
  let state = seed;
  return (bytes) => {
    for (let i = 0; i < bytes.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      bytes[i] = state & 0xff;
    }
    return bytes;
  };
}

Deno.test("Lookup keeps at most alpha queries in flight, closest first", () => {
  const seeds = [node(0x50), node(0x10), node(0x40), node(0x20), node(0x30)];
  const lookup = new Lookup(TARGET, seeds, { alpha: 3 });
  assert.deepEqual(lookup.next().map((c) => c.id[0]), [0x10, 0x20, 0x30]);
  assert.deepEqual(lookup.next(), []);
  assert.equal(lookup.inflight, 3);
  lookup.fail(node(0x20).id);
  assert.deepEqual(lookup.next().map((c) => c.id[0]), [0x40]);
  assert.equal(lookup.done, false);
});

Deno.test("Lookup ends when the k closest live nodes have answered", () => {
  const lookup = new Lookup(TARGET, [node(0x80), node(0x90), node(0xa0)], { k: 2, alpha: 3 });
  // Only the 2 closest candidates are queried.
  assert.deepEqual(lookup.next().map((c) => c.id[0]), [0x80, 0x90]);
  // 0x80 knows closer nodes; they become the 2 closest candidates and are queried next.
  lookup.respond(node(0x80).id, { nodes: [node(0x01), node(0x02)] });
  assert.equal(lookup.done, false);
  assert.deepEqual(lookup.next().map((c) => c.id[0]), [0x01, 0x02]);
  lookup.respond(node(0x01).id, { nodes: [node(0x80)] }); // nothing closer
  assert.equal(lookup.done, false);
  lookup.respond(node(0x02).id, { token: Uint8Array.of(9) });
  // 0x90 has not answered and 0xa0 was never asked, but neither is among the 2 closest: done.
  assert.equal(lookup.done, true);
  assert.deepEqual(lookup.closest().map((r) => r.contact.id[0]), [0x01, 0x02]);
  assert.deepEqual(lookup.closest()[1]?.token, Uint8Array.of(9));
  assert.equal(lookup.closest()[0]?.token, undefined);
});

Deno.test("Lookup skips failed nodes and ends when candidates run out", () => {
  const lookup = new Lookup(TARGET, [node(1), node(2)]);
  lookup.next();
  lookup.fail(node(1).id);
  assert.equal(lookup.done, false);
  lookup.fail(node(2).id);
  assert.equal(lookup.done, true);
  assert.deepEqual(lookup.closest(), []);
  assert.equal(new Lookup(TARGET, []).done, true);
});

Deno.test("Lookup collects distinct peers and ignores our own id and duplicate addresses", () => {
  const own = node(0x05);
  const lookup = new Lookup(TARGET, [node(0x40)], { ownId: own.id });
  lookup.next();
  const peer = { host: "192.0.2.1", port: 6881 };
  assert.deepEqual(
    lookup.respond(node(0x40).id, {
      values: [peer, peer],
      // Our own id, a node at 0x40's address, and a new node.
      nodes: [own, node(0x30, 0x41), node(0x20)],
    }),
    [peer],
  );
  assert.deepEqual(lookup.next().map((c) => c.id[0]), [0x20]);
  assert.deepEqual(lookup.respond(node(0x20).id, { values: [peer] }), []);
  assert.deepEqual(lookup.peers, [peer]);
  assert.equal(lookup.done, true);
});

Deno.test("Lookup finds the k closest nodes of a simulated Kademlia network", () => {
  const random = seeded(0x9e3779b9);
  const ids = Array.from({ length: 300 }, () => random(new Uint8Array(20)));
  const contacts = ids.map((id, i) => ({ id, host: "10.0.0.1", port: 1000 + i }));
  const tables = contacts.map((self) => {
    const table = new RoutingTable(self.id, { random });
    for (const other of contacts) table.markResponded(other);
    return table;
  });
  const byPort = new Map(contacts.map((c, i) => [c.port, tables[i]!]));
  for (const target of [random(new Uint8Array(20)), ids[123]!.slice()]) {
    target[19]! ^= 1; // not exactly a node id
    const lookup = new Lookup(target, tables[0]!.closest(target), { ownId: ids[0]! });
    let queries = 0;
    while (!lookup.done) {
      const batch = lookup.next();
      assert.ok(batch.length > 0, "lookup stalled");
      for (const contact of batch) {
        queries++;
        // Every 7th node is down.
        if (contact.port % 7 === 0) lookup.fail(contact.id);
        else lookup.respond(contact.id, { nodes: byPort.get(contact.port)!.closest(target) });
      }
    }
    const alive = contacts.filter((c) => c.port % 7 !== 0 && c.port !== 1000);
    const expected = alive.sort((a, b) => compareDistance(target, a.id, b.id)).slice(0, 8);
    assert.deepEqual(lookup.closest().map((r) => r.contact.port), expected.map((c) => c.port));
    assert.ok(queries < 60, `${queries} queries`);
  }
});
