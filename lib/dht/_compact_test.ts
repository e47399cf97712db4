import assert from "node:assert/strict";
import {
  decodeCompactNodes,
  decodeCompactPeer,
  encodeCompactNodes,
  encodeCompactPeer,
} from "./_compact.ts";

Deno.test("compact peers and node infos round trip", () => {
  const peer4 = { host: "192.0.2.1", port: 6881 };
  const peer6 = { host: "2001:db8::7", port: 51413 };
  // 4 address bytes + 2 port bytes (big-endian 6881 = 0x1ae1)
  assert.deepEqual(encodeCompactPeer(peer4), Uint8Array.of(192, 0, 2, 1, 0x1a, 0xe1));
  assert.equal(encodeCompactPeer(peer6).length, 18);
  assert.deepEqual(decodeCompactPeer(encodeCompactPeer(peer6)), peer6);
  assert.equal(decodeCompactPeer(new Uint8Array(7)), undefined);
  assert.throws(() => encodeCompactPeer({ host: "300.1.1.1", port: 1 }), TypeError);
  assert.throws(() => encodeCompactPeer({ host: "1.1.1.1", port: 65536 }), RangeError);
  const nodes = [{ id: new Uint8Array(20).fill(1), ...peer4 }, {
    id: new Uint8Array(20).fill(2),
    host: "10.0.0.2",
    port: 1,
  }];
  const bytes = encodeCompactNodes(nodes, false);
  assert.equal(bytes.length, 52);
  assert.deepEqual(decodeCompactNodes(bytes, false), nodes);
  const six = [{ id: new Uint8Array(20).fill(3), ...peer6 }];
  assert.deepEqual(decodeCompactNodes(encodeCompactNodes(six, true), true), six);
  assert.throws(
    () => encodeCompactNodes([{ ...nodes[0]!, id: new Uint8Array(3) }], false),
    TypeError,
  );
});
