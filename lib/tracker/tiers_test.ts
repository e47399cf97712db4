import assert from "node:assert/strict";
import { TrackerTiers } from "./tiers.ts";

/** A deterministic RNG replaying the given values. */
function replay(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

Deno.test("TrackerTiers shuffles each tier once with the injected RNG", () => {
  // Fisher-Yates on [a, b, c]: i=2 picks j=floor(0*3)=0 -> [c, b, a]; i=1 picks j=floor(0.99*2)=1.
  const tiers = new TrackerTiers([["a", "b", "c"], ["d"]], { random: replay(0, 0.99) });
  assert.deepEqual(tiers.tiers, [["c", "b", "a"], ["d"]]);
  // Asking again does not reshuffle.
  assert.deepEqual(tiers.candidates(), ["c", "b", "a", "d"]);
  assert.deepEqual([...tiers.order()], ["c", "b", "a", "d"]);
});

Deno.test("TrackerTiers keeps tiers in order and drops empties and duplicates", () => {
  const tiers = new TrackerTiers([[], ["x", "x"], ["", "y", "x"]], { random: () => 0.5 });
  assert.deepEqual(tiers.tiers, [["x"], ["y"]]);
  assert.throws(() => new TrackerTiers([["ok", 5 as unknown as string]]), TypeError);
  assert.throws(() => new TrackerTiers(["flat" as unknown as string[]]), TypeError);
});

Deno.test("TrackerTiers.reportSuccess() promotes within the tier only", () => {
  const tiers = new TrackerTiers([["a", "b", "c"], ["d", "e"]], { random: () => 0.999 });
  assert.deepEqual(tiers.candidates(), ["a", "b", "c", "d", "e"]);
  assert.equal(tiers.reportSuccess("e"), true);
  assert.deepEqual(tiers.tiers, [["a", "b", "c"], ["e", "d"]]);
  assert.equal(tiers.reportSuccess("c"), true);
  assert.deepEqual(tiers.candidates(), ["c", "a", "b", "e", "d"]);
  assert.equal(tiers.reportSuccess("zzz"), false);
});

Deno.test("TrackerTiers.order() is stable while success is reported mid-iteration", () => {
  const tiers = new TrackerTiers([["a", "b"], ["c"]], { random: () => 0.999 });
  const seen: string[] = [];
  for (const url of tiers.order()) {
    seen.push(url);
    if (url === "b") tiers.reportSuccess("b");
  }
  assert.deepEqual(seen, ["a", "b", "c"]);
  assert.deepEqual(tiers.candidates(), ["b", "a", "c"]);
});
