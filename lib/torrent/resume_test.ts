import assert from "node:assert/strict";
import { createTorrent, type Metainfo } from "../metainfo/mod.ts";
import { Bitfield } from "../piece/mod.ts";
import { FsStorage } from "../storage/mod.ts";
import {
  checkExisting,
  createResumeData,
  currentBootId,
  loadResumeData,
  type RecheckProgress,
  type ResumeDecision,
  resumePathFor,
  saveResumeData,
} from "./resume.ts";

const PIECE_LENGTH = 8;

/**
 * A multi-file fixture: 40 bytes in 5 pieces of 8. Sorted file order: a.bin (10 bytes, so
 * piece 1 straddles a.bin/b.bin), b.bin (23), c.bin (7, piece 4 straddles b.bin/c.bin),
 * empty.bin (0).
 */
async function fixture(): Promise<{ metainfo: Metainfo; content: Uint8Array }> {
  const content = new Uint8Array(40);
  for (let i = 0; i < content.length; i++) content[i] = (i * 7 + 3) & 0xff;
  content[5] = 0; // a NUL inside the data
  const { metainfo } = await createTorrent({
    name: "fixture",
    files: [
      { path: ["a.bin"], data: content.subarray(0, 10) },
      { path: ["b.bin"], data: content.subarray(10, 33) },
      { path: ["c.bin"], data: content.subarray(33, 40) },
      { path: ["empty.bin"], data: new Uint8Array(0) },
    ],
  }, { pieceLength: PIECE_LENGTH });
  assert.deepEqual(metainfo.files.map((f) => f.path.join("/")), [
    "a.bin",
    "b.bin",
    "c.bin",
    "empty.bin",
  ]);
  assert.equal(metainfo.pieceCount, 5);
  return { metainfo, content };
}

interface Setup extends AsyncDisposable {
  dir: string;
  metainfo: Metainfo;
  content: Uint8Array;
  paths: string[];
  resumePath: string;
  /** Runs checkExisting, recording the decision and the last progress report. */
  check(
    signal?: AbortSignal,
  ): Promise<{ have: number[]; decision: ResumeDecision; last?: RecheckProgress }>;
  /**
   * Writes the whole content through FsStorage and saves resume data: flushed first, or with
   * `synced: false` not flushed and stamped with the boot.
   */
  writeAllAndSave(options?: { synced?: boolean }): Promise<void>;
}

