import { createHash } from "node:crypto";
import {
  type BencodeDict,
  BencodeSyntaxError,
  type BencodeValue,
  decode,
  isDict,
  kind,
  rawDictValue,
} from "../bencode/mod.ts";
import { findPathConflict, pathComponentProblem } from "./_path.ts";
import { skimDict } from "./_skim.ts";

/** One file of a torrent, in the order the files are laid out in the piece data. */
export interface TorrentFile {
  /** Path components below the torrent's directory (for a single-file torrent: `[name]`). */
  path: string[];
  /** Size in bytes. */
  length: number;
  /** Offset of the file's first byte in the concatenated torrent data. */
  offset: number;
  /** Set (to true) only for a BEP 47 padding file (`attr` contains `p`): its bytes are zeros. */
  padding?: boolean;
}

/** A parsed BitTorrent v1 metainfo (`.torrent`) file (BEP 3). */
export interface Metainfo {
  /** SHA-1 of the exact bytes of the `info` value as they stand in the file. */
  infoHash: Uint8Array;
  /** The exact bytes of the `info` value (a copy), as served by BEP 9 `ut_metadata`. */
  infoBytes: Uint8Array;
  /** The `announce` URL, when present and not empty. */
  announce?: string;
  /** Tracker tiers (BEP 12); `[[announce]]` when there is no `announce-list`. */
  announceList: string[][];
  /** Suggested name: the file name, or the directory name of a multi-file torrent. */
  name: string;
  /** Bytes per piece (the last piece may be shorter). */
  pieceLength: number;
  /** The SHA-1 hashes of the pieces, 20 bytes each, concatenated. */
  pieceHashes: Uint8Array;
  /** Number of pieces. */
  pieceCount: number;
  /** Sum of the file lengths. */
  totalLength: number;
  /** The files, in piece-data order. */
  files: TorrentFile[];
  /** True when the torrent has a `files` list (even with one file in it). */
  multiFile: boolean;
  /** BEP 27 private flag. */
  private: boolean;
  /** Free-form comment. */
  comment?: string;
  /** Name of the program that created the file. */
  createdBy?: string;
  /** Creation time, in seconds since the Unix epoch. */
  creationDate?: number;
  /** Web seed URLs (BEP 19 `url-list`). */
  urlList: string[];
}

/** Limits for {@linkcode parseMetainfo}, against hostile input. */
export interface ParseMetainfoOptions {
  /** Most files accepted (default 1,000,000). */
  maxFiles?: number;
  /** Most pieces accepted (default 1,000,000). */
  maxPieces?: number;
}

/**
 * A metainfo file that is not a valid BitTorrent v1 torrent. `field` names the offending part,
 * as a path such as `info.piece length` or `info.files[2].path[0]` (`torrent` for the whole file).
 *
 * @example Catching a bad torrent
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetainfoError, parseMetainfo } from "./metainfo.ts";
 *
 * assert.throws(
 *   () => parseMetainfo(new TextEncoder().encode("de")),
 *   (e: unknown) => e instanceof MetainfoError && e.field === "info",
 * );
 * ```
 */
export class MetainfoError extends Error {
  /** The offending field, e.g. `info.pieces`. */
  readonly field: string;

