import assert from "node:assert/strict";
import { IntSet } from "./_int_set.ts";
import { seededRandom } from "../../tests/_helpers/fixtures.ts";

function members(set: IntSet): number[] {
  const out: number[] = [];
  set.forEach((key) => out.push(key));
  return out.sort((a, b) => a - b);
}

Deno.test("IntSet agrees with Set over a long random run of adds and deletes", () => {
  const random = seededRandom(42);
  const set = new IntSet();
  const reference = new Set<number>();
  // Narrow key ranges force long probe runs and wrap-around; wide ones use both 32-bit halves.
  const ranges = [64, 4096, 2 ** 53 - 1];
  for (let step = 0; step < 60_000; step++) {
    const range = ranges[step % 3]!;
    const key = Math.floor(random() * range);
    if (random() < 0.55) assert.equal(set.add(key), !reference.has(key) && !!reference.add(key));
    else assert.equal(set.delete(key), reference.delete(key));
    assert.equal(set.size, reference.size);
    if (step % 997 === 0) {
      assert.deepEqual(members(set), [...reference].sort((a, b) => a - b));
      for (const k of reference) assert.ok(set.has(k));
    }
  }
});

Deno.test("IntSet keeps its table at a steady size: no growth from churn", () => {
  const set = new IntSet(256);
  const capacity = set.capacity;
  assert.equal(capacity, 512);
  for (let round = 0; round < 100; round++) {
    for (let i = 0; i < 256; i++) set.add(round * 256 + i);
    for (let i = 0; i < 256; i++) assert.ok(set.delete(round * 256 + i));
  }
  assert.equal(set.size, 0);
  assert.equal(set.capacity, capacity);
  set.add(5);
  set.clear();
  assert.equal(set.has(5), false);
  assert.equal(set.size, 0);
});

Deno.test("IntSet treats non-keys as absent and refuses to add them", () => {
  const set = new IntSet();
  for (const bad of [-1, 0.5, NaN, Infinity, 2 ** 53]) {
    assert.equal(set.has(bad), false);
    assert.equal(set.delete(bad), false);
    assert.throws(() => set.add(bad), RangeError);
  }
  assert.equal(set.size, 0);
});
