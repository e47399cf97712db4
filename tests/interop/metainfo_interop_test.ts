/**
 * Interop: libtorrent-rasterbar (python3-libtorrent, run with /usr/bin/python3) must read our
 * torrents as we do, and we must read libtorrent's and mktorrent's as libtorrent does.
 */
import assert from "node:assert/strict";
import { createTorrent, type Metainfo, parseMetainfo } from "../../lib/metainfo/mod.ts";
import {
  FIXTURE_ANNOUNCE,
  greetingTorrent,
  multiFileTorrent,
  TESTDATA_DIR,
} from "../_helpers/fixtures.ts";

const PYTHON = "/usr/bin/python3";

function libtorrentAvailable(): boolean {
  try {
    const { success } = new Deno.Command(PYTHON, {
      args: ["-c", "import libtorrent"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return success;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

const available = libtorrentAvailable();
if (!available) {
  console.warn(`Skipping metainfo interop tests: ${PYTHON} cannot import libtorrent`);
}
const ignore = !available;

/** What libtorrent reports about a torrent file (see DESCRIBE). */
interface LtInfo {
  infoHash: string;
  name: string;
  pieceLength: number;
  pieceCount: number;
  totalLength: number;
  /** [path joined with "/", size, offset, pad file] */
  files: [string, number, number, boolean][];
  /** [url, tier] */
  trackers: [string, number][];
  webSeeds: string[];
  private: boolean;
  comment: string;
  creator: string;
  creationDate: number;
}

const DESCRIBE = `
import json, sys, libtorrent as lt
out = []
for path in sys.argv[1:]:
    ti = lt.torrent_info(path)
    fs = ti.files()
    out.append({
        "infoHash": str(ti.info_hashes().v1),
        "name": ti.name(),
        "pieceLength": ti.piece_length(),
        "pieceCount": ti.num_pieces(),
        "totalLength": ti.total_size(),
        "files": [[fs.file_path(i), fs.file_size(i), fs.file_offset(i),
                   bool(fs.file_flags(i) & lt.file_storage.flag_pad_file)]
                  for i in range(fs.num_files())],
        "trackers": [[t.url, t.tier] for t in ti.trackers()],
        "webSeeds": [w["url"] for w in ti.web_seeds()],
        "private": ti.priv(),
        "comment": ti.comment(),
        "creator": ti.creator(),
        "creationDate": ti.creation_date(),
    })
print(json.dumps(out))
`;

/** Makes a torrent of a directory with libtorrent; prints its v1 info hash. */
const CREATE = `
import os, sys, libtorrent as lt
src, out, flags = sys.argv[1], sys.argv[2], sys.argv[3]
fs = lt.file_storage()
lt.add_files(fs, src)
ct = lt.create_torrent(fs, 32768, lt.create_torrent.v1_only if flags == "v1" else 0)
ct.add_tracker(sys.argv[4], 0)
lt.set_piece_hashes(ct, os.path.dirname(src))
with open(out, "wb") as f:
    f.write(lt.bencode(ct.generate()))
print(lt.torrent_info(out).info_hashes().v1)
`;

async function python(script: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(PYTHON, {
    args: ["-c", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 0, `python failed: ${err}`);
  return new TextDecoder().decode(stdout).trim();
}

async function describe(paths: string[]): Promise<LtInfo[]> {
  return JSON.parse(await python(DESCRIBE, paths));
}

/** Compares our parse with libtorrent's view of the same file. */
function assertSameView(meta: Metainfo, lt: LtInfo): void {
  assert.equal(meta.infoHash.toHex(), lt.infoHash, "info hash");
  assert.equal(meta.name, lt.name);
  assert.equal(meta.pieceLength, lt.pieceLength);
  assert.equal(meta.pieceCount, lt.pieceCount);
  assert.equal(meta.totalLength, lt.totalLength);
  assert.deepEqual(
    meta.files.map((f) => [
      meta.multiFile ? [meta.name, ...f.path].join("/") : f.path.join("/"),
      f.length,
      f.offset,
      f.padding === true,
    ]),
    lt.files,
  );
  assert.equal(meta.private, lt.private);
}

Deno.test({
  name: "libtorrent computes our info hashes for the committed fixtures",
  ignore,
  async fn() {
    const names = ["single", "multi", "mktorrent_multi", "unsorted_keys"];
    const paths = names.map((name) => new URL(`${name}.torrent`, TESTDATA_DIR).pathname);
    const views = await describe(paths);
    for (let i = 0; i < names.length; i++) {
      const meta = parseMetainfo(await Deno.readFile(paths[i]!));
      assertSameView(meta, views[i]!);
    }
    // The expected hex hardcoded in lib/metainfo/metainfo_test.ts came from here.
    assert.equal(views[2]!.infoHash, "345d3a9c7f41c897c752bb41576fa106ae917620");
    assert.equal(views[1]!.infoHash, views[2]!.infoHash, "ours == mktorrent's");
  },
});

Deno.test({
  name: "libtorrent reads torrents made by createTorrent() as we do",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "metainfo_interop_" });
    try {
      const greeting = await greetingTorrent();
      const multi = await multiFileTorrent();
      const extras = await createTorrent({ name: "extras.bin", data: new Uint8Array(40_000) }, {
        pieceLength: 16384,
        announce: [[FIXTURE_ANNOUNCE, "http://127.0.0.1:6970/announce"], [
          "udp://127.0.0.1:6969",
        ]],
        private: true,
        comment: "comment é",
        createdBy: "interop test",
        creationDate: 1_600_000_000,
        urlList: ["http://127.0.0.1:8080/extras.bin"],
      });
      const torrents = [greeting, multi, extras];
      const paths = torrents.map((_, i) => `${dir}/${i}.torrent`);
      for (let i = 0; i < torrents.length; i++) {
        await Deno.writeFile(paths[i]!, torrents[i]!.torrent);
      }
      const views = await describe(paths);
      for (let i = 0; i < torrents.length; i++) assertSameView(torrents[i]!.metainfo, views[i]!);
      const view = views[2]!;
      // BEP 12: clients shuffle the URLs within a tier, so compare them sorted.
      assert.deepEqual(view.trackers.toSorted(), [
        [FIXTURE_ANNOUNCE, 0],
        ["http://127.0.0.1:6970/announce", 0],
        ["udp://127.0.0.1:6969", 1],
      ]);
      assert.deepEqual(view.webSeeds, ["http://127.0.0.1:8080/extras.bin"]);
      assert.equal(view.comment, "comment é");
      assert.equal(view.creator, "interop test");
      assert.equal(view.creationDate, 1_600_000_000);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "parseMetainfo() reads torrents made by libtorrent (v1-only and hybrid with pad files)",
  ignore,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "metainfo_interop_" });
    try {
      const source = new URL("multi", TESTDATA_DIR).pathname;
      for (const kind of ["v1", "hybrid"]) {
        await t.step(kind, async () => {
          const out = `${dir}/${kind}.torrent`;
          const hash = await python(CREATE, [source, out, kind, FIXTURE_ANNOUNCE]);
          const meta = parseMetainfo(await Deno.readFile(out));
          assert.equal(meta.infoHash.toHex(), hash);
          assertSameView(meta, (await describe([out]))[0]!);
          assert.deepEqual(meta.announceList, [[FIXTURE_ANNOUNCE]]);
          const real = meta.files.filter((f) => f.padding !== true).map((f) => f.path.join("/"));
          // libtorrent lists files in directory order, not sorted.
          assert.deepEqual(real.toSorted(), [
            "alpha.txt",
            "beta/one.bin",
            "beta/two.bin",
            "empty.dat",
            "zeta.bin",
          ]);
          if (kind === "hybrid") assert.ok(meta.files.some((f) => f.padding === true));
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
