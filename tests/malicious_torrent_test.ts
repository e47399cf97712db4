/**
 * Malicious torrents and links: path traversal in every spelling, symlinks planted in the
 * output directory, absurd geometry, huge file and piece counts, an oversized magnet link.
 * Each must end in a one-line error (CLI: exit 1, no stack) or be handled safely, never write
 * outside the output directory, and never hang (every case is time-bound).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { encode } from "../lib/bencode/mod.ts";
import { MagnetError, MetainfoError, parseMagnet, parseMetainfo } from "../lib/metainfo/mod.ts";
import { MemoryStorage } from "../lib/storage/mod.ts";
import { serveTorrent } from "../lib/torrent/mod.ts";
import { deterministicBytes } from "./_helpers/fixtures.ts";
import { assertOneLineError, type CliResult, runCli } from "./_helpers/run_cli.ts";

const PIECE_LENGTH = 16384;

type Component = string | Uint8Array;

interface RawFile {
  path: Component[];
  length: number;
  /** Use `path.utf-8` (BEP-less but common) with these components as well. */
  utf8Path?: Component[];
}

interface RawTorrentOptions {
  name: Component;
  utf8Name?: Component;
  files?: RawFile[];
  length?: number | bigint;
  pieceLength?: number;
  /** Replaces the computed piece hashes. */
  pieces?: Uint8Array;
  data?: Uint8Array;
}

/** Builds .torrent bytes by hand, with real piece hashes of `data`, whatever the fields say. */
function rawTorrent(options: RawTorrentOptions): { bytes: Uint8Array; data: Uint8Array } {
  const pieceLength = options.pieceLength ?? PIECE_LENGTH;
  const total = options.files
    ? options.files.reduce((sum, file) => sum + file.length, 0)
    : Number(options.length ?? 0);
  const data = options.data ?? deterministicBytes(total, 11);
  let pieces = options.pieces;
  if (pieces === undefined) {
    const count = Math.ceil(data.length / pieceLength);
    pieces = new Uint8Array(count * 20);
    for (let i = 0; i < count; i++) {
      const piece = data.subarray(i * pieceLength, (i + 1) * pieceLength);
      pieces.set(createHash("sha1").update(piece).digest(), i * 20);
    }
  }
  const info: Record<string, unknown> = {
    name: options.name,
    "piece length": pieceLength,
    pieces,
  };
  if (options.utf8Name !== undefined) info["name.utf-8"] = options.utf8Name;
  if (options.files) {
    info.files = options.files.map((file) => {
      const entry: Record<string, unknown> = { length: file.length, path: file.path };
      if (file.utf8Path) entry["path.utf-8"] = file.utf8Path;
      return entry;
    });
  } else {
    info.length = options.length ?? data.length;
  }
  // deno-lint-ignore no-explicit-any
  return { bytes: encode({ info } as any), data };
}

/** Every path under `dir`, relative, sorted (directories end with "/"; symlinks with "@"). */
async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const rel = prefix + entry.name;
    if (entry.isSymlink) out.push(rel + "@");
    else if (entry.isDirectory) {
      out.push(rel + "/");
      out.push(...await listTree(`${dir}/${entry.name}`, rel + "/"));
    } else out.push(rel);
  }
  return out.sort();
}

