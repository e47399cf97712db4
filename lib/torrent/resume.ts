/**
 * Fast, trustworthy resume: which pieces of a torrent are already on disk.
 *
 * A resume file records the verified-pieces bitfield together with each file's size and
 * modification time, taken right after the data was flushed. On the next start, a file whose
 * size and mtime are unchanged is trusted as recorded; pieces touching any file that changed
 * (or when no usable resume file exists) are re-hashed from disk. So a clean stop resumes
 * without hashing anything, and a crash re-hashes only the files written since the last save.
 *
 * Location: by default the resume file sits next to the output as a hidden file,
 * `<dir>/.<name>.dtresume` (see {@linkcode resumePathFor}): it travels with the data, needs no
 * per-user state directory, and is never mistaken for torrent content.
 *
 * @module
 */

import * as fs from "node:fs";
import * as nodePath from "node:path";
import type { Metainfo } from "../metainfo/mod.ts";
import { Bitfield, HashQueue } from "../piece/mod.ts";
import { FileMap } from "../storage/mod.ts";

/** The current resume file format version. */
export const RESUME_VERSION = 1;

/** One file as recorded in a resume file. */
export interface ResumeFileRecord {
  /** The file's path on disk, as given to {@linkcode createResumeData}. */
  path: string;
  /** Size in bytes at save time, or -1 if the file did not exist. */
  length: number;
  /** Modification time in ms since the epoch at save time (-1 if the file did not exist). */
  mtimeMs: number;
}

/** The content of a resume file (JSON). */
export interface ResumeData {
  /** Format version, {@linkcode RESUME_VERSION}. */
  version: number;
  /** The torrent's info hash, lowercase hex. */
  infoHash: string;
  /** Number of pieces in the torrent. */
  pieceCount: number;
  /** The verified pieces, as BEP 3 bitfield bytes in base64. */
  bitfield: string;
  /** Every file of the torrent, in metainfo order. */
  files: ResumeFileRecord[];
  /**
   * Set when the data was not synced to disk before this save: the boot it was saved in
   * (see {@linkcode currentBootId}). Such a file is trusted only within the same boot, while
   * the page cache still holds every write; after a restart (a power cut may have lost
   * unwritten pages) its pieces are hashed again.
   */
  bootId?: string;
}

/**
 * Returns the default resume file path for a download written to `outputPath` (a file for a
 * single-file torrent, a directory otherwise): a hidden `.dtresume` file beside it.
 *
 * @example Usage
 * ```ts
 * import { resumePathFor } from "./resume.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(resumePathFor("/data/ubuntu.iso"), "/data/.ubuntu.iso.dtresume");
 * assert.equal(resumePathFor("/data/album/"), "/data/.album.dtresume");
 * ```
 *
 * @param outputPath Where the torrent's content is written.
 * @returns The resume file path.
 * @throws {TypeError} If `outputPath` has no file name (e.g. `/`).
 */
export function resumePathFor(outputPath: string): string {
  const resolved = nodePath.resolve(outputPath);
  const name = nodePath.basename(resolved);
  if (name === "") {
    throw new TypeError(`Cannot choose resume file path: "${outputPath}" has no name`);
  }
  return nodePath.join(nodePath.dirname(resolved), `.${name}.dtresume`);
}

/** Options for {@linkcode createResumeData}. */
export interface CreateResumeDataOptions {
  /** The torrent's 20-byte info hash. */
  infoHash: Uint8Array;
  /** The verified pieces; copied at once, before the files are examined. */
  bitfield: Bitfield;
  /** The file paths on disk, in metainfo order (e.g. `FsStorage.paths`). */
  paths: readonly string[];
  /**
   * Whether the data was flushed (`storage.flush()`) just before. Defaults to `true`. When
   * `false`, the current boot is recorded and the file is only trusted within it; that
   * needs {@linkcode currentBootId}.
   */
  synced?: boolean;
}

