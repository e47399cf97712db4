import assert from "node:assert/strict";
import { TOKEN_LENGTH, TOKEN_ROTATE_MS, TokenManager } from "./tokens.ts";

const MINUTE = 60_000;

Deno.test("TokenManager accepts the current and previous secret only", async (t) => {
  let now = 1_000_000;
  const tokens = new TokenManager({ now: () => now });
  const token = tokens.issue("192.0.2.1");
  assert.equal(token.length, TOKEN_LENGTH);

  await t.step("same period", () => {
    now += 4 * MINUTE + 59_000;
    assert.equal(tokens.verify("192.0.2.1", token), true);
    assert.deepEqual(tokens.issue("192.0.2.1"), token);
  });
  await t.step("next period: still valid, new tokens differ", () => {
    now += 2_000; // 5:01 after issue
    assert.equal(tokens.verify("192.0.2.1", token), true);
    assert.notDeepEqual(tokens.issue("192.0.2.1"), token);
  });
  await t.step("two periods later: expired", () => {
    now += 5 * MINUTE;
    assert.equal(tokens.verify("192.0.2.1", token), false);
  });
});

Deno.test("TokenManager binds tokens to the IP address", () => {
  const tokens = new TokenManager();
  const token = tokens.issue("192.0.2.1");
  assert.equal(tokens.verify("192.0.2.2", token), false);
  assert.equal(tokens.verify("192.0.2.1", token.subarray(0, 7)), false);
  const tampered = token.slice();
  tampered[0]! ^= 1;
  assert.equal(tokens.verify("192.0.2.1", tampered), false);
});

Deno.test("TokenManager forgets both secrets after a long pause", () => {
  let now = 0;
  const tokens = new TokenManager({ now: () => now });
  const token = tokens.issue("192.0.2.1");
  now += 2 * TOKEN_ROTATE_MS + 1;
  const fresh = tokens.issue("192.0.2.1");
  assert.equal(tokens.verify("192.0.2.1", token), false);
  assert.equal(tokens.verify("192.0.2.1", fresh), true);
});
