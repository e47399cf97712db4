import { deepEqual, equal } from "node:assert/strict";
import { compareRounds } from "./_rounds.ts";

Deno.test("compareRounds pairs the two clients by round, ignoring rounds missing either", () => {
  const results = [
    { client: "ours", run: 1, wallSeconds: 2 },
    { client: "aria2", run: 1, wallSeconds: 6 },
    { client: "libtorrent", run: 1, wallSeconds: 2.5 },
    { client: "libtorrent", run: 2, wallSeconds: 2 },
    { client: "ours", run: 2, wallSeconds: 2.5 },
    { client: "ours", run: 3, wallSeconds: 2 },
  ];
  deepEqual(compareRounds(results, "ours", "libtorrent"), {
    rounds: 2,
    faster: 1,
    minRatio: 0.8,
    maxRatio: 1.25,
  });
  equal(compareRounds(results, "ours", "aria2")?.faster, 1);
});

Deno.test("compareRounds counts a tie as not faster, and has nothing without a shared round", () => {
  const tie = [
    { client: "ours", run: 1, wallSeconds: 2 },
    { client: "libtorrent", run: 1, wallSeconds: 2 },
  ];
  equal(compareRounds(tie, "ours", "libtorrent")?.faster, 0);
  deepEqual(compareRounds(tie.slice(0, 1), "ours", "libtorrent"), undefined);
});
