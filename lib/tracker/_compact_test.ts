import assert from "node:assert/strict";
import { formatIPv6, parseCompactPeers } from "./_compact.ts";

Deno.test("formatIPv6() writes the RFC 5952 short form", async (t) => {
  const cases: [string, string][] = [
    ["00000000000000000000000000000000", "::"],
    ["00000000000000000000000000000001", "::1"],
    ["fe800000000000000000000000000001", "fe80::1"],
    ["20010db8000000000001000000000001", "2001:db8::1:0:0:1"], // first of equal runs wins
    ["20010db8000000010001000100010001", "2001:db8:0:1:1:1:1:1"], // a lone zero stays "0"
    ["20010db8000000000000000100000000", "2001:db8::1:0:0"], // longest run only
    ["00000000000000000000ffff7f000001", "::ffff:127.0.0.1"], // IPv4-mapped
    ["ffffffffffffffffffffffffffffffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
  ];
  for (const [hex, expected] of cases) {
    await t.step(expected, () => assert.equal(formatIPv6(Uint8Array.fromHex(hex)), expected));
  }
  assert.throws(() => formatIPv6(new Uint8Array(4)), RangeError);
});

Deno.test("parseCompactPeers() splits 6- and 18-byte entries and drops port 0", () => {
  const v4 = Uint8Array.fromHex(
    "7f000001" + "1ae1" + // 127.0.0.1:6881
      "0a000002" + "0000" + // 10.0.0.2:0, undialable, dropped
      "ffffffff" + "0001", // 255.255.255.255:1
  );
  assert.deepEqual(parseCompactPeers(v4, 6), [
    { host: "127.0.0.1", port: 6881 },
    { host: "255.255.255.255", port: 1 },
  ]);
  const v6 = Uint8Array.fromHex("00000000000000000000000000000001" + "c8d5"); // [::1]:51413
  assert.deepEqual(parseCompactPeers(v6, 18), [{ host: "::1", port: 51413 }]);
  assert.deepEqual(parseCompactPeers(new Uint8Array(0), 6), []);
  assert.throws(() => parseCompactPeers(new Uint8Array(7), 6), RangeError);
  assert.throws(() => parseCompactPeers(new Uint8Array(6), 18), RangeError);
});
