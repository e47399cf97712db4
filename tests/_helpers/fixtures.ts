/**
 * Test fixtures: tiny torrents built at test time, and the generator of the committed files in
 * `testdata/`. Regenerate those with `deno run -A tests/_helpers/fixtures.ts` (it also runs
 * `mktorrent` for `testdata/mktorrent_multi.torrent`).
 *
 * @module
 */
import { encode } from "../../lib/bencode/mod.ts";
import { createTorrent, type CreateTorrentFile, type Metainfo } from "../../lib/metainfo/mod.ts";

/** The tracker URL written into the committed fixtures. */
export const FIXTURE_ANNOUNCE = "http://127.0.0.1:6969/announce";

/** The `testdata/` directory. */
export const TESTDATA_DIR: URL = new URL("../../testdata/", import.meta.url);

/** A torrent together with the data it describes. */
export interface FixtureTorrent {
  /** The `.torrent` bytes. */
  torrent: Uint8Array;
  /** The parsed torrent. */
  metainfo: Metainfo;
  /** The files, in torrent order (one entry, path `[name]`, for a single-file torrent). */
  files: CreateTorrentFile[];
  /** All file contents concatenated: the data the pieces are hashed over. */
  data: Uint8Array;
}

/**
 * A small seeded PRNG (mulberry32): the same sequence of numbers in [0, 1) on every run, for
 * tests whose random choices must be reproducible.
 *
 * @example Usage
 * ```ts
 * import { seededRandom } from "./fixtures.ts";
 * import assert from "node:assert/strict";
 *
 * const a = seededRandom(7), b = seededRandom(7);
 * assert.equal(a(), b());
 * ```
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Deterministic pseudo-random bytes (xorshift32), the same on every run.
 *
 * @param length How many bytes.
 * @param seed A non-zero seed.
 * @returns The bytes.
 */
export function deterministicBytes(length: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[i] = state & 0xff;
  }
  return out;
}

/** The greeting data: 25 bytes with a NUL inside (4 pieces of 8, the last of 1 byte). */
export const GREETING_DATA: Uint8Array = new TextEncoder().encode("Hello,\0BitTorrent world!\n");

/**
 * A tiny single-file torrent: {@linkcode GREETING_DATA} (a NUL inside) in 8-byte pieces, so
 * that there are several pieces and the last is short.
 *
 * @returns The torrent and its data.
 */
export async function greetingTorrent(): Promise<FixtureTorrent> {
  const data = GREETING_DATA.slice();
  const { torrent, metainfo } = await createTorrent({ name: "greeting.txt", data }, {
    pieceLength: 8,
    announce: FIXTURE_ANNOUNCE,
  });
  return { torrent, metainfo, files: [{ path: ["greeting.txt"], data }], data };
}

/**
 * A tiny multi-file torrent in 8-byte pieces (21 bytes, 3 pieces, the last short):
 *
 * ```
 * offset 0        5   7       11              21
 *        | alpha  |b1 | b2    | (empty) zeta  |
 *        [ piece 0    ][ piece 1   ][ piece 2 ]
 * ```
 *
 * Piece 0 spans three files (`alpha.txt`, `beta/one.bin`, `beta/two.bin`), file boundaries
 * fall inside pieces, and `empty.dat` has zero length (at offset 11, between `beta/two.bin`
 * and `zeta.bin`).
 *
 * @returns The torrent, its files in torrent order, and their concatenation.
 */
export async function multiFileTorrent(): Promise<FixtureTorrent> {
  const text = new TextEncoder();
  const files: CreateTorrentFile[] = [
    { path: ["alpha.txt"], data: text.encode("alpha") }, // 0..5
    { path: ["beta", "one.bin"], data: new Uint8Array([0x00, 0xff]) }, // 5..7
    { path: ["beta", "two.bin"], data: new Uint8Array([1, 2, 0, 3]) }, // 7..11
    { path: ["empty.dat"], data: new Uint8Array(0) }, // 11..11
    { path: ["zeta.bin"], data: text.encode("zeta\0data!") }, // 11..21
  ];
  // Given out of order on purpose: createTorrent sorts by path.
  const { torrent, metainfo } = await createTorrent(
    { name: "multi", files: [files[4]!, files[2]!, files[0]!, files[3]!, files[1]!] },
    { pieceLength: 8, announce: FIXTURE_ANNOUNCE },
  );
  return { torrent, metainfo, files, data: concat(files.map((file) => file.data)) };
}

