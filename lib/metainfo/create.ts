import { encode } from "../bencode/mod.ts";
import { findPathConflict, pathComponentProblem } from "./_path.ts";
import { checkPieceLength, compareBytes, trackerFields } from "./_create_fields.ts";
import { type Metainfo, parseMetainfo } from "./metainfo.ts";

const HASH_LENGTH = 20;
const MIN_CHOSEN_PIECE_LENGTH = 16 * 1024;
const MAX_CHOSEN_PIECE_LENGTH = 16 * 1024 * 1024;
/** Pieces aimed at by {@linkcode choosePieceLength}: at most this many, and over half of it. */
const TARGET_MAX_PIECES = 2000;

/** Options for {@linkcode PieceHasher}. */
export interface PieceHasherOptions {
  /** Digests allowed in flight at once (default 4; Web Crypto then uses a second core). */
  maxInFlight?: number;
}

/**
 * Computes BitTorrent v1 piece hashes (SHA-1 per piece, BEP 3) incrementally: feed the torrent's
 * data in order, in chunks of any size (file boundaries do not matter: v1 pieces run straight
 * across them), then call {@linkcode PieceHasher.digest}. Whole pieces inside a chunk are hashed
 * without copying; only pieces that straddle chunks are gathered into a buffer.
 *
 * Call `update` again only after the previous call's promise has settled.
 *
 * @example Hashing in awkward chunks
 * ```ts
 * import assert from "node:assert/strict";
 * import { PieceHasher } from "./create.ts";
 *
 * const data = new Uint8Array(10).map((_, i) => i);
 * const whole = new PieceHasher(4);
 * await whole.update(data);
 * const split = new PieceHasher(4);
 * for (const [start, end] of [[0, 1], [1, 7], [7, 10]]) await split.update(data.subarray(start, end));
 * assert.deepEqual(await split.digest(), await whole.digest());
 * assert.equal(split.pieceCount, 3);
 * ```
 */
export class PieceHasher {
  readonly #pieceLength: number;
  readonly #maxInFlight: number;
  #buffer: Uint8Array | undefined;
  #filled = 0;
  #hashes: Uint8Array[] = [];
  #inFlight: Promise<void>[] = [];
  #count = 0;
  #done = false;

