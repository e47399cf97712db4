/**
 * Serving one peer's block requests (BEP 3 `request` / `piece`): storage reads run ahead of the
 * socket, and several writes stay in flight, so disk, event loop and network overlap.
 *
 * @module
 */

import { encodeMessageInto } from "../peer/message.ts";

/** A block a peer asked us for. */
export interface UploadRequest {
  /** Piece index. */
  index: number;
  /** Offset in the piece. */
  begin: number;
  /** Length in bytes (at most 16 KiB). */
  length: number;
}

/** What an {@linkcode Uploader} serves from and writes to. */
export interface UploaderOptions {
  /** Nominal piece length. */
  pieceLength: number;
  /** Total torrent length. */
  totalLength: number;
  /** Whether we hold piece `index`: a read may span several pieces, all held. */
  has(index: number): boolean;
  /**
   * Reads `length` verified bytes at `begin` of piece `index`; the range may run past the
   * piece into the following ones.
   */
  read(index: number, begin: number, length: number): Promise<Uint8Array>;
  /**
   * Like `read`, into `target` (`target.length` bytes); when given, span buffers are reused
   * instead of allocated per read.
   */
  readInto?(index: number, begin: number, target: Uint8Array): Promise<void>;
  /**
   * Writes encoded `piece` messages as one write, after any control messages queued before
   * them. Resolves once the socket took the bytes: `frames` is then reused.
   */
  write(frames: Uint8Array): Promise<void>;
  /** A read or write failed: the uploader stopped, the peer should be closed. */
  onError(error: unknown): void;
  /** Most requests queued; {@linkcode Uploader.add} refuses more. Defaults to 500. */
  maxQueued?: number;
}

/** Default {@linkcode UploaderOptions.maxQueued}. */
export const DEFAULT_MAX_QUEUED_UPLOADS = 500;

/**
 * Storage is read in spans of this many bytes, aligned in the torrent and clipped to the pieces
 * we hold: one read serves the blocks of several pieces, which clients ask for in a row. Every
 * storage read costs about the same fixed time (two thread-pool operations), so fewer, larger
 * reads serve faster.
 */
const SPAN_SIZE = 1024 * 1024;
/** Spans read ahead of the one being sent. */
const READ_AHEAD = 4;
/** Spans kept after serving, for blocks of them requested again or late. */
const SPANS_KEPT = READ_AHEAD + 2;
/**
 * Payload bytes written but not yet taken by the socket before the uploader waits: enough that
 * the socket never runs dry while the next span is read and encoded.
 */
const MAX_BYTES_IN_FLIGHT = 2 * SPAN_SIZE;
/** Length prefix, id, index and begin of a `piece` message (BEP 3). */
const PIECE_HEADER = 13;

interface Span {
  /** Torrent offset of the first byte; the key of a cached span. */
  start: number;
  /** Torrent offset after the last byte. */
  end: number;
  /** Whether the span is cached (aligned), rather than the exact bytes of one odd block. */
  cached: boolean;
  /** Settles once read; a failure is kept as a value until the span is served. */
  data: Promise<{ bytes: Uint8Array } | { error: unknown }>;
  /** The pooled buffer read into, returned to the pool once the span is evicted and read. */
  buffer: Uint8Array | undefined;
}

interface Write {
  bytes: number;
  done: Promise<unknown>;
}

/**
 * Serves a peer's block requests in arrival order, grouped by storage span: each queued
 * request's span (the aligned 1 MiB around it, within the pieces we hold) is read once, a few
 * spans ahead, and every queued request in it goes out as one write. Writes are not awaited
 * one by one: up to 2 MiB stays in flight, so the socket always has the next batch while the
 * following span is read.
 *
 * Requests must be validated (piece held, range inside the piece) before
 * {@linkcode Uploader.add}.
 *
 * @example Usage
 * ```ts
 * import { Uploader } from "./uploader.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new Uint8Array(40_000).map((_, i) => i % 251);
 * const writes: Uint8Array[] = [];
 * const uploader = new Uploader({
 *   pieceLength: 32_768,
 *   totalLength: data.length,
 *   has: () => true,
 *   read: (index, begin, length) => {
 *     const at = index * 32_768 + begin;
 *     return Promise.resolve(data.slice(at, at + length));
 *   },
 *   write: (frames) => {
 *     writes.push(frames.slice());
 *     return Promise.resolve();
 *   },
 *   onError: (error) => {
 *     throw error;
 *   },
 * });
 * uploader.add({ index: 1, begin: 0, length: 7_232 });
 * uploader.add({ index: 0, begin: 16_384, length: 16_384 });
 * await uploader.idle();
 * // Both blocks lie in one span: one read, one write of two `piece` messages, each a
 * // 13-byte header (length, id 7, index, begin) and the block.
 * assert.deepEqual(writes.map((w) => w.length), [13 + 7_232 + 13 + 16_384]);
 * assert.deepEqual(writes[0]!.subarray(0, 5), new Uint8Array([0, 0, 28, 73, 7]));
 * assert.equal(uploader.uploaded, 23_616);
 * ```
 */