/** The files of the committed `testdata/multi/` directory, in torrent order. */
export function multiDirFiles(): CreateTorrentFile[] {
  const lines = Array.from({ length: 40 }, (_, i) => `line ${i}: the quick brown fox\n`).join("");
  return [
    { path: ["alpha.txt"], data: new TextEncoder().encode(lines) },
    { path: ["beta", "one.bin"], data: deterministicBytes(40_000, 1) },
    { path: ["beta", "two.bin"], data: deterministicBytes(30, 2) },
    { path: ["empty.dat"], data: new Uint8Array(0) },
    { path: ["zeta.bin"], data: deterministicBytes(50_000, 3) },
  ];
}

/** An invalid torrent of `testdata/invalid/`, with the error parsing it must raise. */
export interface InvalidFixture {
  /** File name in `testdata/invalid/`, after the defect. */
  file: string;
  /** The bytes. */
  bytes: Uint8Array;
  /** Expected `MetainfoError.field`. */
  field: string;
  /** Expected message (exact text, or a pattern where the detail comes from the bencode codec). */
  message: string | RegExp;
}

const PIECES_3 = new Uint8Array(60); // three zero hashes: 10 bytes in pieces of 4
const SINGLE_INFO = { length: 10, name: "a.bin", "piece length": 4, pieces: PIECES_3 };
const MULTI_FILES = [{ length: 3, path: ["a"] }, { length: 7, path: ["b"] }];
const MULTI_INFO = { files: MULTI_FILES, name: "dir", "piece length": 4, pieces: PIECES_3 };

function single(info: Record<string, unknown>): Uint8Array {
  return encode({ announce: FIXTURE_ANNOUNCE, info: { ...SINGLE_INFO, ...info } } as never);
}

function multi(files: unknown[], info: Record<string, unknown> = {}): Uint8Array {
  return encode({ announce: FIXTURE_ANNOUNCE, info: { ...MULTI_INFO, files, ...info } } as never);
}

function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (char) => char.charCodeAt(0));
}

/**
 * The invalid torrents committed to `testdata/invalid/`, each named after its defect.
 *
 * @returns The fixtures with their expected errors.
 */
