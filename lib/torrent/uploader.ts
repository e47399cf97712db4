/**
 * Serving one peer's block requests (BEP 3 `request` / `piece`): storage reads run ahead of the
 * socket, and several writes stay in flight, so disk, event loop and network overlap.
 *
 * @module
 */

import type { PeerMessage } from "../peer/message.ts";

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
  /** Reads `length` verified bytes at `begin` of piece `index`. */
  read(index: number, begin: number, length: number): Promise<Uint8Array>;
  /**
   * Writes `piece` messages as one write, after any control messages queued before them.
   * Resolves once the socket took the bytes.
   */
  send(messages: PeerMessage[]): Promise<void>;
  /** A read or write failed: the uploader stopped, the peer should be closed. */
  onError(error: unknown): void;
  /** Most requests queued; {@linkcode Uploader.add} refuses more. Defaults to 500. */
  maxQueued?: number;
}

/** Default {@linkcode UploaderOptions.maxQueued}. */
export const DEFAULT_MAX_QUEUED_UPLOADS = 500;

/**
 * Storage is read in spans of this many bytes (or the piece, if smaller), aligned in the
 * piece: one read serves the 16 blocks libtorrent and most clients ask for in a row.
 */
const SPAN_SIZE = 256 * 1024;
/** Spans read ahead of the one being sent. */
const READ_AHEAD = 4;
/** Spans kept after serving, for blocks of them requested again or late. */
const SPANS_KEPT = READ_AHEAD + 4;
/**
 * Payload bytes written but not yet taken by the socket before the uploader waits: enough that
 * the socket never runs dry while the next span is read and encoded.
 */
const MAX_BYTES_IN_FLIGHT = 1024 * 1024;

interface Span {
  /** Span key: see {@linkcode Uploader.#key}. */
  key: number;
  index: number;
  begin: number;
  length: number;
  /** Settles once read; a failure is kept as a value until the span is served. */
  data: Promise<{ bytes: Uint8Array } | { error: unknown }>;
}

interface Write {
  bytes: number;
  done: Promise<unknown>;
}

/**
 * Serves a peer's block requests in arrival order, grouped by storage span: each queued
 * request's span is read once (whole, up to 256 KiB, a few spans ahead) and every queued
 * request in it goes out as one write. Writes are not awaited one by one: up to 1 MiB stays in
 * flight, so the socket always has the next batch while the following span is read.
 *
 * Requests must be validated (piece held, range inside the piece) before
 * {@linkcode Uploader.add}.
 *
 * @example Usage
 * ```ts
 * import { Uploader } from "./uploader.ts";
 * import type { PeerMessage } from "../peer/message.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new Uint8Array(40_000).map((_, i) => i % 251);
 * const sent: PeerMessage[] = [];
 * const uploader = new Uploader({
 *   pieceLength: 32_768,
 *   totalLength: data.length,
 *   read: (index, begin, length) => {
 *     const at = index * 32_768 + begin;
 *     return Promise.resolve(data.slice(at, at + length));
 *   },
 *   send: (messages) => {
 *     sent.push(...messages);
 *     return Promise.resolve();
 *   },
 *   onError: (error) => {
 *     throw error;
 *   },
 * });
 * uploader.add({ index: 1, begin: 0, length: 7_232 });
 * uploader.add({ index: 0, begin: 16_384, length: 16_384 });
 * await uploader.idle();
 * assert.deepEqual(sent.map((m) => m.type === "piece" && m.block.length), [7_232, 16_384]);
 * assert.equal(uploader.uploaded, 23_616);
 * ```
 */
