import assert from "node:assert/strict";
import { formatIPv6, parseIPv4, parseIPv6 } from "./ip.ts";

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

Deno.test("parseIPv6() and formatIPv6() round-trip; parseIPv4() is strict", () => {
  for (const text of ["::1", "2001:db8::1:0:0:1", "::ffff:1.2.3.4", "fe80::1", "1:2:3:4:5:6:7:8"]) {
    assert.equal(formatIPv6(parseIPv6(text)!), text);
  }
  assert.equal(parseIPv6("1:2:3:4:5:6:7:8:9"), undefined);
  assert.equal(parseIPv6("example.com"), undefined);
  assert.equal(parseIPv4("256.0.0.1"), undefined);
  assert.equal(parseIPv4("1.2.3"), undefined);
});

Deno.test("formatIPv6() writes canonical text and parseIPv6() reads it back", () => {
  const cases: [string, string][] = [
    ["::", "::"],
    ["1::", "1::"],
    ["::1", "::1"],
    ["fe80::1:2", "fe80::1:2"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // equal runs: the first is compressed
    ["2001:DB8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single zero group stays
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"], // IPv4-mapped: mixed notation (RFC 5952, section 5)
  ];
  for (const [input, canonical] of cases) {
    const bytes = parseIPv6(input);
    assert.ok(bytes, input);
    assert.equal(formatIPv6(bytes), canonical);
    assert.deepEqual(parseIPv6(canonical), bytes);
  }
  for (const bad of ["1:2:3", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "::g", "::1.2.3.256"]) {
    assert.equal(parseIPv6(bad), undefined, bad);
  }
});