export function invalidFixtures(): InvalidFixture[] {
  const valid = single({});
  const withoutInfoKey = (key: string) => {
    const info: Record<string, unknown> = { ...SINGLE_INFO };
    delete info[key];
    return encode({ announce: FIXTURE_ANNOUNCE, info } as never);
  };
  const path = (...components: string[]) => multi([{ length: 10, path: components }]);
  return [
    {
      file: "not_bencode.torrent",
      bytes: new TextEncoder().encode("this is not a torrent\n"),
      field: "torrent",
      message: /^Invalid torrent: not bencode: Cannot decode bencode/,
    },
    {
      file: "truncated.torrent",
      bytes: valid.subarray(0, valid.length - 30),
      field: "torrent",
      message: /^Invalid torrent: not bencode: /,
    },
    {
      file: "trailing_bytes.torrent",
      bytes: concat([valid, latin1("garbage")]),
      field: "torrent",
      message: /^Invalid torrent: not bencode: .*trailing/,
    },
    {
      // `i010e`: a leading zero, which canonical bencode forbids.
      file: "leading_zero_integer.torrent",
      bytes: latin1("d4:infod6:lengthi010e4:name1:a12:piece lengthi4e6:pieces0:ee"),
      field: "torrent",
      message: /^Invalid torrent: not bencode: .*leading zero/,
    },
    {
      file: "duplicate_keys.torrent",
      bytes: latin1("d4:infod6:lengthi0e4:name1:a4:name1:b12:piece lengthi4e6:pieces0:ee"),
      field: "torrent",
      message: /^Invalid torrent: not bencode: .*duplicate key/,
    },
    {
      file: "not_a_dict.torrent",
      bytes: latin1("li1ei2ee"),
      field: "torrent",
      message: "Invalid torrent: the top level must be a dictionary, got a list",
    },
    {
      file: "missing_info.torrent",
      bytes: encode({ announce: FIXTURE_ANNOUNCE }),
      field: "info",
      message: "Invalid torrent: info is missing",
    },
    {
      file: "info_not_a_dict.torrent",
      bytes: encode({ announce: FIXTURE_ANNOUNCE, info: "x" }),
      field: "info",
      message: "Invalid torrent: info must be a dictionary, got a byte string",
    },
    {
      file: "missing_name.torrent",
      bytes: withoutInfoKey("name"),
      field: "info.name",
      message: "Invalid torrent: info.name is missing",
    },
    {
      file: "name_wrong_type.torrent",
      bytes: single({ name: 5 }),
      field: "info.name",
      message: "Invalid torrent: info.name must be a byte string, got an integer",
    },
    {
      file: "name_dotdot.torrent",
      bytes: single({ name: ".." }),
      field: "info.name",
      message: 'Invalid torrent: info.name is a relative path component: ".."',
    },
    {
      file: "name_with_slash.torrent",
      bytes: single({ name: "a/b" }),
      field: "info.name",
      message: 'Invalid torrent: info.name contains a path separator: "a/b"',
    },
    {
      file: "name_utf8_absolute.torrent",
      bytes: single({ "name.utf-8": "/etc" }),
      field: "info.name.utf-8",
      message: 'Invalid torrent: info.name.utf-8 is an absolute path: "/etc"',
    },
    {
      file: "missing_piece_length.torrent",
      bytes: withoutInfoKey("piece length"),
      field: "info.piece length",
      message: "Invalid torrent: info.piece length is missing",
    },
    {
      file: "piece_length_wrong_type.torrent",
      bytes: single({ "piece length": "16384" }),
      field: "info.piece length",
      message: "Invalid torrent: info.piece length must be an integer, got a byte string",
    },
    {
      file: "piece_length_zero.torrent",
      bytes: single({ "piece length": 0 }),
      field: "info.piece length",
      message: "Invalid torrent: info.piece length must be a positive integer, got 0",
    },
    {
      file: "piece_length_negative.torrent",
      bytes: single({ "piece length": -5 }),
      field: "info.piece length",
      message: "Invalid torrent: info.piece length must be a positive integer, got -5",
    },
    {
      file: "piece_length_too_large.torrent",
      bytes: single({ "piece length": 2 ** 32 }),
      field: "info.piece length",
      message: "Invalid torrent: info.piece length must be at most 2147483648, got 4294967296",
    },
    {
      file: "missing_pieces.torrent",
      bytes: withoutInfoKey("pieces"),
      field: "info.pieces",
      message: "Invalid torrent: info.pieces is missing",
    },
    {
      file: "pieces_not_multiple_of_20.torrent",
      bytes: single({ pieces: new Uint8Array(59) }),
      field: "info.pieces",
      message: "Invalid torrent: info.pieces length must be a multiple of 20, got 59",
    },
    {
      file: "piece_count_mismatch.torrent",
      bytes: single({ pieces: new Uint8Array(40) }),
      field: "info.pieces",
      message:
        "Invalid torrent: info.pieces holds 2 hashes, expected 3 for 10 bytes in pieces of 4 bytes",
    },
    {
      file: "missing_length_and_files.torrent",
      bytes: withoutInfoKey("length"),
      field: "info",
      message: "Invalid torrent: info must have either length or files",
    },
    {
      file: "both_length_and_files.torrent",
      bytes: single({ files: MULTI_FILES }),
      field: "info",
      message: "Invalid torrent: info must have either length or files, not both",
    },
    {
      file: "negative_length.torrent",
      bytes: single({ length: -1 }),
      field: "info.length",
      message: "Invalid torrent: info.length must be a non-negative integer, got -1",
    },
    {
      file: "length_too_large.torrent",
      bytes: single({ length: 2n ** 60n }),
      field: "info.length",
      message:
        "Invalid torrent: info.length must be at most 9007199254740991, got 1152921504606846976",
    },
    {
      file: "total_length_too_large.torrent",
      bytes: multi([{ length: 5e15, path: ["a"] }, { length: 5e15, path: ["b"] }]),
      field: "info.files[1].length",
      message: "Invalid torrent: the total length exceeds 9007199254740991 bytes",
    },
    {
      file: "files_not_a_list.torrent",
      bytes: multi({} as never),
      field: "info.files",
      message: "Invalid torrent: info.files must be a list, got a dictionary",
    },
    {
      file: "empty_files.torrent",
      bytes: multi([]),
      field: "info.files",
      message: "Invalid torrent: info.files must not be empty",
    },
    {
      file: "file_not_a_dict.torrent",
      bytes: multi([MULTI_FILES[0], "b"]),
      field: "info.files[1]",
      message: "Invalid torrent: info.files[1] must be a dictionary, got a byte string",
    },
    {
      file: "file_missing_length.torrent",
      bytes: multi([{ path: ["a"] }]),
      field: "info.files[0].length",
      message: "Invalid torrent: info.files[0].length is missing",
    },
    {
      file: "file_negative_length.torrent",
      bytes: multi([{ length: -3, path: ["a"] }, { length: 13, path: ["b"] }]),
      field: "info.files[0].length",
      message: "Invalid torrent: info.files[0].length must be a non-negative integer, got -3",
    },
    {
      file: "file_missing_path.torrent",
      bytes: multi([{ length: 10 }]),
      field: "info.files[0].path",
      message: "Invalid torrent: info.files[0].path is missing",
    },
    {
      file: "empty_path.torrent",
      bytes: path(),
      field: "info.files[0].path",
      message: "Invalid torrent: info.files[0].path must not be empty",
    },
    {
      file: "path_empty_component.torrent",
      bytes: path("a", ""),
      field: "info.files[0].path[1]",
      message: "Invalid torrent: info.files[0].path[1] must not be empty",
    },
    {
      file: "path_dot.torrent",
      bytes: path(".", "a"),
      field: "info.files[0].path[0]",
      message: 'Invalid torrent: info.files[0].path[0] is a relative path component: "."',
    },
    {
      file: "path_dotdot.torrent",
      bytes: path("..", "..", "etc", "passwd"),
      field: "info.files[0].path[0]",
      message: 'Invalid torrent: info.files[0].path[0] is a relative path component: ".."',
    },
    {
      file: "path_absolute.torrent",
      bytes: path("/etc", "passwd"),
      field: "info.files[0].path[0]",
      message: 'Invalid torrent: info.files[0].path[0] is an absolute path: "/etc"',
    },
    {
      file: "path_drive_letter.torrent",
      bytes: path("C:", "Windows"),
      field: "info.files[0].path[0]",
      message: 'Invalid torrent: info.files[0].path[0] is an absolute path: "C:"',
    },
    {
      file: "path_with_slash.torrent",
      bytes: path("a/../../b"),
      field: "info.files[0].path[0]",
      message: 'Invalid torrent: info.files[0].path[0] contains a path separator: "a/../../b"',
    },
    {
      file: "path_with_backslash.torrent",
      bytes: path("a", "..\\b"),
      field: "info.files[0].path[1]",
      message: 'Invalid torrent: info.files[0].path[1] contains a path separator: "..\\\\b"',
    },
    {
      file: "path_nul.torrent",
      bytes: path("a\0.txt"),
      field: "info.files[0].path[0]",
      message: 'Invalid torrent: info.files[0].path[0] contains a NUL byte: "a\\u0000.txt"',
    },
    {
      // `path` is fine, but the preferred `path.utf-8` climbs out.
      file: "path_utf8_dotdot.torrent",
      bytes: multi([{ length: 10, path: ["ok"], "path.utf-8": ["..", "x"] }]),
      field: "info.files[0].path.utf-8[0]",
      message: 'Invalid torrent: info.files[0].path.utf-8[0] is a relative path component: ".."',
    },
    {
      file: "path_component_wrong_type.torrent",
      bytes: multi([{ length: 10, path: ["a", 7] }]),
      field: "info.files[0].path[1]",
      message: "Invalid torrent: info.files[0].path[1] must be a byte string, got an integer",
    },
    {
      file: "duplicate_paths.torrent",
      bytes: multi([{ length: 3, path: ["d", "a"] }, { length: 7, path: ["d", "a"] }]),
      field: "info.files[1].path",
      message: 'Invalid torrent: info.files[1].path "d/a" collides with info.files[0].path "d/a"',
    },
    {
      file: "path_file_and_directory.torrent",
      bytes: multi([{ length: 3, path: ["a"] }, { length: 7, path: ["a", "b"] }]),
      field: "info.files[1].path",
      message: 'Invalid torrent: info.files[1].path "a/b" collides with info.files[0].path "a"',
    },
    {
      file: "announce_wrong_type.torrent",
      bytes: encode({ announce: 1, info: SINGLE_INFO }),
      field: "announce",
      message: "Invalid torrent: announce must be a byte string, got an integer",
    },
    {
      file: "announce_list_tier_not_a_list.torrent",
      bytes: encode({ "announce-list": [FIXTURE_ANNOUNCE], info: SINGLE_INFO }),
      field: "announce-list[0]",
      message: "Invalid torrent: announce-list[0] must be a list, got a byte string",
    },
    {
      file: "creation_date_wrong_type.torrent",
      bytes: encode({ "creation date": "yesterday", info: SINGLE_INFO }),
      field: "creation date",
      message: "Invalid torrent: creation date must be an integer, got a byte string",
    },
  ];
}

