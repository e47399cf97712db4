import { deepEqual, equal } from "node:assert/strict";
import { compareRounds, roundOrder } from "./_rounds.ts";

Deno.test("roundOrder: six rounds of three clients go through every order once", () => {
  const clients = ["ours", "aria2", "libtorrent"];
  const rounds = [1, 2, 3, 4, 5, 6].map((run) => roundOrder(clients, run));
  deepEqual(new Set(rounds.map((order) => order.join(","))).size, 6);
  // Inside rounds, each client follows each other client twice.
  const follows = new Map<string, number>();
  for (const order of rounds) {
    for (let i = 1; i < order.length; i++) {
      const pair = `${order[i - 1]}>${order[i]}`;
      follows.set(pair, (follows.get(pair) ?? 0) + 1);
    }
  }
  deepEqual(follows.size, 6);
  deepEqual([...follows.values()], [2, 2, 2, 2, 2, 2]);
  // And each starts two rounds.
  deepEqual(rounds.map((order) => order[0]).sort(), [
    "aria2",
    "aria2",
    "libtorrent",
    "libtorrent",
    "ours",
    "ours",
  ]);
});

Deno.test("roundOrder handles one or two clients", () => {
  deepEqual(roundOrder(["ours"], 4), ["ours"]);
  deepEqual([1, 2, 3, 4].map((run) => roundOrder(["ours", "lt"], run)), [
    ["ours", "lt"],
    ["lt", "ours"],
    ["lt", "ours"],
    ["ours", "lt"],
  ]);
});

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
