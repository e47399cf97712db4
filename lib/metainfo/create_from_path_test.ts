import assert from "node:assert/strict";
import { decode } from "../bencode/mod.ts";
import { choosePieceLength, createTorrent, type CreateTorrentFile } from "./create.ts";
import { createTorrentFromPath } from "./create_from_path.ts";

/** Deterministic bytes: a byte pattern that differs per file and has a NUL in it. */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "create_from_path_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes `files` under `root` in the given order. */
async function writeFiles(root: string, files: CreateTorrentFile[]): Promise<void> {
  for (const file of files) {
    const path = `${root}/${file.path.join("/")}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(path, file.data);
  }
}

// Nested directories, a zero-length file, and file sizes that put file boundaries inside pieces.
const NESTED: CreateTorrentFile[] = [
  { path: ["b", "c", "deep.bin"], data: bytes(70_000, 1) },
  { path: ["a.bin"], data: bytes(20_000, 2) },
  { path: ["b", "empty"], data: new Uint8Array(0) },
  { path: ["b", "one.bin"], data: bytes(1, 3) },
  { path: ["z.bin"], data: bytes(16_384, 4) },
];

Deno.test("createTorrentFromPath() makes a single-file torrent", async () => {
  await withTempDir(async (dir) => {
    const data = bytes(50_000, 7);
    await Deno.writeFile(`${dir}/file.bin`, data);
    const { torrent, metainfo } = await createTorrentFromPath(`${dir}/file.bin`, {
      pieceLength: 16384,
      announce: "http://127.0.0.1:6969/announce",
    });
    const expected = await createTorrent({ name: "file.bin", data }, {
      pieceLength: 16384,
      announce: "http://127.0.0.1:6969/announce",
    });
    assert.deepEqual(torrent, expected.torrent);
    assert.equal(metainfo.name, "file.bin");
    assert.equal(metainfo.totalLength, 50_000);
    assert.equal(metainfo.pieceCount, 4);
    // Single-file mode: `length` in info, no `files`.
    const info = (decode(torrent) as Record<string, Record<string, unknown>>).info!;
    assert.equal(info.length, 50_000);
    assert.equal(info.files, undefined);
  });
});

Deno.test("createTorrentFromPath() makes a multi-file torrent of nested directories", async (t) => {
  await withTempDir(async (dir) => {
    await writeFiles(`${dir}/root`, NESTED);
    const expected = await createTorrent({ name: "root", files: NESTED }, { pieceLength: 16384 });
    for (const threads of [1, 2]) {
      await t.step(`threads: ${threads}`, async () => {
        const { torrent, metainfo } = await createTorrentFromPath(`${dir}/root`, {
          pieceLength: 16384,
          threads,
        });
        assert.deepEqual(metainfo.infoHash, expected.metainfo.infoHash);
        assert.deepEqual(torrent, expected.torrent);
        assert.deepEqual(metainfo.files.map((file) => [file.path.join("/"), file.length]), [
          ["a.bin", 20_000],
          ["b/c/deep.bin", 70_000],
          ["b/empty", 0],
          ["b/one.bin", 1],
          ["z.bin", 16_384],
        ]);
      });
    }
    await t.step("a trailing slash does not change the name", async () => {
      const { metainfo } = await createTorrentFromPath(`${dir}/root/`, { pieceLength: 16384 });
      assert.deepEqual(metainfo.infoHash, expected.metainfo.infoHash);
    });
    await t.step("a directory holding one file is still multi-file", async () => {
      await writeFiles(`${dir}/single`, [{ path: ["only"], data: bytes(10, 1) }]);
      const { metainfo } = await createTorrentFromPath(`${dir}/single`);
      assert.deepEqual(metainfo.files.map((file) => file.path), [["only"]]);
      assert.equal(metainfo.multiFile, true);
    });
  });
});

Deno.test("createTorrentFromPath() hashes many jobs across files on worker threads", async (t) => {
  await withTempDir(async (dir) => {
    // 3 MiB pieces: 2 per 6 MiB job (7 jobs), so jobs, pieces and files all end at different
    // places; pieces are also longer than a 2 MiB read, so one piece takes several reads.
    const files: CreateTorrentFile[] = [
      { path: ["one"], data: bytes(17 * 1024 * 1024 + 5, 11) },
      { path: ["three"], data: bytes(3, 13) },
      { path: ["two"], data: bytes(22 * 1024 * 1024 - 7, 12) },
    ];
    await writeFiles(`${dir}/big`, files);
    const pieceLength = 3 * 1024 * 1024;
    const expected = await createTorrent({ name: "big", files }, { pieceLength });
    for (const threads of [2, 3]) {
      await t.step(`threads: ${threads}`, async () => {
        const { metainfo } = await createTorrentFromPath(`${dir}/big`, { pieceLength, threads });
        assert.deepEqual(metainfo.pieceHashes, expected.metainfo.pieceHashes);
        assert.deepEqual(metainfo.infoHash, expected.metainfo.infoHash);
      });
    }
    await t.step("default threads (input above the worker threshold)", async () => {
      const { metainfo } = await createTorrentFromPath(`${dir}/big`, { pieceLength });
      assert.deepEqual(metainfo.infoHash, expected.metainfo.infoHash);
    });
    await t.step("on this thread", async () => {
      const { metainfo } = await createTorrentFromPath(`${dir}/big`, { pieceLength, threads: 1 });
      assert.deepEqual(metainfo.infoHash, expected.metainfo.infoHash);
    });
  });
});

Deno.test("createTorrentFromPath() is deterministic", async (t) => {
  await withTempDir(async (dir) => {
    await writeFiles(`${dir}/first/data`, NESTED);
    await writeFiles(`${dir}/second/data`, NESTED.toReversed());
    await t.step("two runs give the same bytes", async () => {
      const a = await createTorrentFromPath(`${dir}/first/data`, { pieceLength: 32768 });
      const b = await createTorrentFromPath(`${dir}/first/data`, { pieceLength: 32768 });
      assert.deepEqual(a.torrent, b.torrent);
    });
    await t.step("files created in another order give the same info hash", async () => {
      const a = await createTorrentFromPath(`${dir}/first/data`, { pieceLength: 32768 });
      const b = await createTorrentFromPath(`${dir}/second/data`, { pieceLength: 32768 });
      assert.deepEqual(a.metainfo.infoHash, b.metainfo.infoHash);
      // No timestamps of the files end up in the torrent.
      await Deno.utime(`${dir}/second/data/a.bin`, 1, 1);
      const c = await createTorrentFromPath(`${dir}/second/data`, { pieceLength: 32768 });
      assert.deepEqual(c.torrent, a.torrent);
    });
    await t.step("no creation date unless asked", async () => {
      const plain = decode((await createTorrentFromPath(`${dir}/first/data`)).torrent);
      assert.equal((plain as Record<string, unknown>)["creation date"], undefined);
      const dated = decode(
        (await createTorrentFromPath(`${dir}/first/data`, { creationDate: 1_700_000_000 }))
          .torrent,
      );
      assert.equal((dated as Record<string, unknown>)["creation date"], 1_700_000_000);
    });
  });
});

Deno.test("createTorrentFromPath() orders files by their whole path's bytes, as mktorrent", async () => {
  await withTempDir(async (dir) => {
    // Per-component order would put "a/x" before "a.txt"; mktorrent compares "a/x" and "a.txt"
    // as strings, and "." (0x2e) sorts before "/" (0x2f).
    await writeFiles(`${dir}/d`, [
      { path: ["a", "x"], data: bytes(1, 1) },
      { path: ["a.txt"], data: bytes(2, 2) },
      { path: ["a-b", "y"], data: bytes(3, 3) },
      { path: ["B"], data: bytes(4, 4) },
      { path: ["\u00e9"], data: bytes(5, 5) },
    ]);
    const { metainfo } = await createTorrentFromPath(`${dir}/d`);
    assert.deepEqual(metainfo.files.map((file) => file.path.join("/")), [
      "B",
      "a-b/y",
      "a.txt",
      "a/x",
      "\u00e9",
    ]);
  });
});

Deno.test("createTorrentFromPath() chooses the piece length from the total size", async () => {
  await withTempDir(async (dir) => {
    await writeFiles(`${dir}/d`, NESTED);
    const total = NESTED.reduce((sum, file) => sum + file.data.length, 0);
    const { metainfo } = await createTorrentFromPath(`${dir}/d`);
    assert.equal(metainfo.pieceLength, choosePieceLength(total));
    assert.equal(metainfo.pieceLength, 16384);
    // 40 MiB sparse file: 1 MiB pieces would give 40 pieces, so 32 KiB (1280 pieces).
    using file = await Deno.create(`${dir}/sparse.bin`);
    await file.truncate(40 * 1024 * 1024);
    const sparse = await createTorrentFromPath(`${dir}/sparse.bin`, { threads: 1 });
    assert.equal(sparse.metainfo.pieceLength, 32768);
    assert.equal(sparse.metainfo.pieceCount, 1280);
  });
});

Deno.test("createTorrentFromPath() writes the optional fields", async () => {
  await withTempDir(async (dir) => {
    await writeFiles(`${dir}/d`, NESTED);
    const { torrent, metainfo } = await createTorrentFromPath(`${dir}/d`, {
      name: "renamed",
      announce: [["http://127.0.0.1:1/announce"], ["udp://127.0.0.1:2/announce"]],
      private: true,
      comment: "a comment",
      createdBy: "denotorrent test",
      urlList: ["http://127.0.0.1:3/files/"],
    });
    assert.equal(metainfo.name, "renamed");
    assert.equal(metainfo.private, true);
    assert.equal(metainfo.announce, "http://127.0.0.1:1/announce");
    assert.deepEqual(metainfo.announceList, [
      ["http://127.0.0.1:1/announce"],
      ["udp://127.0.0.1:2/announce"],
    ]);
    assert.deepEqual(metainfo.urlList, ["http://127.0.0.1:3/files/"]);
    assert.equal(metainfo.comment, "a comment");
    assert.equal(metainfo.createdBy, "denotorrent test");
    // `private` sits inside info (so it changes the info hash), the rest outside.
    const top = decode(torrent) as Record<string, Record<string, unknown>>;
    assert.equal(top.info!.private, 1);
  });
});

Deno.test("createTorrentFromPath() includes hidden files unless told not to", async () => {
  await withTempDir(async (dir) => {
    await writeFiles(`${dir}/d`, [
      { path: [".hidden"], data: bytes(1, 1) },
      { path: [".git", "config"], data: bytes(2, 2) },
      { path: ["seen"], data: bytes(3, 3) },
    ]);
    const all = await createTorrentFromPath(`${dir}/d`);
    assert.deepEqual(all.metainfo.files.map((file) => file.path.join("/")), [
      ".git/config",
      ".hidden",
      "seen",
    ]);
    const visible = await createTorrentFromPath(`${dir}/d`, { includeHidden: false });
    assert.deepEqual(visible.metainfo.files.map((file) => file.path.join("/")), ["seen"]);
  });
});

Deno.test("createTorrentFromPath() follows symbolic links and skips special files", async (t) => {
  await withTempDir(async (dir) => {
    await writeFiles(`${dir}/d`, [{ path: ["real", "file"], data: bytes(10, 1) }]);
    await writeFiles(`${dir}/outside`, [{ path: ["target"], data: bytes(20, 2) }]);
    await Deno.symlink("real", `${dir}/d/dirlink`);
    await Deno.symlink(`${dir}/outside/target`, `${dir}/d/filelink`);
    await t.step("links to files and directories are followed", async () => {
      const { metainfo } = await createTorrentFromPath(`${dir}/d`);
      assert.deepEqual(metainfo.files.map((file) => [file.path.join("/"), file.length]), [
        ["dirlink/file", 10],
        ["filelink", 20],
        ["real/file", 10],
      ]);
    });
    await t.step("a FIFO is skipped", async () => {
      const mkfifo = await new Deno.Command("mkfifo", { args: [`${dir}/d/fifo`] }).output();
      assert.ok(mkfifo.success);
      const { metainfo } = await createTorrentFromPath(`${dir}/d`);
      assert.equal(metainfo.files.length, 3);
      await Deno.remove(`${dir}/d/fifo`);
    });
    await t.step("a link back to an enclosing directory is an error", async () => {
      await Deno.symlink("..", `${dir}/d/real/up`);
      await assert.rejects(
        () => createTorrentFromPath(`${dir}/d`),
        (error: Error) => error instanceof TypeError && /loops back/.test(error.message),
      );
      await Deno.remove(`${dir}/d/real/up`);
    });
    await t.step("a broken link is an error", async () => {
      await Deno.symlink("nowhere", `${dir}/d/broken`);
      await assert.rejects(
        () => createTorrentFromPath(`${dir}/d`),
        (error: Error) =>
          error instanceof Deno.errors.NotFound && /broken symbolic link/.test(error.message),
      );
    });
  });
});

Deno.test("createTorrentFromPath() rejects bad input with clear errors", async (t) => {
  await withTempDir(async (dir) => {
    await t.step("a missing path", async () => {
      await assert.rejects(() => createTorrentFromPath(`${dir}/missing`), Deno.errors.NotFound);
    });
    await t.step("an empty directory", async () => {
      await Deno.mkdir(`${dir}/empty/sub`, { recursive: true });
      await assert.rejects(() => createTorrentFromPath(`${dir}/empty`), {
        name: "TypeError",
        message: `Cannot create torrent from "${dir}/empty": no files in it`,
      });
    });
    await t.step("only zero-length files", async () => {
      await Deno.writeFile(`${dir}/empty/sub/zero`, new Uint8Array(0));
      await assert.rejects(() => createTorrentFromPath(`${dir}/empty`), {
        name: "RangeError",
        message: `Cannot create torrent from "${dir}/empty": total size is 0`,
      });
    });
    await Deno.writeFile(`${dir}/file`, bytes(10, 1));
    await t.step("a bad piece length", async () => {
      await assert.rejects(
        () => createTorrentFromPath(`${dir}/file`, { pieceLength: 0 }),
        RangeError,
      );
    });
    await t.step("a bad thread count", async () => {
      await assert.rejects(() => createTorrentFromPath(`${dir}/file`, { threads: 0 }), RangeError);
    });
    await t.step("an unsafe name", async () => {
      await assert.rejects(() => createTorrentFromPath(`${dir}/file`, { name: "../x" }), TypeError);
    });
  });
});

Deno.test("createTorrentFromPath() stops when the signal aborts", async (t) => {
  await withTempDir(async (dir) => {
    using file = await Deno.create(`${dir}/big.bin`);
    await file.truncate(256 * 1024 * 1024);
    await t.step("already aborted", async () => {
      const reason = new Error("stop now");
      await assert.rejects(
        () => createTorrentFromPath(`${dir}/big.bin`, { signal: AbortSignal.abort(reason) }),
        (error) => error === reason,
      );
    });
    await t.step(
      "progress on a long run is monotonic, throttled, and ends at the total",
      async () => {
        const calls: { hashed: number; total: number; at: number }[] = [];
        await createTorrentFromPath(`${dir}/big.bin`, {
          pieceLength: 65536,
          threads: 1,
          onProgress: (hashed, total) => calls.push({ hashed, total, at: performance.now() }),
        });
        const total = 256 * 1024 * 1024;
        const last = calls.at(-1)!;
        assert.deepEqual([last.hashed, last.total], [total, total]);
        // 256 MiB takes well over 100 ms here: at least one report before the end.
        assert.ok(calls.length >= 2, `only ${calls.length} progress report(s)`);
        assert.ok(calls.every((call) => call.total === total));
        for (let i = 1; i < calls.length; i++) {
          assert.ok(calls[i]!.hashed > calls[i - 1]!.hashed);
          // Reports before the final one are at least 100 ms apart.
          if (i < calls.length - 1) assert.ok(calls[i]!.at - calls[i - 1]!.at >= 99);
        }
      },
    );
    for (const threads of [1, 2]) {
      await t.step(`while hashing, threads: ${threads}`, async () => {
        const controller = new AbortController();
        const reason = new Error("stop hashing");
        // 256 MiB in 16 KiB pieces takes well over 10 ms on either path.
        const timer = setTimeout(() => controller.abort(reason), 10);
        try {
          await assert.rejects(
            () =>
              createTorrentFromPath(`${dir}/big.bin`, {
                pieceLength: 16384,
                threads,
                signal: controller.signal,
              }),
            (error) => error === reason,
          );
        } finally {
          clearTimeout(timer);
        }
      });
    }
  });
});

Deno.test("createTorrentFromPath() reports progress, throttled, ending at the total", async () => {
  await withTempDir(async (dir) => {
    const data = bytes(300_000, 9);
    await Deno.writeFile(`${dir}/f`, data);
    const calls: [number, number][] = [];
    await createTorrentFromPath(`${dir}/f`, {
      pieceLength: 16384,
      onProgress: (hashed, total) => calls.push([hashed, total]),
    });
    // Hashing 300 kB takes far less than the 100 ms between reports: only the final call.
    assert.deepEqual(calls, [[300_000, 300_000]]);
  });
});