  /**
   * Makes the error.
   *
   * @param message The full message, starting with `Invalid torrent: `.
   * @param field The offending field.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, field: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MetainfoError";
    this.field = field;
  }
}

/** Largest piece length accepted: 2 GiB, so that piece offsets fit the wire's 32-bit fields. */
export const MAX_PIECE_LENGTH = 2 ** 31;
const DEFAULT_MAX_FILES = 1_000_000;
const DEFAULT_MAX_PIECES = 1_000_000;
const HASH_LENGTH = 20;
/** Deep enough for any real torrent; unknown keys may not nest deeper. */
const DECODE_OPTIONS = { maxDepth: 64, allowUnsortedKeys: true } as const;

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lenientUtf8 = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Parses a BitTorrent v1 metainfo file (BEP 3), single- or multi-file, validating every field.
 *
 * The info hash is the SHA-1 of the raw bytes of the `info` value in `bytes`, never of a
 * re-encoding, so it matches what every other client computes for the same file. Hashing is
 * synchronous (`node:crypto`), so parsing is too.
 *
 * Key order: the bencode is decoded strictly (no leading zeros, no duplicate keys, no trailing
 * bytes) except that dictionary keys need not be sorted. A few tools write unsorted keys;
 * since the info hash is taken over the raw bytes, the order does not change the torrent's
 * identity, and other clients (libtorrent among them) accept such files. Decoding leniently in
 * one pass gives the same result as "strict, then retry lenient on a key-order error" at half
 * the cost.
 *
 * Text: `name.utf-8` and `path.utf-8` are preferred when present. Names and paths that are not
 * valid UTF-8 are decoded with U+FFFD replacement characters (old torrents use legacy
 * encodings); so are `comment` and `created by`. URLs must be valid UTF-8. Unknown keys are
 * ignored. An empty `announce` is treated as absent. Hybrid v1+v2 torrents (BEP 52) are read as
 * their v1 part: `piece layers` (whose keys are raw bytes) is skipped, and BEP 47 padding files
 * appear in `files` with `padding: true`.
 *
 * @param bytes The contents of a `.torrent` file.
 * @param options Limits on the number of files and pieces.
 * @returns The parsed metainfo.
 * @throws {MetainfoError} When the input is not bencode (the `BencodeSyntaxError` is the
 * `cause`) or not a valid v1 torrent: a missing or mistyped field, `pieces` not a multiple of 20
 * or not matching the total length, a piece length of 0 or above 2^31, a negative length, both
 * or neither of `length` and `files`, an empty file list, an unsafe name or path component
 * (empty, `.`, `..`, absolute, containing `/`, `\` or NUL), colliding paths, a total length above
 * `Number.MAX_SAFE_INTEGER`, or more files or pieces than the limits.
 *
 * @example Parsing a single-file torrent
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode } from "../bencode/mod.ts";
 * import { parseMetainfo } from "./metainfo.ts";
 *
 * const torrent = encode({
 *   announce: "http://127.0.0.1:6969/announce",
 *   info: { length: 5, name: "a.txt", "piece length": 4, pieces: new Uint8Array(40) },
 * });
 * const meta = parseMetainfo(torrent);
 * assert.equal(meta.pieceCount, 2);
 * assert.deepEqual(meta.files, [{ path: ["a.txt"], length: 5, offset: 0 }]);
 * assert.deepEqual(meta.announceList, [["http://127.0.0.1:6969/announce"]]);
 * assert.equal(meta.infoHash.length, 20);
 * ```
 */
export function parseMetainfo(bytes: Uint8Array, options: ParseMetainfoOptions = {}): Metainfo {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`Cannot parse metainfo: expected a Uint8Array, got ${typeof bytes}`);
  }
  const maxFiles = options.maxFiles ?? DEFAULT_MAX_FILES;
  const maxPieces = options.maxPieces ?? DEFAULT_MAX_PIECES;

  const { top, rawInfo } = decodeTorrent(bytes);
  const info = requireDict(top, "info", "info");
  // The span of a value that decoded fine is always found; copy it so that the metainfo does
  // not pin (or share) the caller's buffer.
  const infoBytes = rawInfo!.slice();
  const infoHash = Uint8Array.from(createHash("sha1").update(infoBytes).digest());

  const name = readName(info, "info.name");
  const pieceLength = requireInteger(info, "piece length", "info.piece length");
  if (pieceLength <= 0) {
    throw new MetainfoError(
      `Invalid torrent: info.piece length must be a positive integer, got ${pieceLength}`,
      "info.piece length",
    );
  }
  if (pieceLength > MAX_PIECE_LENGTH) {
    throw new MetainfoError(
      `Invalid torrent: info.piece length must be at most ${MAX_PIECE_LENGTH}, got ${pieceLength}`,
      "info.piece length",
    );
  }
  const pieces = requireBytes(info, "pieces", "info.pieces");
  if (pieces.length % HASH_LENGTH !== 0) {
    throw new MetainfoError(
      `Invalid torrent: info.pieces length must be a multiple of 20, got ${pieces.length}`,
      "info.pieces",
    );
  }
  const pieceCount = pieces.length / HASH_LENGTH;
  if (pieceCount > maxPieces) {
    throw new MetainfoError(
      `Invalid torrent: info.pieces holds ${pieceCount} hashes, more than the limit of ${maxPieces}`,
      "info.pieces",
    );
  }

  const hasLength = info.length !== undefined;
  const hasFiles = info.files !== undefined;
  if (hasLength && hasFiles) {
    throw new MetainfoError(
      "Invalid torrent: info must have either length or files, not both",
      "info",
    );
  }
  if (!hasLength && !hasFiles) {
    throw new MetainfoError("Invalid torrent: info must have either length or files", "info");
  }
  const files = hasFiles
    ? readFiles(info.files!, maxFiles)
    : [{ path: [name], length: readLength(info.length!, "info.length"), offset: 0 }];
  const last = files[files.length - 1]!;
  const totalLength = last.offset + last.length;

