import assert from "node:assert/strict";
import { parseRange, serveFile } from "./http_stream.ts";

Deno.test("parseRange() reads single byte ranges and gives up on the rest", async (t) => {
  await t.step("satisfiable", () => {
    assert.deepEqual(parseRange("bytes=0-0", 10), { start: 0, end: 1 });
    assert.deepEqual(parseRange("bytes = 3 - ", 10), { start: 3, end: 10 });
    assert.deepEqual(parseRange("bytes=-20", 10), { start: 0, end: 10 });
    assert.deepEqual(parseRange("BYTES=9-9", 10), { start: 9, end: 10 });
  });
  await t.step("unsatisfiable", () => {
    assert.equal(parseRange("bytes=10-", 10), "unsatisfiable");
    assert.equal(parseRange("bytes=5-4", 10), "unsatisfiable");
    assert.equal(parseRange("bytes=-0", 10), "unsatisfiable");
    assert.equal(parseRange("bytes=0-", 0), "unsatisfiable");
  });
  await t.step("ignored", () => {
    assert.equal(parseRange("items=0-1", 10), undefined);
    assert.equal(parseRange("bytes=-", 10), undefined);
    assert.equal(parseRange("bytes=0-1,3-4", 10), undefined);
    assert.equal(parseRange("bytes=x-1", 10), undefined);
  });
});

Deno.test("serveFile() answers GET, HEAD, ranges, 416 and 405", async () => {
  const data = new TextEncoder().encode("hello, streaming world");
  const requested: [number, number][] = [];
  await using server = serveFile({
    path: "dir/clip.mp4",
    length: data.length,
    stream: ({ start = 0, end = data.length }) => {
      requested.push([start, end]);
      return new Blob([data.slice(start, end)]).stream();
    },
  });
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/clip\.mp4$/);
  const full = await fetch(server.url);
  assert.equal(full.status, 200);
  assert.equal(full.headers.get("content-type"), "video/mp4");
  assert.equal(await full.text(), "hello, streaming world");
  const part = await fetch(server.url, { headers: { range: "bytes=7-15" } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get("content-range"), "bytes 7-15/22");
  assert.equal(await part.text(), "streaming");
  const head = await fetch(server.url, { method: "HEAD", headers: { range: "bytes=0-4" } });
  assert.equal(head.status, 206);
  assert.equal(head.headers.get("content-length"), "5");
  await head.body?.cancel();
  const bad = await fetch(server.url, { headers: { range: "bytes=30-" } });
  assert.equal(bad.status, 416);
  await bad.body?.cancel();
  const post = await fetch(server.url, { method: "POST" });
  assert.equal(post.status, 405);
  await post.body?.cancel();
  // HEAD, 416 and 405 read nothing.
  assert.deepEqual(requested, [[0, 22], [7, 16]]);
});