export class Uploader {
  readonly #options: UploaderOptions;
  readonly #pieceCount: number;
  readonly #spanSize: number;
  readonly #maxQueued: number;
  #queue: UploadRequest[] = [];
  /** Spans read or being read, oldest first. */
  readonly #spans = new Map<number, Span>();
  readonly #writes: Write[] = [];
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
    this.#pieceCount = Math.ceil(options.totalLength / options.pieceLength);
    this.#spanSize = Math.min(SPAN_SIZE, options.pieceLength);
    this.#maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED_UPLOADS;
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
      const span = this.#span(first.index, first.begin, first.length);
      this.#readAhead();
      const result = await span.data;
      if (this.#closed) return;
      if ("error" in result) throw result.error;
      const messages = this.#take(span, result.bytes);
      if (messages.length === 0) continue;
      let bytes = 0;
      for (const m of messages) if (m.type === "piece") bytes += m.block.length;
      this.#write(messages, bytes);
      while (this.#bytesInFlight > MAX_BYTES_IN_FLIGHT) {
        await this.#writes[0]!.done;
        if (this.#closed) return;
      }
    }
  }

  /** Takes every queued request inside `span` (in queue order) as `piece` messages. */
  #take(span: Span, data: Uint8Array): PeerMessage[] {
    const messages: PeerMessage[] = [];
    const rest: UploadRequest[] = [];
    const end = span.begin + span.length;
    for (const r of this.#queue) {
      if (r.index === span.index && r.begin >= span.begin && r.begin + r.length <= end) {
        const at = r.begin - span.begin;
        messages.push({
          type: "piece",
          index: r.index,
          begin: r.begin,
          block: data.subarray(at, at + r.length),
        });
      } else {
        rest.push(r);
      }
    }
    this.#queue = rest;
    return messages;
  }

  #write(messages: PeerMessage[], bytes: number): void {
    const write: Write = { bytes, done: Promise.resolve() };
    this.#bytesInFlight += bytes;
    write.done = this.#options.send(messages).then(() => {
      this.#uploaded += bytes;
    }).finally(() => {
      this.#bytesInFlight -= bytes;
      const at = this.#writes.indexOf(write);
      if (at >= 0) this.#writes.splice(at, 1);
    });
    // Whether or not the serve loop awaits this write, a failure stops serving.
    write.done.catch((error) => this.#fail(error));
    this.#writes.push(write);
  }

  /** Starts reads for the spans of the next queued requests, up to {@linkcode READ_AHEAD}. */
  #readAhead(): void {
    let started = 0;
    let previous = -1;
    for (const r of this.#queue) {
      const key = this.#key(r.index, r.begin, r.length);
      if (key === previous) continue;
      previous = key;
      this.#span(r.index, r.begin, r.length);
      if (++started >= READ_AHEAD) return;
    }
  }

  /** Key of the aligned span holding a block, or -1 for a block across a span boundary. */
  #key(index: number, begin: number, length: number): number {
    const span = Math.floor(begin / this.#spanSize);
    if (Math.floor((begin + length - 1) / this.#spanSize) !== span) return -1;
    return index * Math.ceil(this.#options.pieceLength / this.#spanSize) + span;
  }

  /** The span holding a block, read now if not cached. */
  #span(index: number, begin: number, length: number): Span {
    const key = this.#key(index, begin, length);
    if (key >= 0) {
      const cached = this.#spans.get(key);
      if (cached) return cached;
    }
    let spanBegin = begin;
    let spanLength = length;
    if (key >= 0) {
      spanBegin = Math.floor(begin / this.#spanSize) * this.#spanSize;
      spanLength = Math.min(this.#spanSize, this.#pieceLengthAt(index) - spanBegin);
    }
    const span: Span = {
      key,
      index,
      begin: spanBegin,
      length: spanLength,
      data: this.#options.read(index, spanBegin, spanLength).then(
        (bytes) => ({ bytes }),
        (error: unknown) => ({ error }),
      ),
    };
    if (key >= 0) {
      this.#spans.set(key, span);
      if (this.#spans.size > SPANS_KEPT) {
        this.#spans.delete(this.#spans.keys().next().value!);
      }
    }
    return span;
  }

  #pieceLengthAt(index: number): number {
    const { pieceLength, totalLength } = this.#options;
    return index === this.#pieceCount - 1 ? totalLength - index * pieceLength : pieceLength;
  }
}