/**
 * A valid torrent whose keys are not sorted (the outer `info` before `announce`, and inside
 * `info`: `name`, `piece length`, `pieces`, `length`, then an unknown `zzz` list). Parsing accepts
 * it; its info hash is over these raw bytes, which a canonical re-encoding would reorder.
 *
 * @returns The bytes and the exact bytes of its `info` value.
 */
export function unsortedKeysTorrent(): { torrent: Uint8Array; infoBytes: Uint8Array } {
  const info = concat([
    latin1("d"),
    latin1("4:name12:unsorted.txt"),
    latin1("12:piece lengthi16384e"),
    latin1("6:pieces20:"),
    new Uint8Array(20).fill(0x5a),
    latin1("6:lengthi100e"),
    latin1("3:zzzl5:extrai-1ee"),
    latin1("e"),
  ]);
  const torrent = concat([
    latin1("d4:info"),
    info,
    latin1(`8:announce${FIXTURE_ANNOUNCE.length}:${FIXTURE_ANNOUNCE}`),
    latin1("e"),
  ]);
  return { torrent, infoBytes: info };
}

/**
 * Concatenates byte arrays.
 *
 * @param parts The arrays.
 * @returns One new array.
 */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Writes the committed fixtures into `testdata/`: `single.bin` + `single.torrent`, `multi/` +
 * `multi.torrent`, `unsorted_keys.torrent`, `invalid/*.torrent`, and (with `mktorrent`)
 * `mktorrent_multi.torrent`.
 *
 * @param dir The `testdata/` directory.
 */