/** A sandbox: `root/` holds `work/` (the CLI's cwd, where outputs go) and the torrent file. */
async function sandbox(): Promise<{ root: string; work: string } & AsyncDisposable> {
  const root = await Deno.makeTempDir({ prefix: "malicious_" });
  const work = `${root}/work`;
  await Deno.mkdir(work);
  return {
    root,
    work,
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

function timeBound(signalMs: number): AbortSignal {
  return AbortSignal.timeout(signalMs);
}

/** Runs `download` in `work` against an optional peer; nothing else is dialled. */
async function download(
  work: string,
  torrentPath: string,
  options: { out?: string; peerPort?: number } = {},
): Promise<CliResult> {
  return await runCli([
    "download",
    "--quiet",
    "--no-trackers",
    "--port",
    "0",
    ...(options.out ? ["-o", options.out] : []),
    ...(options.peerPort ? ["--peer", `127.0.0.1:${options.peerPort}`] : []),
    torrentPath,
  ], { cwd: work, signal: timeBound(20_000) });
}

Deno.test("malicious torrents: traversal paths are refused in one line, nothing written", async (t) => {
  const cases: [string, RawTorrentOptions, RegExp][] = [
    ["'..' components", {
      name: "x",
      files: [{ path: ["..", "..", "evil.txt"], length: 5 }],
    }, /relative path component: "\.\."/],
    ["'.' component", { name: "x", files: [{ path: [".", "evil.txt"], length: 5 }] }, /"\."/],
    ["absolute path component", {
      name: "x",
      files: [{ path: ["/tmp", "evil.txt"], length: 5 }],
    }, /absolute path/],
    ["Windows drive 'C:'", { name: "x", files: [{ path: ["C:", "evil"], length: 5 }] }, /absolute/],
    ["Windows 'C:\\'", { name: "x", files: [{ path: ["C:\\evil"], length: 5 }] }, /separator/],
    ["backslash traversal", {
      name: "x",
      files: [{ path: ["..\\..\\evil"], length: 5 }],
    }, /separator/],
    ["slash inside a component", {
      name: "x",
      files: [{ path: ["a/../../evil"], length: 5 }],
    }, /separator/],
    ["NUL in a component", { name: "x", files: [{ path: ["evil\0.txt"], length: 5 }] }, /NUL/],
    ["empty component", { name: "x", files: [{ path: ["", "evil"], length: 5 }] }, /empty/],
    ["name '..' (single file)", { name: "..", length: 5 }, /info\.name.*"\.\."/],
    ["name '../evil' (single file)", { name: "../evil", length: 5 }, /info\.name/],
    ["name '/tmp/evil' (single file)", { name: "/tmp/evil", length: 5 }, /absolute/],
    ["safe name, '..' in name.utf-8", { name: "ok", utf8Name: "..", length: 5 }, /name\.utf-8/],
    ["safe path, traversal in path.utf-8", {
      name: "x",
      files: [{ path: ["ok"], utf8Path: ["..", "evil"], length: 5 }],
    }, /path\.utf-8/],
    ["the same path twice", {
      name: "x",
      files: [{ path: ["a"], length: 5 }, { path: ["a"], length: 5 }],
    }, /collides/],
    ["a file that is also a directory", {
      name: "x",
      files: [{ path: ["a"], length: 5 }, { path: ["a", "b"], length: 5 }],
    }, /collides/],
  ];
  await using box = await sandbox();
  for (const [name, options, pattern] of cases) {
    await t.step(name, async () => {
      const torrentPath = `${box.root}/case.torrent`;
      await Deno.writeFile(torrentPath, rawTorrent(options).bytes);
      const before = await listTree(box.root);
      const result = await download(box.work, torrentPath);
      assertOneLineError(result, 1, /^error: Invalid torrent: /);
      assert.match(result.stderr, pattern);
      assert.deepEqual(await listTree(box.root), before, "nothing was created");
    });
  }
});

Deno.test("malicious torrents: odd but legal names download inside the output directory", async (t) => {
  const names: string[][] = [
    ["..%2f..%2fencoded.txt"], // percent-encoded separators are just characters
    ["%2e%2e", "encoded-dots.txt"],
    ["C:evil.txt"], // a drive-relative Windows path
    ["Readme"],
    ["README"], // differs only by case: two files on a case-sensitive file system
    ["x".repeat(1000) + ".txt"], // far past NAME_MAX: truncated
    ["CON"], // a Windows device name
    ["dots and spaces. . "],
    ["\u202eevil\u202c.txt"], // right-to-left override
    ["full\uff0fwidth\uff3cslashes"],
    ["deep", "a", "b", "c", "d", "e", "f", "g", "file.bin"],
    ["ctrl\u0001\u001f\u007fchars"],
  ];
  const files = names.map((path, i) => ({ path, length: 1000 + i * 7 }));
  const { bytes, data } = rawTorrent({ name: "odd", files });
  const metainfo = parseMetainfo(bytes);
  const source = new MemoryStorage(data.length);
  await source.write(0, data);
  await using seeder = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
  await using box = await sandbox();
  const torrentPath = `${box.root}/odd.torrent`;
  await Deno.writeFile(torrentPath, bytes);

  const result = await download(box.work, torrentPath, { peerPort: seeder.port });
  assert.equal(result.code, 0, result.stderr);

  await t.step("nothing outside the output directory", async () => {
    const outside = (await listTree(box.root)).filter((p) => !p.startsWith("work/odd/"));
    assert.deepEqual(outside, ["odd.torrent", "work/", "work/.odd.dtresume"]);
  });

  await t.step("every file's bytes are there, each in its own file", async () => {
    const tree = await listTree(`${box.work}/odd`);
    assert.ok(tree.every((p) => !p.endsWith("@")), "no symlinks");
    const written = tree.filter((p) => !p.endsWith("/"));
    assert.equal(written.length, files.length, written.join("\n"));
    const contents = new Map<number, Uint8Array>();
    for (const path of written) {
      const content = await Deno.readFile(`${box.work}/odd/${path}`);
      contents.set(content.length, content);
      assert.ok(new TextEncoder().encode(path.split("/").at(-1)!).length <= 255);
    }
    let offset = 0;
    for (const file of files) {
      assert.deepEqual(contents.get(file.length), data.subarray(offset, offset + file.length));
      offset += file.length;
    }
  });
});

Deno.test("malicious torrents: names that collide after sanitising are refused", async () => {
  // Both names truncate to the same 255 bytes.
  const long = "y".repeat(300);
  const { bytes } = rawTorrent({
    name: "twins",
    files: [{ path: [long + "a"], length: 3 }, { path: [long + "b"], length: 3 }],
  });
  await using box = await sandbox();
  await Deno.writeFile(`${box.root}/t.torrent`, bytes);
  const result = await download(box.work, `${box.root}/t.torrent`);
  assertOneLineError(result, 1, /Cannot create the output .*two files map to/);
  // Files opened before the collision was found stay, inside the output directory.
  const tree = (await listTree(box.root)).filter((p) => !p.startsWith("work/twins/"));
  assert.deepEqual(tree, ["t.torrent", "work/"]);
});

Deno.test("malicious torrents: a symlink planted in the output is never followed", async (t) => {
  const secret = new TextEncoder().encode("precious, do not overwrite\n");

  async function plantedRun(
    setup: (box: { root: string; work: string }) => Promise<void>,
    options: RawTorrentOptions,
    out: string,
    pattern: RegExp,
  ): Promise<void> {
    await using box = await sandbox();
    await Deno.mkdir(`${box.root}/victim`);
    await Deno.writeFile(`${box.root}/victim/secret.txt`, secret);
    await setup(box);
    const { bytes, data } = rawTorrent(options);
    const metainfo = parseMetainfo(bytes);
    const source = new MemoryStorage(data.length);
    await source.write(0, data);
    await using seeder = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
    await Deno.writeFile(`${box.root}/t.torrent`, bytes);
    const result = await download(box.work, `${box.root}/t.torrent`, {
      out,
      peerPort: seeder.port,
    });
    assertOneLineError(result, 1, pattern);
    assert.deepEqual(await listTree(`${box.root}/victim`), ["secret.txt"]);
    assert.deepEqual(await Deno.readFile(`${box.root}/victim/secret.txt`), secret);
  }

  await t.step("a directory of the torrent is a symlink out", async () => {
    await plantedRun(
      async ({ root, work }) => {
        await Deno.mkdir(`${work}/out`);
        await Deno.symlink(`${root}/victim`, `${work}/out/sub`);
      },
      { name: "out", files: [{ path: ["sub", "secret.txt"], length: 100 }] },
      "out",
      /refusing to follow symlink/,
    );
  });

  await t.step("a file of the torrent is a symlink to a file outside", async () => {
    await plantedRun(
      async ({ root, work }) => {
        await Deno.mkdir(`${work}/out`);
        await Deno.symlink(`${root}/victim/secret.txt`, `${work}/out/a.txt`);
      },
      { name: "out", files: [{ path: ["a.txt"], length: 100 }] },
      "out",
      /refusing to follow symlink/,
    );
  });

  await t.step("the single-file output is a symlink", async () => {
    await plantedRun(
      async ({ root, work }) => {
        await Deno.symlink(`${root}/victim/secret.txt`, `${work}/single.bin`);
      },
      { name: "single.bin", length: 100 },
      "single.bin",
      /refusing to follow symlink/,
    );
  });

  await t.step("the resume file is a symlink: replaced, not written through", async () => {
    await using box = await sandbox();
    await Deno.writeFile(`${box.root}/secret.txt`, secret);
    await Deno.symlink(`${box.root}/secret.txt`, `${box.work}/.r.bin.dtresume`);
    const { bytes, data } = rawTorrent({ name: "r.bin", length: 40_000 });
    const metainfo = parseMetainfo(bytes);
    const source = new MemoryStorage(data.length);
    await source.write(0, data);
    await using seeder = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
    await Deno.writeFile(`${box.root}/t.torrent`, bytes);
    const result = await download(box.work, `${box.root}/t.torrent`, { peerPort: seeder.port });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await Deno.readFile(`${box.root}/secret.txt`), secret);
    assert.deepEqual(await Deno.readFile(`${box.work}/r.bin`), data);
    assert.equal((await Deno.lstat(`${box.work}/.r.bin.dtresume`)).isSymlink, false);
  });
});

Deno.test("malicious torrents: absurd geometry gets a one-line error", async (t) => {
  const cases: [string, RawTorrentOptions, RegExp][] = [
    [
      "piece length 0",
      { name: "g", length: 10, pieceLength: 0, pieces: new Uint8Array(20) },
      /piece length must be a positive integer/,
    ],
    [
      "piece length -1",
      { name: "g", length: 10, pieceLength: -1, pieces: new Uint8Array(20) },
      /piece length/,
    ],
    ["piece length 2^40", {
      name: "g",
      length: 10,
      pieceLength: 2 ** 40,
      pieces: new Uint8Array(20),
    }, /piece length must be at most/],
    [
      "pieces not a multiple of 20",
      { name: "g", length: 10, pieces: new Uint8Array(21) },
      /multiple of 20/,
    ],
    [
      "pieces: one hash too many",
      { name: "g", length: 10, pieces: new Uint8Array(40) },
      /expected 1/,
    ],
    ["pieces: one hash too few", {
      name: "g",
      length: PIECE_LENGTH + 1,
      pieces: new Uint8Array(20),
    }, /expected 2/],
    [
      "no pieces for a non-empty file",
      { name: "g", length: 10, pieces: new Uint8Array(0) },
      /expected 1/,
    ],
    [
      "length 2^53 + 2",
      { name: "g", length: 2n ** 53n + 2n, pieces: new Uint8Array(20) },
      /at most 9007199254740991/,
    ],
    ["negative length", { name: "g", length: -5, pieces: new Uint8Array(20) }, /non-negative/],
  ];
  await using box = await sandbox();
  for (const [name, options, pattern] of cases) {
    await t.step(name, async () => {
      const torrentPath = `${box.root}/g.torrent`;
      await Deno.writeFile(torrentPath, rawTorrent({ ...options, data: new Uint8Array(0) }).bytes);
      const result = await download(box.work, torrentPath);
      assertOneLineError(result, 1, /^error: (Invalid torrent|Cannot)/);
      assert.match(result.stderr, pattern);
      assert.deepEqual(await listTree(box.work), [], "nothing was created");
    });
  }
});

/** A torrent of `count` empty files `f0`, `f1`, ..., bencoded by hand (encode() is slow at this size). */
function manyFilesTorrent(count: number): Uint8Array {
  const parts: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `f${i}`;
    parts.push(`d6:lengthi0e4:pathl${name.length}:${name}ee`);
  }
  return new TextEncoder().encode(
    `d4:infod5:filesl${parts.join("")}e4:name4:many12:piece lengthi16384e6:pieces0:ee`,
  );
}