/**
 * Snapshots resume data: copies the bitfield, then records each file's size and mtime.
 * Call it right after `storage.flush()`, with a bitfield holding only pieces whose writes had
 * completed before the flush; any later write changes a file's mtime, so that file is
 * re-hashed on the next start instead of trusted. Cost: one `stat` per file.
 *
 * @example Usage
 * ```ts
 * import { createResumeData } from "./resume.ts";
 * import { Bitfield } from "../piece/mod.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/a.bin`, new Uint8Array(10));
 * const bitfield = new Bitfield(3);
 * bitfield.set(1);
 * const data = await createResumeData({
 *   infoHash: new Uint8Array(20).fill(0xab),
 *   bitfield,
 *   paths: [`${dir}/a.bin`, `${dir}/missing.bin`],
 * });
 * assert.equal(data.infoHash, "ab".repeat(20));
 * assert.equal(data.bitfield, "QA==");
 * assert.equal(data.files[0]!.length, 10);
 * assert.deepEqual(data.files[1], { path: `${dir}/missing.bin`, length: -1, mtimeMs: -1 });
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param options Info hash, bitfield and file paths.
 * @returns The resume data, ready for {@linkcode saveResumeData}.
 * @throws {TypeError} If the info hash is not 20 bytes.
 * @throws {Error} If a file cannot be examined for a reason other than not existing, or if
 * `synced` is `false` where the boot cannot be identified.
 */
export async function createResumeData(options: CreateResumeDataOptions): Promise<ResumeData> {
  const { infoHash, bitfield, paths } = options;
  if (!(infoHash instanceof Uint8Array) || infoHash.length !== 20) {
    throw new TypeError("Cannot create resume data: info hash must be 20 bytes");
  }
  let bootId: string | undefined;
  if (options.synced === false) {
    bootId = currentBootId();
    if (bootId === undefined) {
      throw new Error("Cannot create resume data for unsynced data: the boot cannot be identified");
    }
  }
  const bits = bitfield.toBytes().toBase64();
  const files = await Promise.all(paths.map(async (path): Promise<ResumeFileRecord> => {
    const stat = await statFile(path);
    return { path, length: stat.length, mtimeMs: stat.mtimeMs };
  }));
  return {
    version: RESUME_VERSION,
    infoHash: infoHash.toHex(),
    pieceCount: bitfield.length,
    bitfield: bits,
    files,
    ...(bootId !== undefined ? { bootId } : {}),
  };
}

/**
 * Tells whether data must be synced before each resume save: when the caller asks for it, or
 * where the boot cannot be identified ({@linkcode currentBootId}), since only a known boot
 * makes an unsynced save safe to trust.
 *
 * @example Usage
 * ```ts
 * import { currentBootId, mustSyncBeforeResumeSave } from "./resume.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(mustSyncBeforeResumeSave(true), true);
 * assert.equal(mustSyncBeforeResumeSave(false), currentBootId() === undefined);
 * ```
 *
 * @param requested The caller's `fsync` choice.
 * @returns `true` to flush before saving (and save with `synced: true`).
 */
export function mustSyncBeforeResumeSave(requested: boolean | undefined): boolean {
  return requested === true || currentBootId() === undefined;
}

let bootIdCache: string | null | undefined;

/**
 * Identifies the running boot of the machine (Linux: `/proc/sys/kernel/random/boot_id`), or
 * returns `undefined` where that is not possible. Data written to the page cache survives
 * anything but a restart of the machine, so "same boot" is what lets resume data be trusted
 * without an `fsync`.
 *
 * @example Usage
 * ```ts
 * import { currentBootId } from "./resume.ts";
 * import assert from "node:assert/strict";
 *
 * const id = currentBootId();
 * if (Deno.build.os === "linux") assert.match(id!, /^[0-9a-f-]{36}$/);
 * assert.equal(currentBootId(), id);
 * ```
 *
 * @returns The boot id, or `undefined`.
 */
export function currentBootId(): string | undefined {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim() || null;
    } catch {
      // Not Linux, or no read permission: every save must then be synced.
      bootIdCache = null;
    }
  }
  return bootIdCache ?? undefined;
}

