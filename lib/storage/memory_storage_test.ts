import assert from "node:assert/strict";
import { MemoryStorage } from "./memory_storage.ts";

Deno.test("MemoryStorage writes and reads by torrent offset", async () => {
  const storage = new MemoryStorage(6);
  assert.equal(storage.totalLength, 6);
  await storage.write(4, new Uint8Array([1, 2]));
  const read = await storage.read(3, 3);
  assert.deepEqual(read, new Uint8Array([0, 1, 2]));
  read[1] = 9; // reads are copies
  assert.deepEqual(await storage.read(4, 1), new Uint8Array([1]));
  await assert.rejects(() => storage.write(5, new Uint8Array(2)), RangeError);
  await assert.rejects(() => storage.read(-1, 1), RangeError);
  await storage.close();
  await assert.rejects(() => storage.read(0, 1), Error);
  assert.throws(() => new MemoryStorage(-1), RangeError);
});