  const expectedPieces = Math.ceil(totalLength / pieceLength);
  if (pieceCount !== expectedPieces) {
    throw new MetainfoError(
      `Invalid torrent: info.pieces holds ${pieceCount} hashes, expected ${expectedPieces} for ` +
        `${totalLength} bytes in pieces of ${pieceLength} bytes`,
      "info.pieces",
    );
  }

  const privateFlag = optionalInteger(info, "private", "info.private");
  const meta: Metainfo = {
    infoHash,
    infoBytes,
    announceList: [],
    name,
    pieceLength,
    pieceHashes: pieces.slice(),
    pieceCount,
    totalLength,
    files,
    multiFile: hasFiles,
    // libtorrent and others treat any non-zero value as private (BEP 27 writes 1).
    private: privateFlag !== undefined && privateFlag !== 0,
    urlList: readUrlList(top["url-list"]),
  };
  const announce = optionalUrl(top.announce, "announce");
  if (announce !== undefined && announce !== "") meta.announce = announce;
  meta.announceList = readAnnounceList(top["announce-list"]);
  if (meta.announceList.length === 0 && meta.announce !== undefined) {
    meta.announceList = [[meta.announce]];
  }
  const comment = optionalText(top, "comment", "comment");
  if (comment !== undefined) meta.comment = comment;
  const createdBy = optionalText(top, "created by", "created by");
  if (createdBy !== undefined) meta.createdBy = createdBy;
  const creationDate = optionalInteger(top, "creation date", "creation date");
  if (creationDate !== undefined) meta.creationDate = creationDate;
  return meta;
}

/**
 * Returns the 20-byte SHA-1 hash of one piece, as a view into `meta.pieceHashes`.
 *
 * @param meta The torrent.
 * @param index The piece index.
 * @returns The expected hash of the piece.
 * @throws {RangeError} When the index is not a piece of the torrent.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode } from "../bencode/mod.ts";
 * import { parseMetainfo, pieceHash } from "./metainfo.ts";
 *
 * const hashes = new Uint8Array(40).fill(7, 20);
 * const meta = parseMetainfo(encode({ info: { length: 5, name: "a", "piece length": 4, pieces: hashes } }));
 * assert.deepEqual(pieceHash(meta, 1), new Uint8Array(20).fill(7));
 * ```
 */
export function pieceHash(meta: Metainfo, index: number): Uint8Array {
  checkPieceIndex(meta, index);
  return meta.pieceHashes.subarray(index * HASH_LENGTH, (index + 1) * HASH_LENGTH);
}

/**
 * Returns the length of one piece: `meta.pieceLength`, except for a shorter last piece.
 *
 * @param meta The torrent.
 * @param index The piece index.
 * @returns The number of bytes in the piece.
 * @throws {RangeError} When the index is not a piece of the torrent.
 *
 * @example The last piece is short
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode } from "../bencode/mod.ts";
 * import { parseMetainfo, pieceLength } from "./metainfo.ts";
 *
 * const meta = parseMetainfo(
 *   encode({ info: { length: 10, name: "a", "piece length": 4, pieces: new Uint8Array(60) } }),
 * );
 * assert.deepEqual([0, 1, 2].map((i) => pieceLength(meta, i)), [4, 4, 2]);
 * ```
 */
export function pieceLength(meta: Metainfo, index: number): number {
  checkPieceIndex(meta, index);
  if (index < meta.pieceCount - 1) return meta.pieceLength;
  return meta.totalLength - index * meta.pieceLength;
}

function checkPieceIndex(meta: Metainfo, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= meta.pieceCount) {
    throw new RangeError(
      `Cannot find piece ${index}: the torrent has pieces 0 to ${meta.pieceCount - 1}`,
    );
  }
}

/** Top-level keys read by {@linkcode parseMetainfo}. */
const KNOWN_TOP_KEYS = [
  "announce",
  "announce-list",
  "comment",
  "created by",
  "creation date",
  "info",
  "url-list",
];

function notBencode(error: BencodeSyntaxError, where = ""): MetainfoError {
  return new MetainfoError(`Invalid torrent: not bencode: ${where}${error.message}`, "torrent", {
    cause: error,
  });
}

/**
 * Decodes the top-level dictionary and finds the raw bytes of `info`. Hybrid v1+v2 torrents
 * (BEP 52) carry `piece layers`, a dictionary keyed by raw SHA-256 roots, which the shared
 * decoder refuses (its keys must be UTF-8); for those, the top level is skimmed and only the
 * keys read here are decoded, each strictly.
 */
