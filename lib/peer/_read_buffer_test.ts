import assert from "node:assert/strict";
import { nextReadBufferSize } from "./_read_buffer.ts";

Deno.test("nextReadBufferSize() doubles after a read that filled its space, up to the maximum", () => {
  const max = 1024 * 1024;
  assert.equal(nextReadBufferSize(65536, 65536, 65536, max), 131072);
  assert.equal(nextReadBufferSize(65536, 40000, 40000, max), 131072);
  assert.equal(nextReadBufferSize(524288, 500000, 500000, max), max);
  assert.equal(nextReadBufferSize(786432, 786432, 786432, max), max);
  assert.equal(nextReadBufferSize(max, max, max, max), max);
});

Deno.test("nextReadBufferSize() keeps the size after a read that left space", () => {
  const max = 1024 * 1024;
  assert.equal(nextReadBufferSize(65536, 65536, 65535, max), 65536);
  assert.equal(nextReadBufferSize(262144, 100000, 17, max), 262144);
});