Deno.test("malicious torrents: 10^6 files and 10^6 pieces parse in bounded time; more are refused", async (t) => {
  await t.step("10^6 files parse within 30 s", () => {
    const count = 1_000_000;
    const bytes = manyFilesTorrent(count);
    const started = performance.now();
    const metainfo = parseMetainfo(bytes);
    const elapsed = performance.now() - started;
    assert.equal(metainfo.files.length, count);
    console.log(`10^6 files parsed in ${elapsed.toFixed(0)} ms`);
    assert.ok(elapsed < 30_000, `took ${elapsed} ms`);
  });

  await t.step("10^6 pieces parse within 5 s", () => {
    const count = 1_000_000;
    const bytes = encode({
      info: {
        length: count * PIECE_LENGTH,
        name: "big",
        "piece length": PIECE_LENGTH,
        pieces: new Uint8Array(count * 20),
      },
    });
    const started = performance.now();
    const metainfo = parseMetainfo(bytes);
    assert.equal(metainfo.pieceCount, count);
    assert.ok(performance.now() - started < 5_000);
  });

  await using box = await sandbox();
  await t.step("10^6 + 1 files: the CLI says so in one line", async () => {
    const bytes = manyFilesTorrent(1_000_001);
    await Deno.writeFile(`${box.root}/many.torrent`, bytes);
    const result = await download(box.work, `${box.root}/many.torrent`);
    assertOneLineError(result, 1, /info\.files has 1000001 entries, more than the limit/);
    assert.deepEqual(await listTree(box.work), []);
  });

  await t.step("10^6 + 1 pieces: the CLI says so in one line", async () => {
    const count = 1_000_001;
    const bytes = encode({
      info: {
        length: count * PIECE_LENGTH,
        name: "big",
        "piece length": PIECE_LENGTH,
        pieces: new Uint8Array(count * 20),
      },
    });
    await Deno.writeFile(`${box.root}/big.torrent`, bytes);
    const result = await download(box.work, `${box.root}/big.torrent`);
    assertOneLineError(result, 1, /info\.pieces holds 1000001 hashes, more than the limit/);
    assert.deepEqual(await listTree(box.work), []);
  });
});