/**
 * Writes resume data atomically: to a temporary file beside `path`, `fsync`ed, then renamed
 * over `path`, and the directory `fsync`ed. A crash leaves either the old or the new file,
 * never a torn one. Cheap enough to call every 30 s and at stop.
 *
 * @example Usage
 * ```ts
 * import { loadResumeData, saveResumeData } from "./resume.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const data = { version: 1, infoHash: "00".repeat(20), pieceCount: 1, bitfield: "gA==", files: [] };
 * await saveResumeData(`${dir}/.x.dtresume`, data);
 * assert.deepEqual(await loadResumeData(`${dir}/.x.dtresume`), data);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path The resume file path.
 * @param data What to save.
 * @throws {Error} On I/O failure (the temporary file is removed).
 */
export async function saveResumeData(path: string, data: ResumeData): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(data) + "\n");
  const random = crypto.getRandomValues(new Uint8Array(6)).toHex();
  const temp = `${path}.${random}.tmp`;
  try {
    const handle = await fs.promises.open(temp, "wx", 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.promises.rename(temp, path);
  } catch (error) {
    await fs.promises.rm(temp, { force: true });
    throw new Error(`Cannot save resume data to "${path}"`, { cause: error });
  }
  await syncDirectory(nodePath.dirname(nodePath.resolve(path)));
}

/** Makes a rename durable by `fsync`ing its directory, where the platform allows that. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(dir, "r");
  } catch (error) {
    // Windows cannot open a directory; the rename is as durable as that platform allows.
    if (isCode(error, "EISDIR") || isCode(error, "EPERM") || isCode(error, "EACCES")) return;
    throw new Error(`Cannot sync directory "${dir}"`, { cause: error });
  }
  try {
    await handle.sync();
  } catch (error) {
    // Some file systems reject fsync on directories; the data file itself was synced.
    if (!isCode(error, "EINVAL") && !isCode(error, "EBADF")) {
      throw new Error(`Cannot sync directory "${dir}"`, { cause: error });
    }
  } finally {
    await handle.close();
  }
}

/**
 * Reads a resume file.
 *
 * @example Usage
 * ```ts
 * import { loadResumeData } from "./resume.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * assert.equal(await loadResumeData(`${dir}/none.dtresume`), undefined);
 * await Deno.writeTextFile(`${dir}/bad.dtresume`, "{not json");
 * await assert.rejects(loadResumeData(`${dir}/bad.dtresume`), SyntaxError);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path The resume file path.
 * @returns The data, or `undefined` if there is no such file.
 * @throws {SyntaxError} If the file is not valid resume data.
 * @throws {Error} If it cannot be read for another reason.
 */
export async function loadResumeData(path: string): Promise<ResumeData | undefined> {
  let text: string;
  try {
    text = await fs.promises.readFile(path, "utf8");
  } catch (error) {
    if (isCode(error, "ENOENT")) return undefined;
    throw new Error(`Cannot read resume data from "${path}"`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(`Cannot parse resume data "${path}": not JSON`, { cause: error });
  }
  const problem = resumeDataProblem(value);
  if (problem !== undefined) {
    throw new SyntaxError(`Cannot parse resume data "${path}": ${problem}`);
  }
  return value as ResumeData;
}

/** Describes what is wrong with a parsed resume file, or returns undefined if it is well-formed. */
function resumeDataProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "expected an object";
  }
  const data = value as Record<string, unknown>;
  if (data.version !== RESUME_VERSION) return `unsupported version "${String(data.version)}"`;
  if (typeof data.infoHash !== "string" || !/^[0-9a-f]{40}$/.test(data.infoHash)) {
    return "bad infoHash";
  }
  if (!Number.isSafeInteger(data.pieceCount) || (data.pieceCount as number) < 0) {
    return "bad pieceCount";
  }
  if (typeof data.bitfield !== "string") return "bad bitfield";
  if (data.bootId !== undefined && typeof data.bootId !== "string") return "bad bootId";
  if (!Array.isArray(data.files)) return "bad files";
  for (const [i, file] of data.files.entries()) {
    if (typeof file !== "object" || file === null) return `bad file ${i}`;
    const { path, length, mtimeMs } = file as Record<string, unknown>;
    if (typeof path !== "string") return `bad path of file ${i}`;
    if (!Number.isSafeInteger(length) || (length as number) < -1) return `bad length of file ${i}`;
    if (typeof mtimeMs !== "number" || !Number.isFinite(mtimeMs)) {
      return `bad mtimeMs of file ${i}`;
    }
  }
  return undefined;
}

