import assert from "node:assert/strict";
import { EventQueue } from "./_event_queue.ts";

Deno.test("EventQueue hands events over in order and ends after close()", async () => {
  const queue = new EventQueue<number>(10, () => true);
  const first = queue.next();
  queue.push(1);
  queue.push(2);
  queue.close();
  queue.push(3);
  assert.equal(await first, 1);
  assert.equal(await queue.next(), 2);
  assert.equal(await queue.next(), undefined);
});

Deno.test("EventQueue drops the oldest droppable event when over capacity", async () => {
  const queue = new EventQueue<string>(3, (event) => event.startsWith("progress"));
  for (const event of ["state", "progress 1", "progress 2", "done", "progress 3"]) {
    queue.push(event);
  }
  assert.equal(queue.dropped, 2);
  const left = [];
  queue.close();
  for (let e = await queue.next(); e !== undefined; e = await queue.next()) left.push(e);
  assert.deepEqual(left, ["state", "done", "progress 3"]);
});