export class Uploader {
  readonly #options: UploaderOptions;
  readonly #spanSize: number;
  readonly #maxQueued: number;
  #queue: UploadRequest[] = [];
  /** Spans read or being read, oldest first. */
  readonly #spans = new Map<number, Span>();
  readonly #writes: Write[] = [];
  /** Idle span buffers (`#spanSize` bytes each). */
  readonly #spanPool: Uint8Array[] = [];
  /** Idle send buffers (`#sendSize` bytes each). */
  readonly #sendPool: Uint8Array[] = [];
  readonly #sendSize: number;
  #bytesInFlight = 0;
  #uploaded = 0;
  #running: Promise<void> | undefined;
  #closed = false;

  /**
   * Creates an idle uploader.
   *
   * @param options Torrent geometry, storage read, socket send, error route.
   * @throws {RangeError} If the piece length is not positive.
   */
  constructor(options: UploaderOptions) {
    if (!(options.pieceLength > 0)) {
      throw new RangeError(
        `Cannot create uploader: piece length ${options.pieceLength} is not positive`,
      );
    }
    this.#options = options;
    this.#spanSize = Math.min(SPAN_SIZE, options.totalLength);
    this.#maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED_UPLOADS;
    // A whole span in 16 KiB blocks: the most one batch takes (see #take). Only a request
    // longer than a span, which a caller should not queue, gets a buffer of its own.
    this.#sendSize = this.#spanSize + PIECE_HEADER * Math.ceil(this.#spanSize / 16384);
  }

  /** Bytes of block payload the socket took. */
  get uploaded(): number {
    return this.#uploaded;
  }

  /** Requests waiting to be served. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Block payload bytes handed to `write` that the socket has not taken yet: at most 2 MiB plus
   * the batch (up to a span) that went past it.
   */
  get bytesInFlight(): number {
    return this.#bytesInFlight;
  }

  /**
   * Queues a validated request and starts serving.
   *
   * @param request The block.
   * @returns `false` if the queue is full or the uploader closed (the request is not queued).
   */
  add(request: UploadRequest): boolean {
    if (this.#closed || this.#queue.length >= this.#maxQueued) return false;
    this.#queue.push({ index: request.index, begin: request.begin, length: request.length });
    if (!this.#running) this.#start();
    return true;
  }

  /**
   * Drops a queued request (BEP 3 `cancel`); a block already written is not recalled.
   *
   * @param request The block.
   * @returns `true` if it was queued.
   */
  cancel(request: UploadRequest): boolean {
    const queue = this.#queue;
    for (let i = 0; i < queue.length; i++) {
      const r = queue[i]!;
      if (r.index === request.index && r.begin === request.begin && r.length === request.length) {
        queue.splice(i, 1);
        return true;
      }
    }
    return false;
  }

  /**
   * Drops every queued request, e.g. when we choke the peer.
   *
   * @returns The dropped requests, to reject under BEP 6.
   */
  clear(): UploadRequest[] {
    const dropped = this.#queue;
    this.#queue = [];
    return dropped;
  }

  /**
   * Resolves once nothing is queued and every write settled.
   *
   * @returns Resolves when idle; never rejects.
   */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
    await Promise.allSettled(this.#writes.map((w) => w.done));
  }

  /** Stops serving: queued requests and cached spans are dropped. */
  close(): void {
    this.#closed = true;
    this.#queue = [];
    this.#spans.clear();
    this.#spanPool.length = 0;
    this.#sendPool.length = 0;
  }

  #start(): void {
    this.#running = this.#serve().catch((error) => this.#fail(error)).finally(() => {
      this.#running = undefined;
      // Requests queued while the loop was winding down.
      if (this.#queue.length > 0 && !this.#closed) this.#start();
    });
  }

  #fail(error: unknown): void {
    if (this.#closed) return;
    this.close();
    this.#options.onError(error);
  }

