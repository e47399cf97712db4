/**
 * File-system storage: positional reads and writes across the torrent's files.
 *
 * @module
 */

import * as fs from "node:fs";
import * as nodePath from "node:path";
import { type FileEntry, type FileExtent, FileMap } from "./file_map.ts";
import { resolveInside, safePathComponents } from "./path.ts";
import type { Storage } from "./storage.ts";

const OPEN_FLAGS = fs.constants.O_RDWR | fs.constants.O_CREAT |
  (fs.constants.O_NOFOLLOW ?? 0);

/** Options for {@linkcode FsStorage.open}. */
export interface FsStorageOptions {
  /** Output directory, or for `singleFile` the file itself. */
  root: string;
  /** Files in metainfo order (BEP 3); paths are sanitised before use. */
  files: FileEntry[];
  /** `root` names the single file of a single-file torrent. */
  singleFile?: boolean;
  /** Maximum file descriptors kept open; defaults to 64. */
  maxOpenFiles?: number;
  /**
   * Sync each file's written data in the background every 64 MiB, so that
   * {@linkcode FsStorage.flush} has little left to wait for. Defaults to `true`. Turn it off
   * when nothing will be flushed: the syncs cost disk writes and CPU while the data is
   * still arriving, and the kernel writes the page cache back by itself.
   */
  backgroundSync?: boolean;
  /**
   * Write into the page cache on the calling thread, in 32 KiB system calls, while the file's
   * first handle is idle and such writes stay fast. Defaults to `true`. A write slower than
   * {@linkcode FsStorageOptions.slowWriteMs} three times in a row (dirty-page throttling, a slow
   * disk) sends the writes to the runtime's blocking threads for the next 2 s, so a slow disk
   * never holds up the caller for long. Off: every write is queued on a blocking thread.
   */
  inlineWrites?: boolean;
  /**
   * An inline write taking longer than this many ms, plus 1 ms per 100 KB written, counts as
   * slow (see {@linkcode FsStorageOptions.inlineWrites}). Defaults to 2.
   */
  slowWriteMs?: number;
}

/** How {@linkcode FsStorage} carried out its writes, for diagnostics. */
export interface FsStorageWriteStats {
  /** Writes made on the calling thread. */
  inline: number;
  /** Writes queued on a blocking thread. */
  queued: number;
  /** Times inline writing was paused for 2 s, after 3 slow inline writes in a row. */
  pauses: number;
}

/**
 * Most handles kept open on one file, for reads and queued writes (see `inlineWrites`). Each
 * async operation is a hop between the event loop and a blocking thread: with one chain per
 * file, queued writes waited on the busy event loop between hops. A second chain, with its own
 * file position, keeps the kernel busy meanwhile. More do not write in parallel: buffered
 * writes to one file hold its inode lock, and the waiting threads spin on it (10-14% of
 * samples in `rwsem_spin_on_owner` with 4 chains in `deno task bench`).
 */
const MAX_LANES = 2;

/**
 * Size of each `write` system call of an inline write. The kernel sizes a new page-cache folio
 * from the length of the write: a 256 KiB write takes an order-6 block from the buddy
 * allocator's free lists, where this VM's free-page reporting leaves memory the host has taken
 * back, so the copy into it faults on the host page by page. Blocks up to 32 KiB (order 3)
 * come from the per-CPU lists of recently freed pages. Measured here writing 1 GiB in random
 * piece order (s of CPU, a quiet machine / the state in which the bench ran): 256 KiB writes
 * 0.6 / 1.6-2.0, 64 KiB 0.3 / 0.9, 32 KiB 0.35, 16 KiB 0.46 / 0.47, 4 KiB 1.0 / 1.4.
 */
const INLINE_WRITE_CHUNK = 32 * 1024;

/**
 * Slow inline writes in a row that pause inline writing: throttling slows every write, while
 * one slow write is more likely this thread losing its CPU to another process for a while.
 */
const SLOW_WRITES_TO_PAUSE = 3;

/** How long inline writes stay off after {@linkcode SLOW_WRITES_TO_PAUSE} slow ones. */
const INLINE_WRITE_PAUSE_MS = 2_000;

/** Default {@linkcode FsStorageOptions.slowWriteMs}. */
const DEFAULT_SLOW_WRITE_MS = 2;

/** Bytes per ms added to `slowWriteMs` for a write of that many bytes: 100 MB/s. */
const SLOW_WRITE_BYTES_PER_MS = 100_000;

