import assert from "node:assert/strict";
import { FsStorage, isSlowInlineWrite } from "./fs_storage.ts";

// Torrent layout, 16 bytes in all:
//   a.bin          [0, 5)
//   dir/empty      zero-length
//   dir/b.bin      [5, 8)
//   dir/sub/c.bin  [8, 16)
const files = [
  { path: ["a.bin"], length: 5 },
  { path: ["dir", "empty"], length: 0 },
  { path: ["dir", "b.bin"], length: 3 },
  { path: ["dir", "sub", "c.bin"], length: 8 },
];

function range(from: number, to: number): Uint8Array {
  return Uint8Array.from({ length: to - from }, (_, i) => from + i);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fs_storage_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("FsStorage.open() creates files, including zero-length ones", async () => {
  await withTempDir(async (dir) => {
    const storage = await FsStorage.open({ root: `${dir}/out`, files });
    assert.equal(storage.totalLength, 16);
    await storage.close();
    assert.equal((await Deno.stat(`${dir}/out/a.bin`)).size, 5);
    assert.equal((await Deno.stat(`${dir}/out/dir/empty`)).size, 0);
    assert.equal((await Deno.stat(`${dir}/out/dir/b.bin`)).size, 3);
    assert.equal((await Deno.stat(`${dir}/out/dir/sub/c.bin`)).size, 8);
  });
});

Deno.test("FsStorage writes across three files and reads back", async () => {
  await withTempDir(async (dir) => {
    const storage = await FsStorage.open({ root: dir, files });
    // One write from offset 3 to 10: a.bin[3..5), (empty), b.bin[0..3), c.bin[0..2).
    await storage.write(3, range(3, 10));
    assert.deepEqual(
      await storage.read(0, 16),
      new Uint8Array([0, 0, 0, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0, 0, 0, 0]),
    );
    assert.deepEqual(await storage.read(4, 5), range(4, 9));
    await storage.write(10, range(10, 16)); // the short tail
    await storage.flush();
    await assert.rejects(() => storage.write(15, new Uint8Array(2)), RangeError);
    await assert.rejects(() => storage.read(16, 1), RangeError);
    await storage.close();
    assert.deepEqual(await Deno.readFile(`${dir}/a.bin`), new Uint8Array([0, 0, 0, 3, 4]));
    assert.deepEqual(await Deno.readFile(`${dir}/dir/b.bin`), range(5, 8));
    assert.deepEqual(await Deno.readFile(`${dir}/dir/sub/c.bin`), range(8, 16));
    await assert.rejects(() => storage.read(0, 1), Error);
  });
});

Deno.test("FsStorage.open() keeps existing data and extends short files", async () => {
  await withTempDir(async (dir) => {
    const first = await FsStorage.open({ root: dir, files });
    await first.write(0, range(100, 116));
    await first.close();
    // Shorten one file behind our back; reopening extends it sparsely, never truncates.
    await Deno.truncate(`${dir}/dir/sub/c.bin`, 4);
    await Deno.writeFile(`${dir}/a.bin`, range(100, 107)); // longer than expected
    const second = await FsStorage.open({ root: dir, files });
    assert.deepEqual(
      await second.read(0, 16),
      new Uint8Array([100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 0, 0, 0, 0]),
    );
    await second.close();
    assert.equal((await Deno.stat(`${dir}/a.bin`)).size, 7);
    assert.equal((await Deno.stat(`${dir}/dir/sub/c.bin`)).size, 8);
  });
});

Deno.test("FsStorage supports single-file torrents", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/single.iso`;
    const storage = await FsStorage.open({
      root: path,
      files: [{ path: ["ignored"], length: 4 }],
      singleFile: true,
    });
    await storage.write(1, new Uint8Array([7, 8, 9]));
    await storage.close();
    assert.deepEqual(await Deno.readFile(path), new Uint8Array([0, 7, 8, 9]));
  });
});

Deno.test("FsStorage refuses planted symlinks", async (t) => {
  await withTempDir(async (dir) => {
    const outside = `${dir}/outside`;
    await Deno.mkdir(outside);
    await Deno.writeFile(`${outside}/victim`, new Uint8Array([1, 2, 3]));

    await t.step("symlinked file", async () => {
      const root = `${dir}/r1`;
      await Deno.mkdir(root);
      await Deno.symlink(`${outside}/victim`, `${root}/a.bin`);
      await assert.rejects(
        () => FsStorage.open({ root, files: [{ path: ["a.bin"], length: 10 }] }),
        Error,
        "refusing to follow symlink",
      );
    });
    await t.step("symlinked directory", async () => {
      const root = `${dir}/r2`;
      await Deno.mkdir(root);
      await Deno.symlink(outside, `${root}/dir`);
      await assert.rejects(
        () => FsStorage.open({ root, files: [{ path: ["dir", "victim"], length: 10 }] }),
        Error,
        "refusing to follow symlink",
      );
    });
    await t.step("symlinked single file", async () => {
      await Deno.symlink(`${outside}/victim`, `${dir}/single`);
      await assert.rejects(
        () =>
          FsStorage.open({
            root: `${dir}/single`,
            files: [{ path: ["x"], length: 10 }],
            singleFile: true,
          }),
        Error,
        "refusing to follow symlink",
      );
    });
    // The target was never touched.
    assert.deepEqual(await Deno.readFile(`${outside}/victim`), new Uint8Array([1, 2, 3]));
  });
});

Deno.test("FsStorage sanitises hostile paths inside the root", async () => {
  await withTempDir(async (dir) => {
    const root = `${dir}/root`;
    const storage = await FsStorage.open({
      root,
      files: [
        { path: ["..", "escape"], length: 1 },
        { path: ["/etc/passwd"], length: 1 },
        { path: ["CON"], length: 1 },
      ],
    });
    assert.deepEqual(storage.paths, [`${root}/_/escape`, `${root}/_etc_passwd`, `${root}/CON_`]);
    await storage.write(0, new Uint8Array([1, 2, 3]));
    await storage.close();
    await assert.rejects(() => Deno.stat(`${dir}/escape`), Deno.errors.NotFound);
    assert.deepEqual(await Deno.readFile(`${root}/_/escape`), new Uint8Array([1]));
    // Two components that sanitise to the same path are refused.
    await assert.rejects(
      () =>
        FsStorage.open({
          root: `${dir}/dup`,
          files: [{ path: ["a."], length: 1 }, { path: ["a"], length: 1 }],
        }),
      Error,
      "two files map to",
    );
  });
});

Deno.test("FsStorage bounds open descriptors with an LRU", async () => {
  await withTempDir(async (dir) => {
    const many = Array.from({ length: 200 }, (_, i) => ({ path: [`f${i}`], length: 3 }));
    const storage = await FsStorage.open({ root: dir, files: many, maxOpenFiles: 8 });
    assert.ok(storage.openFileCount <= 8);
    // Concurrent writes touching every file, each spanning a boundary.
    const all = range(0, 600).map((x) => x & 0xff);
    await Promise.all(
      Array.from({ length: 100 }, (_, k) => storage.write(k * 6, all.subarray(k * 6, k * 6 + 6))),
    );
    assert.ok(storage.openFileCount <= 8, `open: ${storage.openFileCount}`);
    assert.deepEqual(await storage.read(0, 600), all);
    await storage.close();
    assert.deepEqual(await Deno.readFile(`${dir}/f199`), all.subarray(597, 600));
  });
});

/** Bytes that differ at every offset of a run of `length` (so a misplaced chunk shows). */
function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + seed + (i >> 8)) & 0xff);
}

Deno.test("isSlowInlineWrite() allows the base time plus 1 ms per 100 KB", () => {
  assert.equal(isSlowInlineWrite(0, 2, 2), false);
  assert.equal(isSlowInlineWrite(0, 2.01, 2), true);
  assert.equal(isSlowInlineWrite(1_000_000, 11.9, 2), false);
  assert.equal(isSlowInlineWrite(1_000_000, 12.1, 2), true);
  assert.equal(isSlowInlineWrite(262_144, 0, -Infinity), true);
});

Deno.test("FsStorage writes inline and queued alike, in chunks across file boundaries", async () => {
  // Three files with odd sizes, so pieces straddle them at offsets no chunk boundary matches.
  const layout = [
    { path: ["x.bin"], length: 100_003 },
    { path: ["y.bin"], length: 1 },
    { path: ["z.bin"], length: 170_000 },
  ];
  const total = 270_004;
  const pieceLength = 65_536 + 17;
  const source = pattern(total, 3);
  const contents: Uint8Array[][] = [];
  for (const inlineWrites of [true, false]) {
    await withTempDir(async (dir) => {
      const storage = await FsStorage.open({ root: dir, files: layout, inlineWrites });
      // Last piece first, then the others out of order, as a swarm delivers them.
      const starts = [];
      for (let at = 0; at < total; at += pieceLength) starts.push(at);
      starts.reverse();
      for (const at of starts) {
        await storage.write(at, source.subarray(at, Math.min(total, at + pieceLength)));
      }
      const stats = storage.writeStats;
      assert.deepEqual(await storage.read(0, total), source);
      await storage.close();
      // Each piece is one write per file it touches.
      const writes = stats.inline + stats.queued;
      assert.equal(writes >= starts.length, true);
      assert.equal(inlineWrites ? stats.queued : stats.inline, 0);
      contents.push(await Promise.all(layout.map((f) => Deno.readFile(`${dir}/${f.path[0]}`))));
    });
  }
  assert.deepEqual(contents[0], contents[1]);
  assert.deepEqual(contents[0]![0], source.subarray(0, 100_003));
});

Deno.test("FsStorage queues a write while a read holds the file's handle", async () => {
  await withTempDir(async (dir) => {
    const storage = await FsStorage.open({
      root: `${dir}/one.bin`,
      files: [{ path: ["one.bin"], length: 1 << 20 }],
      singleFile: true,
    });
    await storage.write(0, pattern(1 << 19, 1));
    assert.deepEqual(storage.writeStats, { inline: 1, queued: 0, pauses: 0 });
    // The read is queued on the first handle, so the write must not move its position.
    const reading = storage.read(0, 1 << 19);
    const writing = storage.write(1 << 19, pattern(1 << 19, 2));
    assert.deepEqual(await reading, pattern(1 << 19, 1));
    await writing;
    assert.deepEqual(storage.writeStats, { inline: 1, queued: 1, pauses: 0 });
    assert.deepEqual(await storage.read(1 << 19, 1 << 19), pattern(1 << 19, 2));
    await storage.close();
  });
});

Deno.test("FsStorage pauses inline writes after three slow ones in a row", async () => {
  await withTempDir(async (dir) => {
    const storage = await FsStorage.open({
      root: `${dir}/one.bin`,
      files: [{ path: ["one.bin"], length: 8 * 1024 }],
      singleFile: true,
      // Every inline write counts as slow.
      slowWriteMs: -Infinity,
    });
    for (let i = 0; i < 8; i++) await storage.write(i * 1024, pattern(1024, i));
    // Three inline writes, then the pause (2 s) sends the other five to a blocking thread.
    assert.deepEqual(storage.writeStats, { inline: 3, queued: 5, pauses: 1 });
    const expected = new Uint8Array(8 * 1024);
    for (let i = 0; i < 8; i++) expected.set(pattern(1024, i), i * 1024);
    assert.deepEqual(await storage.read(0, 8 * 1024), expected);
    await storage.close();
    await assert.rejects(
      () => FsStorage.open({ root: `${dir}/two.bin`, files: [], slowWriteMs: NaN }),
      TypeError,
    );
  });
});