  async #serve(): Promise<void> {
    while (!this.#closed && this.#queue.length > 0) {
      const first = this.#queue[0]!;
      const span = this.#span(first);
      this.#readAhead();
      const result = await span.data;
      if (this.#closed) return;
      if ("error" in result) throw result.error;
      this.#take(span, result.bytes);
      while (this.#bytesInFlight > MAX_BYTES_IN_FLIGHT) {
        await this.#writes[0]!.done;
        if (this.#closed) return;
      }
    }
  }

  /**
   * Writes the queued requests inside `span` (in queue order) as one batch of `piece` messages,
   * at most a send buffer's worth: a peer asking for the same blocks again and again gets no
   * larger batches than one that asks for each block once.
   */
  #take(span: Span, data: Uint8Array): void {
    const batch: UploadRequest[] = [];
    const rest: UploadRequest[] = [];
    const { start, end } = span;
    const pieceLength = this.#options.pieceLength;
    let size = 0;
    let payload = 0;
    for (const r of this.#queue) {
      const offset = r.index * pieceLength + r.begin;
      const fits = batch.length === 0 || size + PIECE_HEADER + r.length <= this.#sendSize;
      if (fits && offset >= start && offset + r.length <= end) {
        batch.push(r);
        size += PIECE_HEADER + r.length;
        payload += r.length;
      } else {
        rest.push(r);
      }
    }
    this.#queue = rest;
    if (batch.length === 0) return;
    const pooled = size <= this.#sendSize;
    const buffer = pooled
      ? this.#sendPool.pop() ?? new Uint8Array(this.#sendSize)
      : new Uint8Array(size);
    let offset = 0;
    for (const r of batch) {
      const at = r.index * pieceLength + r.begin - start;
      const block = data.subarray(at, at + r.length);
      offset += encodeMessageInto(
        { type: "piece", index: r.index, begin: r.begin, block },
        buffer,
        offset,
      );
    }
    const write: Write = { bytes: payload, done: Promise.resolve() };
    this.#bytesInFlight += payload;
    write.done = this.#options.write(buffer.subarray(0, size)).then(() => {
      this.#uploaded += payload;
    }).finally(() => {
      this.#bytesInFlight -= payload;
      const at = this.#writes.indexOf(write);
      if (at >= 0) this.#writes.splice(at, 1);
      // Settled, failed or not: the socket no longer reads the buffer.
      if (pooled && !this.#closed) this.#sendPool.push(buffer);
    });
    // Whether or not the serve loop awaits this write, a failure stops serving.
    write.done.catch((error) => this.#fail(error));
    this.#writes.push(write);
  }

  /** Starts reads for the spans of the next queued requests, up to {@linkcode READ_AHEAD}. */
  #readAhead(): void {
    const pieceLength = this.#options.pieceLength;
    const size = this.#spanSize;
    let started = 0;
    let previous: Span | undefined;
    for (const r of this.#queue) {
      const offset = r.index * pieceLength + r.begin;
      if (previous && offset >= previous.start && offset + r.length <= previous.end) continue;
      // A block across a span boundary is read alone when served, not ahead.
      if (Math.floor(offset / size) !== Math.floor((offset + r.length - 1) / size)) continue;
      previous = this.#span(r);
      if (++started >= READ_AHEAD) return;
    }
  }

  /**
   * The span holding a block, read now if not cached: the aligned {@linkcode SPAN_SIZE} bytes
   * around it, clipped to the run of held pieces around the block's piece; a block across a
   * span boundary (odd block sizes) is read alone.
   */
  #span(request: UploadRequest): Span {
    const { pieceLength, totalLength } = this.#options;
    const size = this.#spanSize;
    const offset = request.index * pieceLength + request.begin;
    const end = offset + request.length;
    let spanStart = Math.floor(offset / size) * size;
    let spanEnd = Math.min(spanStart + size, totalLength);
    if (end > spanEnd) return this.#read({ start: offset, end, cached: false });
    const first = Math.floor(spanStart / pieceLength);
    const last = Math.floor((spanEnd - 1) / pieceLength);
    for (let index = request.index - 1; index >= first; index--) {
      if (!this.#options.has(index)) {
        spanStart = (index + 1) * pieceLength;
        break;
      }
    }
    for (let index = request.index + 1; index <= last; index++) {
      if (!this.#options.has(index)) {
        spanEnd = index * pieceLength;
        break;
      }
    }
    const cached = this.#spans.get(spanStart);
    if (cached && cached.end >= end) {
      // Most recently used last: the span being served is never the one evicted.
      this.#spans.delete(spanStart);
      this.#spans.set(spanStart, cached);
      return cached;
    }
    // A span clipped before a piece we lacked then is read again, whole.
    if (cached) this.#evict(spanStart);
    const span = this.#read({ start: spanStart, end: spanEnd, cached: true });
    this.#spans.set(spanStart, span);
    if (this.#spans.size > SPANS_KEPT) this.#evict(this.#spans.keys().next().value!);
    return span;
  }

  #read(range: { start: number; end: number; cached: boolean }): Span {
    const pieceLength = this.#options.pieceLength;
    const index = Math.floor(range.start / pieceLength);
    const begin = range.start - index * pieceLength;
    const length = range.end - range.start;
    const readInto = this.#options.readInto;
    let buffer: Uint8Array | undefined;
    let read: Promise<Uint8Array>;
    if (range.cached && readInto) {
      buffer = this.#spanPool.pop() ?? new Uint8Array(this.#spanSize);
      const target = buffer.subarray(0, length);
      read = readInto(index, begin, target).then(() => target);
    } else {
      read = this.#options.read(index, begin, length);
    }
    return {
      ...range,
      data: read.then((bytes) => ({ bytes }), (error: unknown) => ({ error })),
      buffer,
    };
  }

  #evict(key: number): void {
    const span = this.#spans.get(key)!;
    this.#spans.delete(key);
    const buffer = span.buffer;
    if (!buffer) return;
    // A read in progress still fills the buffer: recycle it once the read settled.
    span.data.then((result) => {
      if (!("error" in result) && !this.#closed) this.#spanPool.push(buffer);
    });
  }
}