/**
 * Tells whether an inline write of `bytes` that took `ms` was slow: slower than `baseMs` plus
 * 1 ms per 100 KB, i.e. throttled or waiting on the disk rather than copying into the page cache.
 *
 * @param bytes Bytes written.
 * @param ms Time the write took.
 * @param baseMs Allowance for any write.
 * @returns Whether inline writes should pause.
 */
export function isSlowInlineWrite(bytes: number, ms: number, baseMs: number): boolean {
  return ms > baseMs + bytes / SLOW_WRITE_BYTES_PER_MS;
}

/** One handle on a file, with its own file position and chain of operations. */
interface Lane {
  handle: Deno.FsFile;
  /** End of the chain of positional operations: each is a seek then a read or write. */
  tail: Promise<unknown>;
  /** Operations queued on this lane and not yet settled. */
  queued: number;
}

interface OpenFile {
  /** Index of the file in the torrent. */
  index: number;
  /** The first handle, undefined while opening. */
  file: Deno.FsFile | undefined;
  /** Handles of the file (the first is `file`); more are opened while all are busy. */
  lanes: Lane[];
  /** An extra lane being opened, if any. */
  opening: Promise<void> | undefined;
  /** No more lanes: opening one failed or reached another inode. */
  laneLimit: number;
  /** Inode of the first handle, which extra handles must match. */
  ino: number | null;
  dev: number;
  /** Operations currently using the file; it is never closed while in use. */
  users: number;
  /** Pending open, if any. */
  ready: Promise<void> | undefined;
  /** Bytes written since the last background `fdatasync` was queued. */
  unsynced: number;
  /** A background `fdatasync` is queued or running. */
  syncing: boolean;
}

/**
 * Written bytes after which a file's data is synced in the background. The page cache would
 * otherwise hold a whole download dirty (the kernel starts writing back at 10% of RAM) and
 * `flush()` at the end would wait for all of it: ~0.4 s per GiB here.
 */
const BACKGROUND_SYNC_BYTES = 64 * 1024 * 1024;

function fsOpen(path: string, flags: number, mode: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(path, flags, mode, (error, fd) => error ? reject(error) : resolve(fd));
  });
}

function fsClose(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.close(fd, (error) => error ? reject(error) : resolve());
  });
}

function fsFstat(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => {
    fs.fstat(fd, (error, stats) => error ? reject(error) : resolve(stats));
  });
}

class SymlinkSwapError extends Error {
  constructor(path: string) {
    super(`"${path}" changed between two opens`);
    this.name = "SymlinkSwapError";
  }
}

/**
 * Opens (creating) a file for positional I/O through `Deno.FsFile`, refusing a symlink: the
 * first open uses `O_NOFOLLOW` (which `Deno.open` cannot pass), the second must reach the
 * same inode, else the path was swapped in between.
 */
async function openNoFollow(path: string): Promise<Deno.FsFile> {
  const fd = await fsOpen(path, OPEN_FLAGS, 0o644);
  try {
    const expected = await fsFstat(fd);
    return await openSame(path, expected);
  } finally {
    await fsClose(fd);
  }
}

/** Opens `path` again, and checks that it is still the inode `expected`. */
async function openSame(
  path: string,
  expected: { ino: number | null; dev: number },
): Promise<Deno.FsFile> {
  const handle = await Deno.open(path, { read: true, write: true });
  try {
    const actual = await handle.stat();
    if (actual.ino !== expected.ino || actual.dev !== expected.dev) {
      throw new SymlinkSwapError(path);
    }
  } catch (error) {
    handle.close();
    throw error;
  }
  return handle;
}

