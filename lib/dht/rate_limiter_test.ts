import assert from "node:assert/strict";
import { RateLimiter } from "./rate_limiter.ts";

Deno.test("RateLimiter allows a burst, then the refill rate, per address", () => {
  let now = 0;
  const limiter = new RateLimiter({ perSecond: 10, burst: 5, now: () => now });
  const allowed = (host: string, n: number) =>
    Array.from({ length: n }, () => limiter.take(host)).filter(Boolean).length;
  assert.equal(allowed("10.0.0.1", 20), 5);
  assert.equal(allowed("10.0.0.2", 20), 5);
  now += 300; // 3 tokens refilled
  assert.equal(allowed("10.0.0.1", 20), 3);
  now += 60_000; // capped at the burst
  assert.equal(allowed("10.0.0.1", 20), 5);
});

Deno.test("RateLimiter forgets the least recently seen address when full", () => {
  const limiter = new RateLimiter({ perSecond: 1, burst: 1, maxAddresses: 2, now: () => 0 });
  assert.equal(limiter.take("a"), true);
  assert.equal(limiter.take("b"), true);
  assert.equal(limiter.take("a"), false);
  assert.equal(limiter.take("c"), true); // evicts "b" (least recently used)
  assert.equal(limiter.take("b"), true); // fresh bucket again; evicts "a"
  assert.equal(limiter.take("a"), true);
});

Deno.test("RateLimiter rejects a non-positive rate", () => {
  assert.throws(() => new RateLimiter({ perSecond: 0 }), RangeError);
});
