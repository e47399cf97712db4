import assert from "node:assert/strict";
import { parseCompactPeers } from "./_compact.ts";

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