Deno.test("malicious links: a magnet with a 10 MB parameter is refused at once", async (t) => {
  const hash = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
  const huge = "a".repeat(10 * 1024 * 1024);
  const links: [string, string][] = [
    ["dn", `magnet:?xt=urn:btih:${hash}&dn=${huge}`],
    ["tr", `magnet:?xt=urn:btih:${hash}&tr=http%3A%2F%2F${huge}`],
    ["xt", `magnet:?xt=urn:btih:${huge}`],
    ["x.pe", `magnet:?xt=urn:btih:${hash}&x.pe=${huge}`],
    ["many small parameters", `magnet:?xt=urn:btih:${hash}${"&tr=x".repeat(2_000_000)}`],
  ];
  for (const [name, link] of links) {
    await t.step(name, () => {
      const started = performance.now();
      assert.throws(() => parseMagnet(link), (error: unknown) => {
        assert.ok(error instanceof MagnetError);
        assert.match(error.message, /^Invalid magnet link: longer than 65536 characters/);
        assert.ok(!error.message.includes("\n"));
        assert.ok(error.message.length < 200, "the message does not echo the input");
        return true;
      });
      assert.ok(performance.now() - started < 100);
    });
  }
  await t.step("just under the limit still parses quickly", () => {
    const link = `magnet:?xt=urn:btih:${hash}&dn=${"b".repeat(60_000)}`;
    const started = performance.now();
    assert.equal(parseMagnet(link).displayName?.length, 60_000);
    assert.ok(performance.now() - started < 100);
  });
  await t.step("MetainfoError is what a bad torrent throws", () => {
    assert.throws(() => parseMetainfo(rawTorrent({ name: "..", length: 1 }).bytes), MetainfoError);
  });
});