function settle(): void {
  // Only orders the chain: the operation's own promise carries its error to its caller.
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

/**
 * Creates the directories between `root` and `path`, refusing symlinks planted on the way.
 */
async function makeParents(root: string, path: string): Promise<void> {
  const relative = nodePath.relative(root, nodePath.dirname(path));
  if (relative === "") return;
  let current = root;
  for (const part of relative.split(nodePath.sep)) {
    current = nodePath.join(current, part);
    let stats: fs.Stats;
    try {
      stats = await fs.promises.lstat(current);
    } catch (error) {
      if (!isCode(error, "ENOENT")) throw error;
      try {
        await fs.promises.mkdir(current);
      } catch (mkdirError) {
        // Another file of the torrent may have created it meanwhile.
        if (!isCode(mkdirError, "EEXIST")) throw mkdirError;
      }
      stats = await fs.promises.lstat(current);
    }
    if (stats.isSymbolicLink()) {
      throw new Error(`Cannot open storage: refusing to follow symlink "${current}"`);
    }
    if (!stats.isDirectory()) {
      throw new Error(`Cannot open storage: "${current}" is not a directory`);
    }
  }
}

/**
 * {@linkcode Storage} on the file system. Files are created on open (zero-length ones
 * too), extended sparsely to their exact length when shorter, and never truncated.
 * Writes and reads are positional (a seek then a read or write), split across files with
 * {@linkcode FileMap}. Reads, and writes while the file's first handle is busy or inline writes
 * are off or paused, are queued per handle through async `Deno.FsFile` ops that run off the
 * event loop; other writes go into the page cache on the calling thread in 32 KiB system calls
 * (`inlineWrites`): no hop to a blocking thread, and no second thread spinning on the file's
 * lock. A busy file gets up to 2 handles, so operations issued together run in any order: await
 * a write before reading its range back. Written data is synced in the background every 64 MiB
 * (unless `backgroundSync` is off), so {@linkcode FsStorage.flush} has little left to wait for. At most `maxOpenFiles` files stay open (least recently used
 * are closed). Symlinks inside the output directory are refused.
 *
 * @example Usage
 * ```ts
 * import { FsStorage } from "./fs_storage.ts";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * const storage = await FsStorage.open({
 *   root,
 *   files: [{ path: ["a.txt"], length: 3 }, { path: ["sub", "b.txt"], length: 3 }],
 * });
 * await storage.write(1, new Uint8Array([1, 2, 3, 4]));
 * assert.deepEqual(await storage.read(0, 6), new Uint8Array([0, 1, 2, 3, 4, 0]));
 * await storage.close();
 * assert.deepEqual(await Deno.readFile(`${root}/sub/b.txt`), new Uint8Array([3, 4, 0]));
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export class FsStorage implements Storage {
  readonly #map: FileMap;
  readonly #paths: string[];
  readonly #maxOpen: number;
  readonly #backgroundSyncBytes: number;
  readonly #inlineWrites: boolean;
  readonly #slowWriteMs: number;
  /** Inline writes are off until this time (ms, `performance.now()`), after slow ones. */
  #inlinePausedUntil = 0;
  /** Slow inline writes in a row. */
  #slowStreak = 0;
  readonly #writeStats: FsStorageWriteStats = { inline: 0, queued: 0, pauses: 0 };
  /** Open descriptors, least recently used first. */
  readonly #open = new Map<number, OpenFile>();
  /** The file last moved to the most recently used end of `#open`. */
  #mostRecent: OpenFile | undefined;
  /** Files written since the last flush. */
  readonly #dirty = new Set<number>();
  #closed = false;

  private constructor(
    map: FileMap,
    paths: string[],
    maxOpen: number,
    options: FsStorageOptions,
  ) {
    this.#map = map;
    this.#paths = paths;
    this.#maxOpen = maxOpen;
    this.#backgroundSyncBytes = options.backgroundSync ?? true ? BACKGROUND_SYNC_BYTES : Infinity;
    this.#inlineWrites = options.inlineWrites ?? true;
    this.#slowWriteMs = options.slowWriteMs ?? DEFAULT_SLOW_WRITE_MS;
  }

  /**
   * Opens (creating as needed) the torrent's files.
   *
   * @param options Root, files, single-file flag and descriptor limit.
   * @returns The storage.
   * @throws {RangeError} If a path escapes the root.
   * @throws {TypeError} If the options are invalid.
   * @throws {Error} If a symlink is found inside the output directory, or on I/O failure.
   */
  static async open(options: FsStorageOptions): Promise<FsStorage> {
    const maxOpen = options.maxOpenFiles ?? 64;
    if (!Number.isInteger(maxOpen) || maxOpen < 1) {
      throw new TypeError(`Cannot open storage: invalid maxOpenFiles "${maxOpen}"`);
    }
    const root = nodePath.resolve(options.root);
    const map = new FileMap(options.files);
    let paths: string[];
    if (options.singleFile) {
      if (options.files.length !== 1) {
        throw new TypeError(
          `Cannot open storage: single-file torrent needs exactly one file, got "${options.files.length}"`,
        );
      }
      paths = [root];
    } else {
      paths = options.files.map((file) => resolveInside(root, safePathComponents(file.path)));
      await fs.promises.mkdir(root, { recursive: true });
    }
    const slowWriteMs = options.slowWriteMs ?? DEFAULT_SLOW_WRITE_MS;
    if (typeof slowWriteMs !== "number" || Number.isNaN(slowWriteMs)) {
      throw new TypeError(`Cannot open storage: invalid slowWriteMs "${slowWriteMs}"`);
    }
    const storage = new FsStorage(map, paths, maxOpen, options);
    try {
      const seen = new Set<string>();
      for (let i = 0; i < paths.length; i++) {
        const path = paths[i]!;
        if (seen.has(path)) {
          throw new Error(`Cannot open storage: two files map to "${path}"`);
        }
        seen.add(path);
        if (!options.singleFile) await makeParents(root, path);
        const file = await storage.#acquire(i);
        try {
          const length = options.files[i]!.length;
          const handle = file.file!;
          if ((await handle.stat()).size < length) await handle.truncate(length);
        } finally {
          storage.#release(file);
        }
      }
    } catch (error) {
      await storage.close();
      throw error;
    }
    return storage;
  }

  /** Total torrent length in bytes. */
  get totalLength(): number {
    return this.#map.totalLength;
  }

  /** Absolute paths of the files, in metainfo order. */
  get paths(): readonly string[] {
    return this.#paths;
  }

  /** Number of descriptors currently open. */
  get openFileCount(): number {
    return this.#open.size;
  }

  /** How many writes were made inline and how many queued; see `inlineWrites`. */
  get writeStats(): FsStorageWriteStats {
    return { ...this.#writeStats };
  }

  /**
   * Writes `data` at torrent offset `offset`, split across files. `data` must not change
   * until the promise settles; a read sees the bytes once the write resolved.
   *
   * @param offset Torrent offset.
   * @param data Bytes to write (e.g. one verified piece).
   * @throws {RangeError} If the range runs past the end.
   * @throws {Error} On I/O failure or after close.
   */
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkOpen();
    const extents = this.#map.extents(offset, data.length);
    if (extents.length === 1) return await this.#writeExtent(extents[0]!, data);
    let at = 0;
    await Promise.all(extents.map((extent) => {
      const part = data.subarray(at, at + extent.length);
      at += extent.length;
      return this.#writeExtent(extent, part);
    }));
  }

  /**
   * Reads `length` bytes at torrent offset `offset`, across files.
   *
   * @param offset Torrent offset.
   * @param length Number of bytes.
   * @returns A new buffer.
   * @throws {RangeError} If the range runs past the end.
   * @throws {Error} On I/O failure, a file shorter than expected, or after close.
   */
  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.readInto(offset, out);
    return out;
  }

  /**
   * Reads `target.length` bytes at torrent offset `offset` into `target`, across files, so a
   * caller can reuse its buffers.
   *
   * @param offset Torrent offset.
   * @param target Where the bytes go; must not be touched until the promise settles.
   * @returns Resolves once `target` is filled.
   * @throws {RangeError} If the range runs past the end.
   * @throws {Error} On I/O failure, a file shorter than expected, or after close.
   *
   * @example Reuse one buffer
   * ```ts
   * import { FsStorage } from "./fs_storage.ts";
   * import assert from "node:assert/strict";
   *
   * const root = await Deno.makeTempDir();
   * const storage = await FsStorage.open({ root, files: [{ path: ["a"], length: 4 }] });
   * await storage.write(0, new Uint8Array([1, 2, 3, 4]));
   * const buffer = new Uint8Array(2);
   * await storage.readInto(2, buffer);
   * assert.deepEqual(buffer, new Uint8Array([3, 4]));
   * await storage.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.#checkOpen();
    const extents = this.#map.extents(offset, target.length);
    if (extents.length === 1) return await this.#readExtent(extents[0]!, target);
    let at = 0;
    await Promise.all(extents.map((extent) => {
      const part = target.subarray(at, at + extent.length);
      at += extent.length;
      return this.#readExtent(extent, part);
    }));
  }

  /** `fsync`s every file written since the last flush. */
  async flush(): Promise<void> {
    this.#checkOpen();
    const files = [...this.#dirty];
    this.#dirty.clear();
    for (const index of files) {
      const file = await this.#acquire(index);
      try {
        // After every write queued on any lane.
        await Promise.allSettled(file.lanes.map((lane) => lane.tail));
        await this.#positional(file, (handle) => handle.sync());
      } finally {
        this.#release(file);
      }
    }
  }

  /** Closes every descriptor. Callers finish their reads and writes first. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const files = [...this.#open.values()];
    this.#open.clear();
    this.#mostRecent = undefined;
    const errors: unknown[] = [];
    for (const file of files) {
      if (file.ready) {
        // Still opening: #openFile sees the closed flag and closes the descriptor itself;
        // an open failure goes to the caller that started the open.
        await Promise.allSettled([file.ready]);
        continue;
      }
      // Let queued operations finish first: their callers see their own results.
      await Promise.allSettled([file.opening, ...file.lanes.map((lane) => lane.tail)]);
      for (const lane of file.lanes) {
        try {
          lane.handle.close();
        } catch (error) {
          errors.push(error);
        }
      }
    }
    if (errors.length > 0) {
      throw new AggregateError(errors, "Cannot close storage: some files failed to close");
    }
  }

  async #writeExtent(extent: FileExtent, data: Uint8Array): Promise<void> {
    const file = await this.#acquire(extent.fileIndex);
    try {
      if (this.#writeInline(file, extent.fileOffset, data)) {
        this.#writeStats.inline++;
      } else {
        this.#writeStats.queued++;
        await this.#positional(file, async (handle) => {
          handle.seekSync(extent.fileOffset, Deno.SeekMode.Start);
          let done = 0;
          while (done < data.length) done += await handle.write(data.subarray(done));
        });
      }
      this.#dirty.add(extent.fileIndex);
      file.unsynced += data.length;
      if (file.unsynced >= this.#backgroundSyncBytes && !file.syncing) {
        this.#syncInBackground(file);
      }
    } finally {
      this.#release(file);
    }
  }

  /**
   * Writes on the calling thread, if inline writes are on and not paused, and nothing is queued
   * on the file's first handle (whose position this moves). No hop to a blocking thread and
   * back, and the kernel copies the data from the cache it was just hashed in.
   *
   * @returns Whether the data was written; `false` leaves it to the queued path.
   */
  #writeInline(file: OpenFile, offset: number, data: Uint8Array): boolean {
    const lane = file.lanes[0];
    if (!this.#inlineWrites || lane === undefined || lane.queued > 0) return false;
    const started = performance.now();
    if (started < this.#inlinePausedUntil) return false;
    const handle = lane.handle;
    handle.seekSync(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < data.length) {
      const end = Math.min(data.length, done + INLINE_WRITE_CHUNK);
      done += handle.writeSync(data.subarray(done, end));
    }
    if (!isSlowInlineWrite(data.length, performance.now() - started, this.#slowWriteMs)) {
      this.#slowStreak = 0;
    } else if (++this.#slowStreak >= SLOW_WRITES_TO_PAUSE) {
      this.#slowStreak = 0;
      this.#writeStats.pauses++;
      this.#inlinePausedUntil = performance.now() + INLINE_WRITE_PAUSE_MS;
    }
    return true;
  }

  /** Starts writing a file's dirty pages back to disk while the download goes on. */
  #syncInBackground(file: OpenFile): void {
    file.unsynced = 0;
    file.syncing = true;
    // Pinned while queued, so eviction does not close the handle under it.
    file.users++;
    this.#positional(file, (handle) => handle.syncData()).then(
      () => {},
      (error: unknown) => {
        // Only an early start of the work flush() does; flush() reports a real failure.
        if (!this.#closed) console.error(`Cannot sync in the background: ${error}`);
      },
    ).finally(() => {
      file.syncing = false;
      this.#release(file);
    });
  }

  async #readExtent(extent: FileExtent, into: Uint8Array): Promise<void> {
    const file = await this.#acquire(extent.fileIndex);
    try {
      await this.#positional(file, async (handle) => {
        handle.seekSync(extent.fileOffset, Deno.SeekMode.Start);
        let done = 0;
        while (done < into.length) {
          const read = await handle.read(into.subarray(done));
          if (read === null || read === 0) {
            throw new Error(
              `Cannot read storage: "${this.#paths[extent.fileIndex]}" ends before offset ${
                extent.fileOffset + done
              }`,
            );
          }
          done += read;
        }
      });
    } finally {
      this.#release(file);
    }
  }

  /**
   * Runs a seek-then-read/write on one of the file's handles (lanes), after the operations
   * queued before it on that lane. `Deno.FsFile` has no pread/pwrite; its async ops run on the
   * runtime's blocking threads, so the copy into the page cache (the dominant cost of writing
   * at hundreds of MiB/s) stays off the event loop, unlike `node:fs` callbacks, which Deno
   * runs on the calling thread. The seek is synchronous (an `lseek`, no page cache work): one
   * hop to a blocking thread per operation instead of two, and nothing else can move the
   * lane's position before its read or write runs.
   */
  #positional<T>(file: OpenFile, run: (handle: Deno.FsFile) => Promise<T>): Promise<T> {
    let lane = file.lanes[0]!;
    for (const other of file.lanes) if (other.queued < lane.queued) lane = other;
    if (lane.queued > 0) this.#addLane(file);
    lane.queued++;
    const result = lane.tail.then(() => run(lane.handle));
    lane.tail = result.then(settle, settle).finally(() => lane.queued--);
    return result;
  }

  /** Opens one more handle on a file whose handles are all busy, for later operations. */
  #addLane(file: OpenFile): void {
    if (file.opening || file.lanes.length >= file.laneLimit) return;
    const index = file.index;
    // Pinned while opening, so eviction does not close the file meanwhile.
    file.users++;
    file.opening = openSame(this.#paths[index]!, file).then(
      (handle) => {
        if (this.#closed || this.#open.get(index) !== file) handle.close();
        else file.lanes.push({ handle, tail: Promise.resolve(), queued: 0 });
      },
      (error: unknown) => {
        // Out of descriptors, or the path now names another file: carry on with the lanes
        // open, which stay correct.
        file.laneLimit = file.lanes.length;
        if (error instanceof SymlinkSwapError) {
          console.error(`Cannot open another handle: ${error.message}`);
        }
      },
    ).finally(() => {
      file.opening = undefined;
      this.#release(file);
    });
  }

  /** Returns an open descriptor for file `index`, pinned until {@linkcode #release}. */
  async #acquire(index: number): Promise<OpenFile> {
    let file = this.#open.get(index);
    if (file) {
      // Move to the most recently used end (re-inserting costs the map a slot, so not for the
      // file that is there already: one file written piece after piece).
      if (this.#mostRecent !== file) {
        this.#open.delete(index);
        this.#open.set(index, file);
        this.#mostRecent = file;
      }
    } else {
      file = {
        index,
        file: undefined,
        lanes: [],
        opening: undefined,
        laneLimit: MAX_LANES,
        ino: null,
        dev: 0,
        users: 0,
        ready: undefined,
        unsynced: 0,
        syncing: false,
      };
      file.ready = this.#openFile(index, file);
      this.#open.set(index, file);
      this.#mostRecent = file;
    }
    // Pinned synchronously, so eviction never closes a descriptor that is being opened or used.
    file.users++;
    if (file.ready) {
      try {
        await file.ready;
      } catch (error) {
        file.users--;
        throw error;
      }
    }
    if (this.#closed) {
      file.users--;
      throw new Error("Cannot use storage: closed");
    }
    this.#evict();
    return file;
  }

  #release(file: OpenFile): void {
    file.users--;
    this.#evict();
  }

  async #openFile(index: number, file: OpenFile): Promise<void> {
    const path = this.#paths[index]!;
    let handle: Deno.FsFile;
    try {
      handle = await openNoFollow(path);
    } catch (error) {
      if (this.#open.get(index) === file) this.#open.delete(index);
      if (isCode(error, "ELOOP") || error instanceof SymlinkSwapError) {
        throw new Error(`Cannot open storage: refusing to follow symlink "${path}"`, {
          cause: error,
        });
      }
      throw new Error(`Cannot open storage file "${path}"`, { cause: error });
    }
    if (this.#closed) {
      // close() ran while opening and no longer tracks this handle.
      handle.close();
      return;
    }
    const stat = await handle.stat();
    if (this.#closed) {
      handle.close();
      return;
    }
    file.file = handle;
    file.ino = stat.ino;
    file.dev = stat.dev;
    file.lanes.push({ handle, tail: Promise.resolve(), queued: 0 });
    file.ready = undefined;
  }

  /** Closes least recently used idle handles beyond the limit. */
  #evict(): void {
    if (this.#open.size <= this.#maxOpen) return;
    for (const [index, file] of this.#open) {
      if (this.#open.size <= this.#maxOpen) break;
      if (file.users > 0 || file.file === undefined) continue;
      this.#open.delete(index);
      for (const lane of file.lanes) {
        try {
          lane.handle.close();
        } catch (error) {
          // A failed close of an idle handle loses nothing written (no buffering here);
          // report it rather than swallowing it.
          console.error(`Cannot close "${this.#paths[index]}": ${(error as Error).message}`);
        }
      }
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("Cannot use storage: closed");
  }
}