function decodeTorrent(bytes: Uint8Array): { top: BencodeDict; rawInfo: Uint8Array | undefined } {
  try {
    const top = decode(bytes, DECODE_OPTIONS);
    if (!isDict(top)) {
      throw new MetainfoError(
        `Invalid torrent: the top level must be a dictionary, got ${kind(top)}`,
        "torrent",
      );
    }
    return { top, rawInfo: rawDictValue(bytes, "info", DECODE_OPTIONS) };
  } catch (error) {
    if (!(error instanceof BencodeSyntaxError)) throw error;
    if (!error.message.includes("key is not valid UTF-8")) throw notBencode(error);
    // Otherwise fall through to the skimming path.
  }
  let spans;
  try {
    spans = skimDict(bytes, DECODE_OPTIONS.maxDepth);
  } catch (error) {
    if (error instanceof BencodeSyntaxError) throw notBencode(error);
    throw error;
  }
  const top: BencodeDict = Object.create(null);
  for (const key of KNOWN_TOP_KEYS) {
    const span = spans.get(key);
    if (span === undefined) continue;
    try {
      top[key] = decode(bytes.subarray(span.start, span.end), DECODE_OPTIONS);
    } catch (error) {
      // Offsets in the message are relative to the value, hence "in <key>".
      if (error instanceof BencodeSyntaxError) throw notBencode(error, `in ${key}: `);
      throw error;
    }
  }
  const info = spans.get("info");
  return { top, rawInfo: info && bytes.subarray(info.start, info.end) };
}

// ---- field readers: each throws MetainfoError naming the field ----

function missing(field: string): MetainfoError {
  return new MetainfoError(`Invalid torrent: ${field} is missing`, field);
}

function wrongType(field: string, expected: string, value: BencodeValue): MetainfoError {
  return new MetainfoError(
    `Invalid torrent: ${field} must be ${expected}, got ${kind(value)}`,
    field,
  );
}

function requireDict(dict: BencodeDict, key: string, field: string): BencodeDict {
  const value = dict[key];
  if (value === undefined) throw missing(field);
  if (!isDict(value)) throw wrongType(field, "a dictionary", value);
  return value;
}

function requireBytes(dict: BencodeDict, key: string, field: string): Uint8Array {
  const value = dict[key];
  if (value === undefined) throw missing(field);
  return asBytesField(value, field);
}

function asBytesField(value: BencodeValue, field: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw wrongType(field, "a byte string", value);
  return value;
}

function asIntegerField(value: BencodeValue, field: string): number {
  if (typeof value === "bigint") {
    throw new MetainfoError(
      `Invalid torrent: ${field} must be at most ${Number.MAX_SAFE_INTEGER}, got ${value}`,
      field,
    );
  }
  if (typeof value !== "number") throw wrongType(field, "an integer", value);
  return value;
}

function requireInteger(dict: BencodeDict, key: string, field: string): number {
  const value = dict[key];
  if (value === undefined) throw missing(field);
  return asIntegerField(value, field);
}

function optionalInteger(dict: BencodeDict, key: string, field: string): number | undefined {
  const value = dict[key];
  return value === undefined ? undefined : asIntegerField(value, field);
}

function optionalText(dict: BencodeDict, key: string, field: string): string | undefined {
  const value = dict[key];
  return value === undefined ? undefined : lenientUtf8.decode(asBytesField(value, field));
}

function optionalUrl(value: BencodeValue | undefined, field: string): string | undefined {
  if (value === undefined) return undefined;
  const bytes = asBytesField(value, field);
  try {
    return strictUtf8.decode(bytes);
  } catch (cause) {
    throw new MetainfoError(`Invalid torrent: ${field} must be UTF-8 text`, field, { cause });
  }
}

function readLength(value: BencodeValue, field: string): number {
  const length = asIntegerField(value, field);
  if (length < 0) {
    throw new MetainfoError(
      `Invalid torrent: ${field} must be a non-negative integer, got ${length}`,
      field,
    );
  }
  return length;
}