export async function writeFixtures(dir: URL = TESTDATA_DIR): Promise<void> {
  await Deno.mkdir(new URL("invalid/", dir), { recursive: true });
  const singleData = deterministicBytes(100 * 1024);
  await Deno.writeFile(new URL("single.bin", dir), singleData);
  const single = await createTorrent({ name: "single.bin", data: singleData }, {
    pieceLength: 32 * 1024,
    announce: FIXTURE_ANNOUNCE,
    comment: "denotorrent test fixture",
    createdBy: "denotorrent fixtures",
    creationDate: 1_700_000_000,
  });
  await Deno.writeFile(new URL("single.torrent", dir), single.torrent);

  const files = multiDirFiles();
  await Deno.remove(new URL("multi/", dir), { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  for (const file of files) {
    const url = new URL(`multi/${file.path.join("/")}`, dir);
    await Deno.mkdir(new URL(".", url), { recursive: true });
    await Deno.writeFile(url, file.data);
  }
  const multi = await createTorrent({ name: "multi", files }, {
    pieceLength: 32 * 1024,
    announce: FIXTURE_ANNOUNCE,
    createdBy: "denotorrent fixtures",
  });
  await Deno.writeFile(new URL("multi.torrent", dir), multi.torrent);
  await Deno.writeFile(new URL("unsorted_keys.torrent", dir), unsortedKeysTorrent().torrent);

  for (const entry of Deno.readDirSync(new URL("invalid/", dir))) {
    if (entry.name.endsWith(".torrent")) await Deno.remove(new URL(`invalid/${entry.name}`, dir));
  }
  for (const fixture of invalidFixtures()) {
    await Deno.writeFile(new URL(`invalid/${fixture.file}`, dir), fixture.bytes);
  }

  // An independent tool: 2^15 = 32 KiB pieces, no creation date (so the output is stable).
  const output = new URL("mktorrent_multi.torrent", dir);
  await Deno.remove(output).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  const { code, stderr } = await new Deno.Command("mktorrent", {
    args: [
      "-l",
      "15",
      "-d",
      "-a",
      FIXTURE_ANNOUNCE,
      "-o",
      output.pathname,
      new URL("multi", dir).pathname,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`Cannot run mktorrent: exit code ${code}: ${new TextDecoder().decode(stderr)}`);
  }
}

if (import.meta.main) {
  await writeFixtures();
  console.error(`Wrote fixtures to ${TESTDATA_DIR.pathname}`);
}