/** The torrent facts {@linkcode checkExisting} needs; a {@linkcode Metainfo} fits. */
export type CheckExistingTorrent =
  & Pick<
    Metainfo,
    "infoHash" | "pieceLength" | "pieceHashes" | "pieceCount" | "totalLength"
  >
  & { files: readonly { length: number }[] };

/** Progress of a recheck, passed to `onProgress`. */
export interface RecheckProgress {
  /** Pieces examined so far (hashed, or skipped because their data is not on disk). */
  piecesChecked: number;
  /** Pieces to examine in total. */
  piecesToCheck: number;
  /** Pieces found valid so far, among those examined. */
  piecesValid: number;
}

/** How {@linkcode checkExisting} decided, passed to `onDecision`. */
export interface ResumeDecision {
  /** `all`: resume file trusted as is; `partial`: some files re-hashed; `none`: full recheck. */
  trusted: "all" | "partial" | "none";
  /** Why, in words (e.g. `no resume file`, `2 files changed since the last save`). */
  reason: string;
  /** How many pieces will be hashed. */
  piecesToCheck: number;
}

/** Options for {@linkcode checkExisting}. */
export interface CheckExistingOptions {
  /** The torrent (a parsed {@linkcode Metainfo} fits). */
  metainfo: CheckExistingTorrent;
  /** The file paths on disk, in metainfo order (e.g. `FsStorage.paths`). */
  paths: readonly string[];
  /** The resume file (see {@linkcode resumePathFor}); need not exist. */
  resumePath: string;
  /** Aborts the recheck; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called after each piece examined during a recheck. */
  onProgress?: (progress: RecheckProgress) => void;
  /** Called once, before any hashing, with the decision taken. */
  onDecision?: (decision: ResumeDecision) => void;
  /** Digests in flight; default a queue of 2. */
  hashQueue?: HashQueue;
}

/**
 * Finds which pieces are already on disk. A resume file that matches the torrent and whose
 * files are all unchanged (size and mtime) is trusted without hashing. Otherwise the pieces
 * touching changed files (or all pieces, without a usable resume file) are re-hashed from
 * disk: missing or short files make their pieces missing without reading, and so does a file
 * with no disk blocks at all (all holes, as storage leaves a freshly pre-sized file), so that a
 * new download is not hashed in full. A corrupt resume file is not an error: it only means a
 * full recheck. Every shortcut errs towards "missing": a piece is reported present only when
 * its hash matched, now or at the last save.
 *
 * @example Usage
 * ```ts
 * import { checkExisting } from "./resume.ts";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const data = new TextEncoder().encode("hello\0world");
 * const { metainfo } = await createTorrent({ name: "a.txt", data }, { pieceLength: 4 });
 * await Deno.writeFile(`${dir}/a.txt`, data.subarray(0, 6)); // pieces 0 whole, 1 partial
 * const have = await checkExisting({
 *   metainfo,
 *   paths: [`${dir}/a.txt`],
 *   resumePath: `${dir}/.a.txt.dtresume`,
 * });
 * assert.deepEqual([...have], [0]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param options Torrent, paths, resume file, progress callbacks, abort signal.
 * @returns The bitfield of pieces present and valid.
 * @throws {TypeError} If `paths` does not have one entry per torrent file.
 * @throws {Error} On a disk read failure other than a missing file.
 */
export async function checkExisting(options: CheckExistingOptions): Promise<Bitfield> {
  const { metainfo, paths, signal } = options;
  if (paths.length !== metainfo.files.length) {
    throw new TypeError(
      `Cannot check existing data: expected ${metainfo.files.length} paths, got "${paths.length}"`,
    );
  }
  signal?.throwIfAborted();
  const map = new FileMap(
    metainfo.files.map((file, i) => ({ path: [String(i)], length: file.length })),
  );
  const stats = await Promise.all(paths.map(statFile));
  const { bitfield, toCheck, decision } = await planCheck(options, map, stats);
  options.onDecision?.({ ...decision, piecesToCheck: toCheck.length });
  if (toCheck.length > 0) {
    await hashPieces(options, map, stats, toCheck, bitfield);
  }
  return bitfield;
}