async function setup(): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "resume_test_" });
  const { metainfo, content } = await fixture();
  const root = `${dir}/${metainfo.name}`;
  const paths = metainfo.files.map((f) => `${root}/${f.path.join("/")}`);
  const resumePath = resumePathFor(root);
  return {
    dir,
    metainfo,
    content,
    paths,
    resumePath,
    async check(signal) {
      let decision: ResumeDecision | undefined;
      let last: RecheckProgress | undefined;
      const have = await checkExisting({
        metainfo,
        paths,
        resumePath,
        ...(signal ? { signal } : {}),
        onDecision: (d) => decision = d,
        onProgress: (p) => last = p,
      });
      assert.ok(decision);
      return { have: [...have], decision, ...(last ? { last } : {}) };
    },
    async writeAllAndSave({ synced = true } = {}) {
      const storage = await FsStorage.open({
        root,
        files: metainfo.files,
        backgroundSync: synced,
      });
      try {
        await storage.write(0, content);
        if (synced) await storage.flush();
        const bitfield = new Bitfield(metainfo.pieceCount);
        bitfield.setAll();
        await saveResumeData(
          resumePath,
          await createResumeData({
            infoHash: metainfo.infoHash,
            bitfield,
            paths: storage.paths,
            synced,
          }),
        );
        assert.deepEqual(storage.paths, paths);
      } finally {
        await storage.close();
      }
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Changes one byte in place, keeping the size and restoring the mtime. */
async function corruptKeepingMtime(path: string, offset: number): Promise<void> {
  const before = await Deno.stat(path);
  const bytes = await Deno.readFile(path);
  bytes[offset] = bytes[offset]! ^ 0xff;
  await Deno.writeFile(path, bytes);
  await Deno.utime(path, before.atime!, before.mtime!);
}

Deno.test("resumePathFor() puts a hidden file beside the output", () => {
  assert.equal(resumePathFor("/x/y/movie.mkv"), "/x/y/.movie.mkv.dtresume");
  assert.equal(resumePathFor("/x/dir"), "/x/.dir.dtresume");
  assert.throws(() => resumePathFor("/"), TypeError);
});

Deno.test("saveResumeData() and loadResumeData() round-trip atomically", async () => {
  await using s = await setup();
  const bitfield = new Bitfield(5);
  bitfield.set(0);
  bitfield.set(4);
  await Deno.mkdir(`${s.dir}/fixture`);
  await Deno.writeFile(s.paths[0]!, new Uint8Array(10));
  const data = await createResumeData({ infoHash: s.metainfo.infoHash, bitfield, paths: s.paths });
  assert.equal(data.version, 1);
  assert.equal(data.infoHash, s.metainfo.infoHash.toHex());
  assert.equal(data.pieceCount, 5);
  assert.deepEqual(Uint8Array.fromBase64(data.bitfield), new Uint8Array([0b1000_1000]));
  assert.equal(data.files[0]!.length, 10);
  assert.ok(data.files[0]!.mtimeMs > 0);
  assert.deepEqual(data.files[1], { path: s.paths[1], length: -1, mtimeMs: -1 });

  await saveResumeData(s.resumePath, data);
  assert.deepEqual(await loadResumeData(s.resumePath), data);
  // Overwrite: the new content replaces the old, and no temporary file is left behind.
  bitfield.set(2);
  const again = await createResumeData({ infoHash: s.metainfo.infoHash, bitfield, paths: s.paths });
  await saveResumeData(s.resumePath, again);
  assert.deepEqual(await loadResumeData(s.resumePath), again);
  const names = [...Deno.readDirSync(s.dir)].map((e) => e.name).sort();
  assert.deepEqual(names, [".fixture.dtresume", "fixture"]);
});

Deno.test("saveResumeData() reports a failure with the path and leaves no temp file", async () => {
  await using s = await setup();
  await assert.rejects(
    saveResumeData(`${s.dir}/no/such/dir/.x.dtresume`, {
      version: 1,
      infoHash: "00".repeat(20),
      pieceCount: 0,
      bitfield: "",
      files: [],
    }),
    (error: Error) => error.message.includes("no/such/dir/.x.dtresume"),
  );
  assert.deepEqual([...Deno.readDirSync(s.dir)], []);
});

Deno.test("loadResumeData() rejects malformed files with SyntaxError", async (t) => {
  await using s = await setup();
  const cases: [string, string][] = [
    ["not JSON", "\x00\x01garbage"],
    ["an array", "[]"],
    ["wrong version", JSON.stringify({ version: 99 })],
    [
      "bad hash",
      JSON.stringify({ version: 1, infoHash: "xyz", pieceCount: 1, bitfield: "", files: [] }),
    ],
    [
      "bad file entry",
      JSON.stringify({
        version: 1,
        infoHash: "00".repeat(20),
        pieceCount: 1,
        bitfield: "gA==",
        files: [{ path: 3, length: 1, mtimeMs: 1 }],
      }),
    ],
    [
      "bad boot id",
      JSON.stringify({
        version: 1,
        infoHash: "00".repeat(20),
        pieceCount: 1,
        bitfield: "gA==",
        files: [],
        bootId: 7,
      }),
    ],
  ];
  for (const [name, text] of cases) {
    await t.step(name, async () => {
      await Deno.writeTextFile(s.resumePath, text);
      await assert.rejects(loadResumeData(s.resumePath), SyntaxError);
    });
  }
});

Deno.test("checkExisting() rechecks finding exactly the pieces present", async () => {
  await using s = await setup();
  await Deno.mkdir(`${s.dir}/fixture`);
  const data = s.content.slice();
  data[19] = data[19]! ^ 0x01; // corrupt piece 2 (bytes 16..23, inside b.bin)
  await Deno.writeFile(s.paths[0]!, data.subarray(0, 10)); // a.bin whole
  await Deno.writeFile(s.paths[1]!, data.subarray(10, 30)); // b.bin short: ends inside piece 3
  // c.bin and empty.bin missing.
  const { have, decision, last } = await s.check();
  assert.deepEqual(decision, { trusted: "none", reason: "no resume file", piecesToCheck: 5 });
  // piece 0: a.bin; piece 1: a.bin + b.bin; piece 2 corrupt; 3 short; 4 needs c.bin.
  assert.deepEqual(have, [0, 1]);
  assert.deepEqual(last, { piecesChecked: 5, piecesToCheck: 5, piecesValid: 2 });
});

Deno.test("checkExisting() trusts an unchanged resume file without hashing", async () => {
  await using s = await setup();
  await s.writeAllAndSave();
  // Corrupt a byte but keep size and mtime: only a re-hash could notice, and none must happen.
  await corruptKeepingMtime(s.paths[1]!, 3);
  const { have, decision, last } = await s.check();
  assert.deepEqual(decision, { trusted: "all", reason: "unchanged", piecesToCheck: 0 });
  assert.deepEqual(have, [0, 1, 2, 3, 4]);
  assert.equal(last, undefined);
});

Deno.test({
  name: "checkExisting() trusts an unsynced save in the same boot only",
  ignore: currentBootId() === undefined,
  fn: async () => {
    await using s = await setup();
    await s.writeAllAndSave({ synced: false });
    const saved = (await loadResumeData(s.resumePath))!;
    assert.equal(saved.bootId, currentBootId());
    // Same boot: the page cache holds every write, so it is trusted like a synced save.
    const same = await s.check();
    assert.deepEqual(same.decision, { trusted: "all", reason: "unchanged", piecesToCheck: 0 });
    assert.deepEqual(same.have, [0, 1, 2, 3, 4]);
    // After a restart the unsynced pages may be gone: everything is hashed again. A byte lost
    // in b.bin (same size and mtime) is found, which trusting the file would have missed.
    await saveResumeData(s.resumePath, { ...saved, bootId: "another-boot" });
    await corruptKeepingMtime(s.paths[1]!, 3);
    const { have, decision } = await s.check();
    assert.deepEqual(decision, {
      trusted: "none",
      reason: "the machine restarted since the resume file was saved (its data was not synced)",
      piecesToCheck: 5,
    });
    assert.deepEqual(have, [0, 2, 3, 4]);
  },
});

Deno.test("createResumeData() stamps no boot on synced saves", async () => {
  await using s = await setup();
  await s.writeAllAndSave();
  assert.equal((await loadResumeData(s.resumePath))!.bootId, undefined);
});

Deno.test("checkExisting() re-hashes only pieces of files whose mtime changed", async () => {
  await using s = await setup();
  await s.writeAllAndSave();
  // a.bin: corrupt byte 2 (piece 0) with the mtime changed.
  const bytes = await Deno.readFile(s.paths[0]!);
  bytes[2] = bytes[2]! ^ 0xff;
  await Deno.writeFile(s.paths[0]!, bytes);
  await Deno.utime(s.paths[0]!, new Date(), new Date(Date.now() + 5_000));
  // c.bin: corrupt but keep mtime; its piece (4) is trusted because c.bin looks unchanged.
  await corruptKeepingMtime(s.paths[2]!, 0);
  const { have, decision, last } = await s.check();
  assert.deepEqual(decision, {
    trusted: "partial",
    reason: "1 file changed since the last save",
    piecesToCheck: 2, // pieces 0 and 1 touch a.bin
  });
  assert.deepEqual(have, [1, 2, 3, 4]);
  assert.deepEqual(last, { piecesChecked: 2, piecesToCheck: 2, piecesValid: 1 });
});

Deno.test("checkExisting() re-hashes when a file's size changed", async () => {
  await using s = await setup();
  await s.writeAllAndSave();
  const before = await Deno.stat(s.paths[2]!);
  await Deno.truncate(s.paths[2]!, 3); // c.bin short: piece 4 gone
  await Deno.utime(s.paths[2]!, before.atime!, before.mtime!); // even with the old mtime
  const { have, decision } = await s.check();
  assert.equal(decision.trusted, "partial");
  assert.equal(decision.piecesToCheck, 1);
  assert.deepEqual(have, [0, 1, 2, 3]);
});

Deno.test("checkExisting() falls back to a full recheck on a bad resume file", async (t) => {
  await using s = await setup();
  await s.writeAllAndSave();
  const good = await loadResumeData(s.resumePath);
  assert.ok(good);
  await corruptKeepingMtime(s.paths[1]!, 10); // piece 2 (b.bin bytes 6..13 = torrent 16..23)
  const cases: [string, string, RegExp][] = [
    ["garbage", "\u0000\u00ff not json at all", /^unusable resume file/],
    ["truncated JSON", JSON.stringify(good).slice(0, 40), /^unusable resume file/],
    ["another torrent", JSON.stringify({ ...good, infoHash: "11".repeat(20) }), /another torrent/],
    ["wrong piece count", JSON.stringify({ ...good, pieceCount: 6 }), /piece count/],
    ["bad bitfield", JSON.stringify({ ...good, bitfield: "////" }), /bad bitfield/],
    ["fewer files", JSON.stringify({ ...good, files: good.files.slice(1) }), /different files/],
  ];
  for (const [name, text, reason] of cases) {
    await t.step(name, async () => {
      await Deno.writeTextFile(s.resumePath, text);
      const { have, decision } = await s.check();
      assert.equal(decision.trusted, "none");
      assert.match(decision.reason, reason);
      assert.deepEqual(have, [0, 1, 3, 4]);
    });
  }
  await t.step("a directory in place of the resume file", async () => {
    await Deno.remove(s.resumePath);
    await Deno.mkdir(s.resumePath);
    const { have, decision } = await s.check();
    assert.match(decision.reason, /^unusable resume file/);
    assert.deepEqual(have, [0, 1, 3, 4]);
  });
});

Deno.test("checkExisting() stops on abort without leaking descriptors", async () => {
  await using s = await setup();
  await s.writeAllAndSave();
  await Deno.remove(s.resumePath);
  const controller = new AbortController();
  const reason = new Error("user abort");
  let progressCalls = 0;
  await assert.rejects(
    checkExisting({
      metainfo: s.metainfo,
      paths: s.paths,
      resumePath: s.resumePath,
      signal: controller.signal,
      onProgress: () => {
        if (++progressCalls === 1) controller.abort(reason);
      },
    }),
    (error) => error === reason,
  );
  assert.ok(progressCalls < 5);
});

Deno.test("checkExisting() rejects a path list of the wrong length", async () => {
  await using s = await setup();
  await assert.rejects(
    checkExisting({ metainfo: s.metainfo, paths: s.paths.slice(1), resumePath: s.resumePath }),
    TypeError,
  );
});

Deno.test("checkExisting() treats pre-sized sparse files as empty without reading them", async () => {
  await using s = await setup();
  // FsStorage pre-sizes new files without writing data: all holes.
  const storage = await FsStorage.open({ root: `${s.dir}/fixture`, files: s.metainfo.files });
  await storage.write(0, s.content.subarray(0, 10)); // a.bin real data: piece 0
  await storage.close();
  const { have, last } = await s.check();
  assert.deepEqual(have, [0]);
  assert.deepEqual(last, { piecesChecked: 5, piecesToCheck: 5, piecesValid: 1 });

  // Proof that holes are not read: pieces of zeros would hash as valid if they were.
  const { metainfo } = await createTorrent({ name: "zeros.bin", data: new Uint8Array(16) }, {
    pieceLength: 8,
  });
  const path = `${s.dir}/zeros.bin`;
  await Deno.writeFile(path, new Uint8Array(0));
  await Deno.truncate(path, 16);
  const check = () =>
    checkExisting({ metainfo, paths: [path], resumePath: `${s.dir}/.zeros.bin.dtresume` });
  assert.deepEqual([...await check()], []);
  await Deno.writeFile(path, new Uint8Array(16)); // real zero bytes on disk
  assert.deepEqual([...await check()], [0, 1]);
});
