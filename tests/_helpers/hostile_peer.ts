/**
 * Hostile and slow peers for adversarial tests: raw wire connections built from our own codec
 * (no engine code), a listening {@linkcode HostilePeer} that runs a script against every
 * connection the engine dials, and a rate-limited honest {@linkcode SlowSeeder} that counts the
 * bytes it serves (so a test can tell what was downloaded twice).
 *
 * @module
 */

import {
  decodeHandshake,
  encodeHandshake,
  type Handshake,
  HANDSHAKE_LENGTH,
  reservedBits,
} from "../../lib/peer/handshake.ts";
import { encodeMessages, type PeerMessage } from "../../lib/peer/message.ts";
import { PeerMessageSplitter } from "../../lib/peer/message_streams.ts";
import { Bitfield } from "../../lib/piece/mod.ts";

/** A torrent's geometry, as in a `Metainfo`. */
export interface Geometry {
  infoHash: Uint8Array;
  pieceLength: number;
  pieceCount: number;
  totalLength: number;
}

/** True for the errors a socket gives when the other side went away or we closed it. */
export function isGoneError(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.Interrupted;
}

/** Resolves after `ms` milliseconds, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Races `promise` against a deadline; rejects naming `what` when the deadline passes first. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A raw TCP peer connection: handshake bytes, messages, raw bytes, and close detection. */
export class WireConn {
  readonly conn: Deno.TcpConn;
  readonly #splitter = new PeerMessageSplitter({ maxMessageLength: 4 * 1024 * 1024 });
  readonly #queue: PeerMessage[] = [];
  readonly #buffer = new Uint8Array(65536);
  #pending = new Uint8Array(0);
  #ended = false;
  #closed = false;
  /** Every `request` seen by {@linkcode WireConn.next}. */
  readonly requests: { index: number; begin: number; length: number }[] = [];

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  /** Dials `port` on 127.0.0.1. */
  static async dial(port: number): Promise<WireConn> {
    return new WireConn(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Whether the remote side closed (or reset) the connection, as seen by a read. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Reads the remote handshake (68 bytes exactly); `undefined` if the remote closed first. */
  async readHandshake(): Promise<Handshake | undefined> {
    const bytes = await this.#readExactly(HANDSHAKE_LENGTH);
    return bytes === undefined ? undefined : decodeHandshake(bytes);
  }

  /** Sends a handshake for `infoHash`. */
  async sendHandshake(
    infoHash: Uint8Array,
    options: { fast?: boolean; extensionProtocol?: boolean; peerId?: Uint8Array } = {},
  ): Promise<void> {
    await this.sendRaw(encodeHandshake({
      infoHash,
      peerId: options.peerId ?? crypto.getRandomValues(new Uint8Array(20)),
      reserved: reservedBits({
        fast: options.fast ?? false,
        extensionProtocol: options.extensionProtocol ?? false,
      }),
    }));
  }

  /** Sends messages in one write. */
  async send(...messages: PeerMessage[]): Promise<void> {
    await this.sendRaw(encodeMessages(messages));
  }

  /** Sends raw bytes. Throws if the connection is gone. */
  async sendRaw(bytes: Uint8Array): Promise<void> {
    let written = 0;
    try {
      while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));
    } catch (error) {
      // A write failing because the remote left counts as the remote closing.
      if (isGoneError(error) && !this.#closed) this.#ended = true;
      throw error;
    }
  }

  /** The next message, or `undefined` once the remote closed the connection. */
  async next(): Promise<PeerMessage | undefined> {
    while (this.#queue.length === 0) {
      const chunk = this.#pending.length > 0 ? this.#takePending() : await this.#read();
      if (chunk === undefined) return undefined;
      this.#splitter.push(chunk, this.#queue);
    }
    const message = this.#queue.shift()!;
    if (message.type === "request") {
      this.requests.push({ index: message.index, begin: message.begin, length: message.length });
    }
    return message;
  }

  /** Reads messages until one of type `type` arrives; `undefined` if the remote closed first. */
  async expect<T extends PeerMessage["type"]>(
    type: T,
  ): Promise<Extract<PeerMessage, { type: T }> | undefined> {
    for (;;) {
      const message = await this.next();
      if (message === undefined) return undefined;
      if (message.type === type) return message as Extract<PeerMessage, { type: T }>;
    }
  }

  /**
   * Reads (and discards) until the remote closes the connection.
   *
   * @returns `true` if it closed within `ms`, `false` if the deadline passed first.
   */
  async waitForClose(ms: number): Promise<boolean> {
    const timer = setTimeout(() => this.close(), ms);
    try {
      while ((await this.#read()) !== undefined) {
        // Discard.
      }
    } finally {
      clearTimeout(timer);
    }
    return this.#ended;
  }

  /** Closes the socket (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }

  #takePending(): Uint8Array {
    const chunk = this.#pending;
    this.#pending = new Uint8Array(0);
    return chunk;
  }

  async #readExactly(length: number): Promise<Uint8Array | undefined> {
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const chunk = this.#pending.length > 0 ? this.#takePending() : await this.#read();
      if (chunk === undefined) return undefined;
      const take = Math.min(chunk.length, length - filled);
      out.set(chunk.subarray(0, take), filled);
      filled += take;
      if (take < chunk.length) this.#pending = chunk.slice(take);
    }
    return out;
  }

  /** One read; a copy of the bytes, or `undefined` at end of stream, reset or our own close. */
  async #read(): Promise<Uint8Array | undefined> {
    if (this.#ended || this.#closed) return undefined;
    let count: number | null;
    try {
      count = await this.conn.read(this.#buffer);
    } catch (error) {
      if (!isGoneError(error)) throw error;
      // Our own close interrupts the read: that is not the remote closing.
      if (!this.#closed) this.#ended = true;
      return undefined;
    }
    if (count === null) {
      this.#ended = true;
      return undefined;
    }
    return this.#buffer.slice(0, count);
  }
}

/** What a {@linkcode HostilePeer} script gets for each connection. */
export interface HostileContext {
  geometry: Geometry;
  data: Uint8Array;
  /** Which connection this is, from 0. */
  connection: number;
  /** Aborted when the hostile peer is closed. */
  signal: AbortSignal;
}

/** Runs against one connection; resolves when done with it. */
export type HostileScript = (wire: WireConn, context: HostileContext) => Promise<void>;

/**
 * A listening peer that runs a script against every connection it accepts. It records how
 * many connections it saw and how many the other side closed, so a test can tell the engine
 * dropped it.
 */
export class HostilePeer implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #script: HostileScript;
  readonly #geometry: Geometry;
  readonly #data: Uint8Array;
  readonly #wires = new Set<WireConn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  readonly #accepting: Promise<void>;
  readonly #dropped = Promise.withResolvers<void>();
  #finishedRequests = 0;
  /** Connections accepted. */
  connections = 0;
  /** Connections the other side closed. */
  dropped = 0;
  /** Errors scripts threw that were not the connection going away. */
  readonly errors: unknown[] = [];

  constructor(options: { geometry: Geometry; data?: Uint8Array; script: HostileScript }) {
    this.#geometry = options.geometry;
    this.#data = options.data ?? new Uint8Array(options.geometry.totalLength);
    this.#script = options.script;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The port to dial. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** The address to give the engine. */
  get address(): { host: string; port: number } {
    return { host: "127.0.0.1", port: this.port };
  }

  /** `request` messages received so far, over all connections (as read by the scripts). */
  get requestCount(): number {
    let count = this.#finishedRequests;
    for (const wire of this.#wires) count += wire.requests.length;
    return count;
  }

  /** Resolves the first time the other side closes one of our connections. */
  get firstDrop(): Promise<void> {
    return this.#dropped.promise;
  }

  /** Stops listening and closes every connection, waiting for the scripts. */
  async close(): Promise<void> {
    this.#abort.abort();
    try {
      this.#listener.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
    for (const wire of this.#wires) wire.close();
    await this.#accepting;
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          return;
        }
        throw error;
      }
      const wire = new WireConn(conn);
      this.#wires.add(wire);
      const context = {
        geometry: this.#geometry,
        data: this.#data,
        connection: this.connections++,
        signal: this.#abort.signal,
      };
      const task = this.#run(wire, context);
      this.#tasks.add(task);
      task.then(() => this.#tasks.delete(task));
    }
  }

  async #run(wire: WireConn, context: HostileContext): Promise<void> {
    try {
      await this.#script(wire, context);
      // Whatever the script did, see whether the other side closes on us.
      if (!wire.ended && !context.signal.aborted) await wire.waitForClose(30_000);
    } catch (error) {
      if (!isGoneError(error)) this.errors.push(error);
    } finally {
      wire.close();
      if (this.#wires.delete(wire)) this.#finishedRequests += wire.requests.length;
      if (wire.ended) {
        this.dropped++;
        this.#dropped.resolve();
      }
    }
  }
}

/** Options for {@linkcode SlowSeeder}. */
export interface SlowSeederOptions {
  geometry: Geometry;
  /** The whole torrent content. */
  data: Uint8Array;
  /** Upload rate per connection; unlimited when omitted. */
  bytesPerSecond?: number;
}

/**
 * An honest seeder (BEP 3, no extensions) with an upload rate limit. It counts the block bytes
 * it writes to sockets, so tests can measure what a client downloaded.
 */
export class SlowSeeder implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #options: SlowSeederOptions;
  readonly #wires = new Set<WireConn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  readonly #accepting: Promise<void>;
  /** Block payload bytes written to sockets, over all connections. */
  bytesServed = 0;
  /** Connections accepted. */
  connections = 0;
  /** The piece index of every request received, in order. */
  readonly requestedPieces: number[] = [];
  /** Errors other than the peer going away. */
  readonly errors: unknown[] = [];

  constructor(options: SlowSeederOptions) {
    this.#options = options;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The port to dial. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** The address to give the engine. */
  get address(): { host: string; port: number } {
    return { host: "127.0.0.1", port: this.port };
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.#abort.abort();
    try {
      this.#listener.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
    for (const wire of this.#wires) wire.close();
    await this.#accepting;
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          return;
        }
        throw error;
      }
      this.connections++;
      const wire = new WireConn(conn);
      this.#wires.add(wire);
      const task = this.#serve(wire).catch((error) => {
        if (!isGoneError(error)) this.errors.push(error);
      }).finally(() => {
        wire.close();
        this.#wires.delete(wire);
      });
      this.#tasks.add(task);
      task.then(() => this.#tasks.delete(task));
    }
  }

  async #serve(wire: WireConn): Promise<void> {
    const { geometry, data, bytesPerSecond } = this.#options;
    const signal = this.#abort.signal;
    const remote = await wire.readHandshake();
    if (remote === undefined) return;
    await wire.sendHandshake(geometry.infoHash);
    const have = new Bitfield(geometry.pieceCount);
    have.setAll();
    await wire.send({ type: "bitfield", bitfield: have.toBytes() }, { type: "unchoke" });
    let nextFree = performance.now();
    for (;;) {
      const message = await wire.next();
      if (message === undefined || signal.aborted) return;
      if (message.type !== "request") continue;
      this.requestedPieces.push(message.index);
      const offset = message.index * geometry.pieceLength + message.begin;
      if (bytesPerSecond !== undefined) {
        const now = performance.now();
        nextFree = Math.max(nextFree, now) + (message.length / bytesPerSecond) * 1000;
        if (nextFree - now > 1) await sleep(nextFree - now, signal);
        if (signal.aborted) return;
      }
      const block = data.subarray(offset, offset + message.length);
      await wire.send({ type: "piece", index: message.index, begin: message.begin, block });
      this.bytesServed += block.length;
    }
  }
}

/**
 * The usual opening of a hostile seeder: reads the engine's handshake, answers it, and sends
 * a full bitfield and `unchoke`.
 *
 * @returns `false` if the engine went away first.
 */
export async function openAsSeeder(
  wire: WireConn,
  geometry: Geometry,
  options: { fast?: boolean; bitfield?: Uint8Array } = {},
): Promise<boolean> {
  const remote = await wire.readHandshake();
  if (remote === undefined) return false;
  await wire.sendHandshake(geometry.infoHash, { fast: options.fast ?? false });
  const have = new Bitfield(geometry.pieceCount);
  have.setAll();
  await wire.send({ type: "bitfield", bitfield: options.bitfield ?? have.toBytes() }, {
    type: "unchoke",
  });
  return true;
}

/** Counts this process's open file descriptors (Linux `/proc/self/fd`). */
export function openFdCount(): number {
  let count = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) count++;
  return count;
}