interface FileStat {
  length: number;
  mtimeMs: number;
  /** No disk blocks allocated although the size is not zero: a fully sparse file. */
  allHoles: boolean;
}

interface CheckPlan {
  bitfield: Bitfield;
  toCheck: number[];
  decision: Omit<ResumeDecision, "piecesToCheck">;
}

/** Decides from the resume file which pieces to trust and which to hash. */
async function planCheck(
  options: CheckExistingOptions,
  map: FileMap,
  stats: FileStat[],
): Promise<CheckPlan> {
  const { metainfo, paths } = options;
  const count = metainfo.pieceCount;
  const all = () => Array.from({ length: count }, (_, i) => i);
  const full = (reason: string): CheckPlan => ({
    bitfield: new Bitfield(count),
    toCheck: all(),
    decision: { trusted: "none", reason },
  });
  let data: ResumeData | undefined;
  try {
    data = await loadResumeData(options.resumePath);
  } catch (error) {
    // A damaged resume file costs a recheck, never a failed start.
    return full(`unusable resume file: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (data === undefined) return full("no resume file");
  if (data.infoHash !== metainfo.infoHash.toHex()) {
    return full("resume file is for another torrent");
  }
  if (data.pieceCount !== count) return full("resume file has a different piece count");
  if (data.files.length !== paths.length) return full("resume file lists different files");
  if (data.bootId !== undefined && data.bootId !== currentBootId()) {
    return full("the machine restarted since the resume file was saved (its data was not synced)");
  }
  let recorded: Bitfield;
  try {
    recorded = Bitfield.fromBytes(Uint8Array.fromBase64(data.bitfield), count);
  } catch (error) {
    return full(`resume file has a bad bitfield: ${(error as Error).message}`);
  }
  const changed = new Uint8Array(paths.length);
  let changedCount = 0;
  for (let i = 0; i < paths.length; i++) {
    const record = data.files[i]!;
    const stat = stats[i]!;
    if (
      record.path !== paths[i] || record.length !== stat.length || record.mtimeMs !== stat.mtimeMs
    ) {
      changed[i] = 1;
      changedCount++;
    }
  }
  if (changedCount === 0) {
    return { bitfield: recorded, toCheck: [], decision: { trusted: "all", reason: "unchanged" } };
  }
  // Trust the recorded bit of every piece whose files are all unchanged; hash the rest.
  const bitfield = new Bitfield(count);
  const toCheck: number[] = [];
  for (let i = 0; i < count; i++) {
    let touched = false;
    for (const extent of map.pieceExtents(i, metainfo.pieceLength)) {
      if (changed[extent.fileIndex] === 1) {
        touched = true;
        break;
      }
    }
    if (touched) toCheck.push(i);
    else if (recorded.has(i)) bitfield.set(i);
  }
  const reason = `${changedCount} file${changedCount === 1 ? "" : "s"} changed since the last save`;
  return {
    bitfield,
    toCheck,
    decision: { trusted: toCheck.length === count ? "none" : "partial", reason },
  };
}

/**
 * Hashes `indices` (ascending) from disk, setting valid pieces in `bitfield`. Reads are
 * sequential and positional; digests run through the hash queue with a bounded window, so
 * memory stays at a few pieces whatever the torrent size.
 */
async function hashPieces(
  options: CheckExistingOptions,
  map: FileMap,
  stats: FileStat[],
  indices: number[],
  bitfield: Bitfield,
): Promise<void> {
  const { metainfo, paths, signal, onProgress } = options;
  const queue = options.hashQueue ?? new HashQueue({ concurrency: 2 });
  const window = 4;
  const pool: Uint8Array[] = [];
  const inFlight = new Set<Promise<void>>();
  const files = new ReadFiles(paths);
  const progress: RecheckProgress = {
    piecesChecked: 0,
    piecesToCheck: indices.length,
    piecesValid: 0,
  };
  const report = () => onProgress?.({ ...progress });
  let failure: { error: unknown } | undefined;
  try {
    for (let k = 0; k < indices.length; k++) {
      signal?.throwIfAborted();
      if (failure) throw failure.error;
      const index = indices[k]!;
      const extents = map.pieceExtents(index, metainfo.pieceLength);
      // A piece reaching past the end of a missing or short file cannot be there, nor one in a
      // file that is all holes (as storage leaves a new file it pre-sized): skip the read.
      if (
        extents.some((e) => {
          const stat = stats[e.fileIndex]!;
          return stat.allHoles || e.fileOffset + e.length > stat.length;
        })
      ) {
        progress.piecesChecked++;
        report();
        continue;
      }
      const length = extents.reduce((sum, e) => sum + e.length, 0);
      const buffer = pool.pop() ?? new Uint8Array(metainfo.pieceLength);
      const piece = buffer.subarray(0, length);
      let at = 0;
      for (const extent of extents) {
        await files.read(
          extent.fileIndex,
          piece.subarray(at, at + extent.length),
          extent.fileOffset,
        );
        at += extent.length;
      }
      // Files before this piece's last one are done with: pieces are visited in order.
      files.closeBefore(extents[extents.length - 1]!.fileIndex);
      const expected = metainfo.pieceHashes.subarray(index * 20, index * 20 + 20);
      const job: Promise<void> = queue.digest(piece).then(
        (digest) => {
          if (equalBytes(digest, expected)) {
            bitfield.set(index);
            progress.piecesValid++;
          }
          progress.piecesChecked++;
          report();
        },
        (error) => {
          failure ??= { error };
        },
      ).finally(() => {
        inFlight.delete(job);
        pool.push(buffer);
      });
      inFlight.add(job);
      if (inFlight.size >= window) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (failure) throw failure.error;
  } finally {
    // Never leave digests running or descriptors open behind an error or abort.
    await Promise.allSettled(inFlight);
    await files.closeAll();
  }
}

/** Read-only descriptors opened lazily and closed as the recheck moves past their files. */
class ReadFiles {
  readonly #paths: readonly string[];
  readonly #open = new Map<number, number>();

  constructor(paths: readonly string[]) {
    this.#paths = paths;
  }

  async read(fileIndex: number, into: Uint8Array, position: number): Promise<void> {
    let fd = this.#open.get(fileIndex);
    if (fd === undefined) {
      fd = await new Promise<number>((resolve, reject) =>
        fs.open(this.#paths[fileIndex]!, "r", (error, fd) => error ? reject(error) : resolve(fd))
      );
      this.#open.set(fileIndex, fd);
    }
    let done = 0;
    while (done < into.length) {
      const read = await new Promise<number>((resolve, reject) =>
        fs.read(
          fd,
          into,
          done,
          into.length - done,
          position + done,
          (error, n) => error ? reject(error) : resolve(n),
        )
      );
      if (read === 0) {
        throw new Error(
          `Cannot read "${this.#paths[fileIndex]}": file ends before offset ${position + done}`,
        );
      }
      done += read;
    }
  }

  closeBefore(fileIndex: number): void {
    for (const [index, fd] of this.#open) {
      if (index < fileIndex) {
        this.#open.delete(index);
        fs.closeSync(fd);
      }
    }
  }

  closeAll(): Promise<void> {
    for (const fd of this.#open.values()) fs.closeSync(fd);
    this.#open.clear();
    return Promise.resolve();
  }
}

/** Size and mtime of a file; a missing file reads as length -1, mtime -1. */
async function statFile(path: string): Promise<FileStat> {
  try {
    const stat = await fs.promises.stat(path);
    // `blocks` is 0 for a file of holes only; where the platform does not report it, assume data.
    const allHoles = stat.size > 0 && typeof stat.blocks === "number" && stat.blocks === 0;
    return { length: stat.size, mtimeMs: stat.mtimeMs, allHoles };
  } catch (error) {
    if (isCode(error, "ENOENT") || isCode(error, "ENOTDIR")) {
      return { length: -1, mtimeMs: -1, allHoles: false };
    }
    throw new Error(`Cannot examine "${path}"`, { cause: error });
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isCode(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null &&
    (error as { code?: unknown }).code === code;
}