/** Decodes UTF-8 with replacement characters; short ASCII (most path components) fast. */
function decodeText(bytes: Uint8Array): string {
  if (bytes.length <= 64) {
    let ascii = true;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  return lenientUtf8.decode(bytes);
}

/** Reads a name or path component, preferring the `.utf-8` variant when one is present. */
function readComponent(value: BencodeValue, field: string): string {
  const component = decodeText(asBytesField(value, field));
  const problem = pathComponentProblem(component);
  if (problem !== undefined) {
    throw new MetainfoError(`Invalid torrent: ${field} ${problem}`, field);
  }
  return component;
}

function readName(info: BencodeDict, field: string): string {
  const utf8Name = info["name.utf-8"];
  if (utf8Name !== undefined) return readComponent(utf8Name, `${field}.utf-8`);
  const name = info.name;
  if (name === undefined) throw missing(field);
  return readComponent(name, field);
}

function readPath(file: BencodeDict, field: string): string[] {
  const utf8Path = file["path.utf-8"];
  const key = utf8Path !== undefined ? "path.utf-8" : "path";
  const pathField = `${field}.${key}`;
  const value = file[key];
  if (value === undefined) throw missing(pathField);
  if (!Array.isArray(value)) throw wrongType(pathField, "a list", value);
  if (value.length === 0) {
    throw new MetainfoError(`Invalid torrent: ${pathField} must not be empty`, pathField);
  }
  const path = new Array<string>(value.length);
  for (let i = 0; i < value.length; i++) {
    path[i] = readComponent(value[i]!, `${pathField}[${i}]`);
  }
  return path;
}

function readFiles(value: BencodeValue, maxFiles: number): TorrentFile[] {
  if (!Array.isArray(value)) throw wrongType("info.files", "a list", value);
  if (value.length === 0) {
    throw new MetainfoError("Invalid torrent: info.files must not be empty", "info.files");
  }
  if (value.length > maxFiles) {
    throw new MetainfoError(
      `Invalid torrent: info.files has ${value.length} entries, more than the limit of ${maxFiles}`,
      "info.files",
    );
  }
  const files: TorrentFile[] = new Array(value.length);
  let offset = 0;
  for (let i = 0; i < value.length; i++) {
    const field = `info.files[${i}]`;
    const entry = value[i]!;
    if (!isDict(entry)) throw wrongType(field, "a dictionary", entry);
    const lengthValue = entry.length;
    if (lengthValue === undefined) throw missing(`${field}.length`);
    const length = readLength(lengthValue, `${field}.length`);
    const file: TorrentFile = { path: readPath(entry, field), length, offset };
    const attr = entry.attr;
    if (attr !== undefined && asBytesField(attr, `${field}.attr`).includes(0x70 /* p */)) {
      file.padding = true;
    }
    files[i] = file;
    offset += length;
    if (offset > Number.MAX_SAFE_INTEGER) {
      throw new MetainfoError(
        `Invalid torrent: the total length exceeds ${Number.MAX_SAFE_INTEGER} bytes`,
        `${field}.length`,
      );
    }
  }
  const conflict = findPathConflict(
    files.map((file) => file.path),
    (index) => files[index]!.padding === true,
  );
  if (conflict !== undefined) {
    const field = `info.files[${conflict.index}].path`;
    throw new MetainfoError(
      `Invalid torrent: ${field} ${JSON.stringify(files[conflict.index]!.path.join("/"))} ` +
        `collides with info.files[${conflict.other}].path ${
          JSON.stringify(files[conflict.other]?.path.join("/"))
        }`,
      field,
    );
  }
  return files;
}

function readAnnounceList(value: BencodeValue | undefined): string[][] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw wrongType("announce-list", "a list", value);
  const tiers: string[][] = [];
  for (let i = 0; i < value.length; i++) {
    const tierValue = value[i]!;
    const field = `announce-list[${i}]`;
    if (!Array.isArray(tierValue)) throw wrongType(field, "a list", tierValue);
    const tier: string[] = [];
    for (let j = 0; j < tierValue.length; j++) {
      const url = optionalUrl(tierValue[j], `${field}[${j}]`)!;
      if (url !== "") tier.push(url);
    }
    if (tier.length > 0) tiers.push(tier);
  }
  return tiers;
}

/** BEP 19 allows `url-list` to be a single URL or a list of them. */
function readUrlList(value: BencodeValue | undefined): string[] {
  if (value === undefined) return [];
  if (value instanceof Uint8Array) {
    const url = optionalUrl(value, "url-list")!;
    return url === "" ? [] : [url];
  }
  if (!Array.isArray(value)) throw wrongType("url-list", "a list", value);
  const urls: string[] = [];
  for (let i = 0; i < value.length; i++) {
    const url = optionalUrl(value[i], `url-list[${i}]`)!;
    if (url !== "") urls.push(url);
  }
  return urls;
}