  /**
   * Makes a hasher for pieces of `pieceLength` bytes.
   *
   * @param pieceLength Bytes per piece, a positive integer up to 2^31.
   * @param options How many digests may run at once.
   * @throws {RangeError} When the piece length or `maxInFlight` is out of range.
   */
  constructor(pieceLength: number, options: PieceHasherOptions = {}) {
    checkPieceLength(pieceLength);
    const maxInFlight = options.maxInFlight ?? 4;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new RangeError(
        `Cannot hash pieces: maxInFlight must be at least 1, got ${maxInFlight}`,
      );
    }
    this.#pieceLength = pieceLength;
    this.#maxInFlight = maxInFlight;
  }

  /** Number of pieces started so far (after `digest`, the total). */
  get pieceCount(): number {
    return this.#count;
  }

  /**
   * Feeds the next bytes of the torrent data. The bytes may be reused once the promise settles.
   *
   * @param chunk The next bytes, in order.
   * @returns A promise that settles when the hasher is ready for more.
   * @throws {TypeError} When called after `digest`.
   */
  async update(chunk: Uint8Array): Promise<void> {
    if (this.#done) throw new TypeError("Cannot update piece hasher: digest() was already called");
    const pieceLength = this.#pieceLength;
    let position = 0;
    if (this.#filled > 0) {
      const take = Math.min(pieceLength - this.#filled, chunk.length);
      this.#buffer!.set(chunk.subarray(0, take), this.#filled);
      this.#filled += take;
      position = take;
      if (this.#filled === pieceLength) {
        this.#filled = 0;
        await this.#hash(this.#buffer!);
      }
    }
    while (chunk.length - position >= pieceLength) {
      await this.#hash(chunk.subarray(position, position + pieceLength));
      position += pieceLength;
    }
    if (position < chunk.length) {
      this.#buffer ??= new Uint8Array(pieceLength);
      this.#buffer.set(chunk.subarray(position), 0);
      this.#filled = chunk.length - position;
    }
  }

  /**
   * Hashes the last (possibly short) piece and returns all hashes.
   *
   * @returns The 20-byte hashes of all pieces, concatenated in order.
   * @throws {TypeError} When called twice.
   */
  async digest(): Promise<Uint8Array> {
    if (this.#done) throw new TypeError("Cannot digest piece hasher: digest() was already called");
    this.#done = true;
    if (this.#filled > 0) {
      const last = this.#buffer!.subarray(0, this.#filled);
      this.#filled = 0;
      await this.#hash(last);
    }
    await Promise.all(this.#inFlight);
    this.#inFlight = [];
    const out = new Uint8Array(this.#count * HASH_LENGTH);
    for (let i = 0; i < this.#count; i++) out.set(this.#hashes[i]!, i * HASH_LENGTH);
    this.#buffer = undefined;
    return out;
  }

  async #hash(piece: Uint8Array): Promise<void> {
    const index = this.#count++;
    // Web Crypto copies `piece` before digest() returns, so the buffer may be refilled at once.
    const done = crypto.subtle.digest("SHA-1", piece as Uint8Array<ArrayBuffer>).then((hash) => {
      this.#hashes[index] = new Uint8Array(hash);
    });
    this.#inFlight.push(done);
    if (this.#inFlight.length >= this.#maxInFlight) await this.#inFlight.shift();
  }
}

/**
 * Chooses a piece length for a torrent of the given size: the smallest power of two that yields
 * at most 2000 pieces (so between 1000 and 2000), clamped to 16 KiB .. 16 MiB.
 *
 * @param totalLength Total bytes of the torrent's data.
 * @returns The piece length in bytes.
 * @throws {RangeError} When the length is negative or not a safe integer.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { choosePieceLength } from "./create.ts";
 *
 * assert.equal(choosePieceLength(1000), 16384);
 * assert.equal(choosePieceLength(1024 ** 3), 1024 * 1024); // 1 GiB: 1024 pieces
 * assert.equal(choosePieceLength(2 ** 50), 16 * 1024 * 1024);
 * ```
 */
export function choosePieceLength(totalLength: number): number {
  if (!Number.isSafeInteger(totalLength) || totalLength < 0) {
    throw new RangeError(
      `Cannot choose a piece length: total length must be a non-negative safe integer, got ${totalLength}`,
    );
  }
  let pieceLength = MIN_CHOSEN_PIECE_LENGTH;
  while (pieceLength < MAX_CHOSEN_PIECE_LENGTH && totalLength / pieceLength > TARGET_MAX_PIECES) {
    pieceLength *= 2;
  }
  return pieceLength;
}

/** One file of a multi-file torrent to create. */
export interface CreateTorrentFile {
  /** Path components below the torrent's directory. */
  path: string[];
  /** The file's contents. */
  data: Uint8Array;
}

/** What {@linkcode createTorrent} builds a torrent of: one file, or a directory of files. */
export type CreateTorrentInput =
  | { name: string; data: Uint8Array }
  | { name: string; files: CreateTorrentFile[] };

/** Options for {@linkcode createTorrent}. */
export interface CreateTorrentOptions {
  /** Bytes per piece (default: {@linkcode choosePieceLength} of the total). */
  pieceLength?: number;
  /** One tracker URL, or BEP 12 tiers (the first URL also becomes `announce`). */
  announce?: string | string[][];
  /** Set the BEP 27 private flag. */
  private?: boolean;
  /** Free-form comment. */
  comment?: string;
  /** Name of the creating program. */
  createdBy?: string;
  /** BEP 19 web seed URLs. */
  urlList?: string[];
  /** Creation time in seconds since the epoch (default: none, so output is deterministic). */
  creationDate?: number;
  /** Aborts the hashing. */
  signal?: AbortSignal;
}

/** A created torrent: the `.torrent` bytes and their parsed form. */
export interface CreatedTorrent {
  /** The bencoded metainfo file. */
  torrent: Uint8Array;
  /** The same torrent, parsed. */
  metainfo: Metainfo;
}

/**
 * Creates a BitTorrent v1 torrent (BEP 3) from data in memory. Multi-file input is sorted by
 * the UTF-8 bytes of the whole `/`-joined path, as mktorrent and `createTorrentFromPath` do, so
 * that the same files always give the same info hash; the files' bytes are concatenated across file boundaries for hashing, as v1 does.
 * No creation date is written unless given, so the output is deterministic.
 *
 * @param input A name and data, or a directory name and files.
 * @param options Piece length, trackers and the optional fields.
 * @returns The torrent file's bytes and their parsed metainfo.
 * @throws {TypeError} When a name or path is unsafe (empty, `.`, `..`, absolute, containing
 * `/`, `\` or NUL), the file list is empty, or paths collide.
 * @throws {RangeError} When the piece length is not an integer from 1 to 2^31.
 *
 * @example Single file
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent } from "./create.ts";
 *
 * const data = new TextEncoder().encode("hello\0world");
 * const { metainfo } = await createTorrent({ name: "hello.txt", data }, {
 *   pieceLength: 4,
 *   announce: "http://127.0.0.1:6969/announce",
 * });
 * assert.equal(metainfo.pieceCount, 3);
 * assert.equal(metainfo.totalLength, 11);
 * assert.equal(metainfo.announce, "http://127.0.0.1:6969/announce");
 * ```
 */
export async function createTorrent(
  input: CreateTorrentInput,
  options: CreateTorrentOptions = {},
): Promise<CreatedTorrent> {
  const { signal } = options;
  signal?.throwIfAborted();
  checkComponent(input.name, "name");
  const multiFile = "files" in input;
  const files = multiFile ? sortedFiles(input.files) : [{ path: [input.name], data: input.data }];
  let totalLength = 0;
  for (const file of files) totalLength += file.data.length;
  if (!Number.isSafeInteger(totalLength)) {
    throw new RangeError(`Cannot create torrent: total length ${totalLength} is too large`);
  }
  const pieceLength = options.pieceLength ?? choosePieceLength(totalLength);
  checkPieceLength(pieceLength);

  const hasher = new PieceHasher(pieceLength);
  for (const file of files) {
    await hasher.update(file.data);
    signal?.throwIfAborted();
  }
  const pieces = await hasher.digest();

  const info = {
    name: input.name,
    "piece length": pieceLength,
    pieces,
    private: options.private ? 1 : undefined,
    length: multiFile ? undefined : totalLength,
    files: multiFile
      ? files.map((file) => ({ length: file.data.length, path: file.path }))
      : undefined,
  };
  const { announce, announceList } = trackerFields(options.announce);
  const torrent = encode({
    announce,
    "announce-list": announceList,
    comment: options.comment,
    "created by": options.createdBy,
    "creation date": options.creationDate,
    "url-list": options.urlList !== undefined && options.urlList.length > 0
      ? options.urlList
      : undefined,
    info,
  });
  return { torrent, metainfo: parseMetainfo(torrent) };
}

function checkComponent(component: string, what: string): void {
  if (typeof component !== "string") {
    throw new TypeError(`Cannot create torrent: ${what} must be a string, got ${typeof component}`);
  }
  const problem = pathComponentProblem(component);
  if (problem !== undefined) throw new TypeError(`Cannot create torrent: ${what} ${problem}`);
}

const utf8 = new TextEncoder();

function sortedFiles(files: CreateTorrentFile[]): CreateTorrentFile[] {
  if (files.length === 0) throw new TypeError("Cannot create torrent: files must not be empty");
  const keyed = files.map((file, index) => {
    if (!Array.isArray(file.path) || file.path.length === 0) {
      throw new TypeError(`Cannot create torrent: files[${index}].path must not be empty`);
    }
    file.path.forEach((component, i) => checkComponent(component, `files[${index}].path[${i}]`));
    return { file, key: utf8.encode(file.path.join("/")) };
  });
  keyed.sort((a, b) => compareBytes(a.key, b.key));
  const sorted = keyed.map((entry) => entry.file);
  const conflict = findPathConflict(sorted.map((file) => file.path));
  if (conflict !== undefined) {
    throw new TypeError(
      `Cannot create torrent: path ${
        JSON.stringify(sorted[conflict.index]!.path.join("/"))
      } collides with ${JSON.stringify(sorted[conflict.other]?.path.join("/"))}`,
    );
  }
  return sorted;
}
