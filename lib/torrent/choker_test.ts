import assert from "node:assert/strict";
import { Choker, type ChokerPeer } from "./choker.ts";

function peer(
  id: string,
  downloadRate: number,
  extra: Partial<ChokerPeer<string>> = {},
): ChokerPeer<string> {
  return { id, interested: true, downloadRate, uploadRate: 0, snubbed: false, ...extra };
}

function sorted(set: Set<string>): string[] {
  return [...set].sort();
}

Deno.test("Choker.update() unchokes every interested peer while slots are free", () => {
  const choker = new Choker<string>({ slots: 4, now: () => 0, random: () => 0 });
  const unchoked = choker.update(
    [peer("a", 0), peer("b", 0), peer("c", 0, { interested: false })],
    {
      seeding: false,
    },
  );
  assert.deepEqual(sorted(unchoked), ["a", "b"]);
  assert.equal(choker.optimistic, undefined);
});

Deno.test("Choker.update() ranks by download rate and keeps one optimistic slot", () => {
  const choker = new Choker<string>({ slots: 3, now: () => 0, random: () => 0 });
  const peers = [peer("slow", 1), peer("fast", 100), peer("mid", 50), peer("slower", 0)];
  const unchoked = choker.update(peers, { seeding: false });
  assert.equal(unchoked.size, 3);
  assert.ok(unchoked.has("fast") && unchoked.has("mid"));
  assert.equal(choker.optimistic, "slow"); // random() = 0 takes the first candidate
});

Deno.test("Choker.update() ranks by upload rate while seeding", () => {
  const choker = new Choker<string>({
    slots: 2,
    now: () => 0,
    random: () => 0.99,
    seedChoking: "fastest",
  });
  const peers = [
    peer("a", 100, { uploadRate: 1 }),
    peer("b", 0, { uploadRate: 500 }),
    peer("c", 0, { uploadRate: 2 }),
  ];
  const unchoked = choker.update(peers, { seeding: true });
  assert.ok(unchoked.has("b"));
  assert.equal(unchoked.size, 2);
});

Deno.test("Choker.update() re-ranks only every rechoke interval", () => {
  let now = 0;
  const choker = new Choker<string>({ slots: 2, now: () => now, random: () => 0 });
  let peers = [peer("a", 10), peer("b", 5), peer("c", 1)];
  assert.ok(choker.update(peers, { seeding: false }).has("a"));
  peers = [peer("a", 1), peer("b", 5), peer("c", 100)];
  now = 5_000;
  assert.ok(choker.update(peers, { seeding: false }).has("a"), "kept until the next rechoke");
  now = 10_000;
  const unchoked = choker.update(peers, { seeding: false });
  assert.ok(unchoked.has("c"));
});

Deno.test("Choker.update() fills a freed slot before the next rechoke", () => {
  let now = 0;
  const choker = new Choker<string>({ slots: 2, now: () => now, random: () => 0 });
  choker.update([peer("a", 10)], { seeding: false });
  now = 1_000;
  const unchoked = choker.update([peer("a", 10), peer("b", 0)], { seeding: false });
  assert.deepEqual(sorted(unchoked), ["a", "b"]);
  now = 2_000;
  const after = choker.update([peer("a", 10, { interested: false }), peer("b", 0)], {
    seeding: false,
  });
  assert.deepEqual(sorted(after), ["b"]);
});

Deno.test("Choker.update() rotates the optimistic slot every 30 s", () => {
  let now = 0;
  let next = 0;
  const choker = new Choker<string>({ slots: 2, now: () => now, random: () => next });
  const peers = [peer("best", 100), peer("x", 0), peer("y", 0)];
  choker.update(peers, { seeding: false });
  assert.equal(choker.optimistic, "x");
  next = 0.9;
  now = 20_000;
  choker.update(peers, { seeding: false });
  assert.equal(choker.optimistic, "x", "not yet rotated");
  now = 30_000;
  choker.update(peers, { seeding: false });
  assert.equal(choker.optimistic, "y");
});

Deno.test("Choker.update() puts snubbing peers last while downloading", () => {
  const choker = new Choker<string>({ slots: 2, now: () => 0, random: () => 0.99 });
  const peers = [peer("snub", 1000, { snubbed: true }), peer("a", 5), peer("b", 1)];
  const unchoked = choker.update(peers, { seeding: false });
  assert.ok(unchoked.has("a"));
  assert.equal(unchoked.size, 2);
  // The snubbing peer only gets a slot as the optimistic pick.
  assert.ok(!unchoked.has("snub") || choker.optimistic === "snub");
});

Deno.test("Choker.update() passes seeding slots round-robin on each rechoke", () => {
  let now = 0;
  const choker = new Choker<string>({ slots: 1, now: () => now, random: () => 0 });
  const peers = [peer("a", 0), peer("b", 0), peer("c", 0)];
  const turns: string[] = [];
  for (let i = 0; i < 6; i++) {
    const unchoked = choker.update(peers, { seeding: true });
    assert.equal(unchoked.size, 1, "one slot, no optimistic extra");
    turns.push(...unchoked);
    now += 5_000;
    // Between rechokes the holder keeps the slot.
    assert.deepEqual([...choker.update(peers, { seeding: true })], [...unchoked]);
    now += 5_000;
  }
  assert.deepEqual(turns, ["a", "b", "c", "a", "b", "c"]);
  assert.equal(choker.optimistic, undefined);
});

Deno.test("Choker.update() round-robin prefers newcomers and the faster peer on ties", () => {
  let now = 0;
  const choker = new Choker<string>({ slots: 2, now: () => now, random: () => 0 });
  const first = choker.update(
    [peer("a", 0, { uploadRate: 1 }), peer("b", 0, { uploadRate: 9 }), peer("c", 0)],
    { seeding: true },
  );
  assert.deepEqual(sorted(first), ["a", "b"]);
  now = 10_000;
  const peers = [
    peer("a", 0, { uploadRate: 1 }),
    peer("b", 0, { uploadRate: 9 }),
    peer("c", 0),
    peer("d", 0),
  ];
  assert.deepEqual(sorted(choker.update(peers, { seeding: true })), ["c", "d"]);
  now = 20_000;
  // a and b have waited longest now: they take both slots back.
  assert.deepEqual(sorted(choker.update(peers, { seeding: true })), ["a", "b"]);
});

Deno.test("Choker.update() round-robin fills a slot freed by a finished peer at once", () => {
  let now = 0;
  const choker = new Choker<string>({ slots: 1, now: () => now, random: () => 0 });
  assert.deepEqual([...choker.update([peer("a", 0), peer("b", 0)], { seeding: true })], ["a"]);
  now = 1_000;
  const after = choker.update([peer("a", 0, { interested: false }), peer("b", 0)], {
    seeding: true,
  });
  assert.deepEqual([...after], ["b"]);
});

Deno.test("Choker rejects a bad slot count or seed choking mode", () => {
  assert.throws(() => new Choker({ slots: 0 }), RangeError);
  // @ts-expect-error: checked at run time for JavaScript callers
  assert.throws(() => new Choker({ seedChoking: "random" }), RangeError);
});
