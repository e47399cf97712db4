/**
 * Reading a torrent's bytes in order while it downloads: a pull-based `ReadableStream` over
 * verified pieces, with a sequential priority window ahead of the reader.
 *
 * @module
 */

/** Largest chunk a stream reads from storage at once (pieces may be several MiB). */
const MAX_CHUNK_BYTES = 1024 * 1024;
/** Bytes a stream asks the swarm for ahead of its reader, by default. */
const DEFAULT_READAHEAD_BYTES = 16 * 1024 * 1024;
/** Most pieces in one stream's priority window, however small the pieces. */
const MAX_WINDOW_PIECES = 128;

/**
 * What {@linkcode streamPieces} reads from: something that knows which pieces are verified,
 * can wait for one, and reads verified bytes back (a {@linkcode TorrentHandle} does).
 */
export interface PieceReader {
  /** Nominal piece length. */
  readonly pieceLength: number;
  /** Total length of the torrent. */
  readonly totalLength: number;
  /** Whether piece `index` is verified and stored. */
  has(index: number): boolean;
  /**
   * Resolves once piece `index` is verified and stored; rejects when it never will be (the
   * torrent was removed) or when `signal` aborts (with its reason).
   */
  waitFor(index: number, signal: AbortSignal): Promise<void>;
  /** Reads verified bytes at a torrent offset. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** Options for {@linkcode TorrentFileHandle.stream} and {@linkcode streamPieces}. */
export interface FileStreamOptions {
  /** First byte, inclusive (default 0). */
  start?: number;
  /** End, exclusive as in `Blob.slice` (default: the end of the file). */
  end?: number;
  /**
   * Bytes requested from the swarm ahead of the reader, in order (default 16 MiB, at most 128
   * pieces). Reading never buffers more than about two chunks of at most 1 MiB each, whatever
   * this is: the window steers which pieces are downloaded first, not what is held in memory.
   */
  readahead?: number;
  /** Cancels the stream: it errors with the signal's reason. */
  signal?: AbortSignal;
}

/** Options for {@linkcode streamPieces}: a torrent byte range and a priority callback. */
export interface StreamPiecesOptions {
  /** First torrent offset, inclusive. */
  start: number;
  /** Torrent offset to stop at, exclusive. */
  end: number;
  /** Bytes of priority window ahead of the reader (default 16 MiB, at most 128 pieces). */
  readahead?: number;
  /** Cancels the stream: it errors with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Told the missing pieces the reader needs next, most urgent first, whenever that changes;
   * `[]` once the stream ends, errors or is cancelled.
   */
  onWindow?: (pieces: readonly number[]) => void;
}

/**
 * A file of a torrent in a {@linkcode Client}: its place in the torrent and its bytes, as a
 * stream that follows the download.
 *
 * @example Reading the second file of a torrent as it downloads
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { MemoryStorage } from "../storage/mod.ts";
 * import { serveTorrent } from "../torrent/mod.ts";
 * import { Client } from "./client.ts";
 *
 * const files = [
 *   { path: ["a.txt"], data: new TextEncoder().encode("first file") },
 *   { path: ["b.txt"], data: new TextEncoder().encode("second file") },
 * ];
 * const { metainfo } = await createTorrent({ name: "pair", files }, { pieceLength: 16 });
 * const source = new MemoryStorage(metainfo.totalLength);
 * await source.write(0, new TextEncoder().encode("first filesecond file"));
 * await using seeder = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
 *
 * await using client = new Client({ port: 0, hostname: "127.0.0.1" });
 * const torrent = await client.add(metainfo, {
 *   storage: new MemoryStorage(metainfo.totalLength),
 *   peers: [{ host: "127.0.0.1", port: seeder.port }],
 * });
 * const file = torrent.files[1]!;
 * assert.equal(file.path, "b.txt");
 * assert.equal(file.offset, 10);
 * assert.equal(new TextDecoder().decode(await file.arrayBuffer()), "second file");
 * const head = await new Response(file.stream({ start: 0, end: 6 })).text();
 * assert.equal(head, "second");
 * ```
 */
export interface TorrentFileHandle {
  /** The path below the torrent's directory, `/`-separated (for one file: its name). */
  readonly path: string;
  /** The path's components, as in the metainfo. */
  readonly pathComponents: readonly string[];
  /** Size in bytes. */
  readonly length: number;
  /** Offset of the file's first byte in the torrent's data. */
  readonly offset: number;
  /** Fraction of the file's pieces verified, from 0 to 1. */
  readonly progress: number;
  /**
   * The file's bytes from `start` to `end`, in order, each chunk as soon as the pieces under it
   * are verified (read back from storage). While the stream waits, the pieces it needs next
   * are downloaded before any other. Pull-based: a slow reader holds at most about two chunks
   * (of at most 1 MiB) in memory.
   *
   * @param options Byte range (end exclusive), readahead window, abort signal.
   * @returns A stream of the bytes; it errors if the torrent is removed or the client closed
   * before the range is read.
   * @throws {RangeError} If the range is not within the file.
   */
  stream(options?: FileStreamOptions): ReadableStream<Uint8Array<ArrayBuffer>>;
  /**
   * The whole file, once every piece under it is verified.
   *
   * @param options Abort signal.
   * @returns The file's bytes.
   */
  arrayBuffer(options?: { signal?: AbortSignal }): Promise<ArrayBuffer>;
}

/**
 * Streams the bytes `start..end` of a torrent in order from a {@linkcode PieceReader}: each
 * pull waits for the piece under the read position, then reads at most to the end of that
 * piece (and at most 1 MiB) from storage. The queue holds one chunk, so a slow reader holds
 * at most about two chunks in memory. `onWindow` hears the missing pieces ahead of the
 * reader, the most urgent first, to download them first.
 *
 * @param reader Verified pieces and the storage they are read from.
 * @param options The torrent byte range, readahead, abort signal and window callback.
 * @returns The stream of bytes.
 * @throws {RangeError} If the range is not within the torrent.
 *
 * @example From pieces that arrive later
 * ```ts
 * import assert from "node:assert/strict";
 * import { type PieceReader, streamPieces } from "./file_stream.ts";
 *
 * const data = new TextEncoder().encode("abcdefghij");
 * const verified = new Set<number>();
 * const waiting = new Map<number, () => void>();
 * const reader: PieceReader = {
 *   pieceLength: 4,
 *   totalLength: data.length,
 *   has: (index) => verified.has(index),
 *   waitFor: (index) => new Promise((resolve) => waiting.set(index, resolve)),
 *   read: (offset, length) => Promise.resolve(data.slice(offset, offset + length)),
 * };
 * const windows: number[][] = [];
 * const stream = streamPieces(reader, {
 *   start: 2,
 *   end: 9,
 *   onWindow: (pieces) => windows.push([...pieces]),
 * });
 * const text = new Response(stream).text();
 * for (const index of [2, 1, 0]) {
 *   await new Promise((resolve) => setTimeout(resolve, 1));
 *   verified.add(index);
 *   waiting.get(index)?.();
 * }
 * assert.equal(await text, "cdefghi");
 * assert.deepEqual(windows[0], [0, 1, 2]);
 * assert.deepEqual(windows.at(-1), []);
 * ```
 */
export function streamPieces(
  reader: PieceReader,
  options: StreamPiecesOptions,
): ReadableStream<Uint8Array<ArrayBuffer>> {
  const { start, end, signal, onWindow } = options;
  const { pieceLength, totalLength } = reader;
  if (
    !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start ||
    end > totalLength
  ) {
    throw new RangeError(
      `Cannot stream bytes ${start}..${end}: outside the torrent's 0..${totalLength}`,
    );
  }
  const readahead = options.readahead ?? DEFAULT_READAHEAD_BYTES;
  if (!Number.isSafeInteger(readahead) || readahead < 0) {
    throw new RangeError(`Cannot stream: invalid readahead "${readahead}"`);
  }
  const windowPieces = Math.min(MAX_WINDOW_PIECES, Math.ceil(readahead / pieceLength) + 1);
  const lastPiece = end === start ? -1 : Math.floor((end - 1) / pieceLength);
  // Aborted on cancel too, so that a pending wait for a piece ends with the stream.
  const stop = new AbortController();
  const stopSignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  let position = start;
  let window: readonly number[] | undefined;
  let finished = false;

  const setWindow = (pieces: readonly number[]) => {
    if (window !== undefined && sameList(window, pieces)) return;
    window = pieces;
    onWindow?.(pieces);
  };
  const finish = () => {
    if (finished) return;
    finished = true;
    signal?.removeEventListener("abort", onAbort);
    setWindow([]);
  };
  let controller: ReadableStreamDefaultController<Uint8Array<ArrayBuffer>>;
  const onAbort = () => {
    finish();
    stop.abort(signal!.reason);
    controller.error(signal!.reason);
  };

  return new ReadableStream<Uint8Array<ArrayBuffer>>({
    start(c) {
      controller = c;
      if (signal?.aborted) {
        finished = true;
        c.error(signal.reason);
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      if (position >= end) {
        finish();
        c.close();
      }
    },
    async pull(c) {
      if (finished) return;
      const index = Math.floor(position / pieceLength);
      const ahead: number[] = [];
      for (let i = index; i <= lastPiece && ahead.length < windowPieces; i++) {
        if (!reader.has(i)) ahead.push(i);
      }
      setWindow(ahead);
      try {
        if (!reader.has(index)) await reader.waitFor(index, stopSignal);
        const chunkEnd = Math.min(end, (index + 1) * pieceLength, position + MAX_CHUNK_BYTES);
        const bytes = await reader.read(position, chunkEnd - position);
        if (finished) return;
        position = chunkEnd;
        c.enqueue(bytes as Uint8Array<ArrayBuffer>);
        if (position >= end) {
          finish();
          c.close();
        }
      } catch (error) {
        if (finished) return;
        finish();
        throw error;
      }
    },
    cancel(reason) {
      finish();
      stop.abort(reason);
    },
  }, { highWaterMark: 1 });
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
