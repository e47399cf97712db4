/**
 * Message Stream Encryption (MSE/PE) over a `Deno.Conn`: runs the handshake
 * state machines on a socket and wraps the socket so the BitTorrent protocol
 * runs on top unchanged (RC4 applied when it was selected).
 *
 * @module
 */

import { HandshakeError } from "../errors.ts";
import {
  MseInitiator,
  type MseInitiatorOptions,
  type MseMethod,
  MseResponder,
  type MseResponderOptions,
  type MseResult,
  type MseStep,
} from "./handshake.ts";
import type { Rc4 } from "./rc4.ts";

/** Default time allowed for an MSE handshake, in ms. */
export const DEFAULT_MSE_TIMEOUT_MS = 10_000;

/** The first 20 bytes of a plaintext BitTorrent handshake: 19, "BitTorrent protocol". */
const PLAIN_PREFIX = new Uint8Array([19, ...new TextEncoder().encode("BitTorrent protocol")]);
const READ_SIZE = 4096;

/** What {@linkcode MseConn} is built from. */
export interface MseConnInit {
  /** Bytes already received and decrypted, returned by `read` before anything else. */
  prefix?: Uint8Array;
  /** Cipher for bytes received from now on (RC4 mode). */
  decrypt?: Rc4;
  /** Cipher for bytes sent from now on (RC4 mode). */
  encrypt?: Rc4;
  /** The agreed SKEY, when the connection went through MSE. */
  infoHash?: Uint8Array;
}

/**
 * A `Deno.Conn` over another one, after an MSE handshake: `read` first
 * returns bytes already received (such as the initial payload IA), and in
 * RC4 mode reads are decrypted and writes encrypted. Without ciphers it is a
 * plain pass-through (used for a plaintext connection whose first bytes were
 * peeked).
 *
 * @example Replaying peeked bytes
 * ```ts
 * import { MseConn } from "./mse_conn.ts";
 * import assert from "node:assert/strict";
 *
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * using conn = new MseConn(await listener.accept(), { prefix: new Uint8Array([1, 2]) });
 * await client.write(new Uint8Array([3]));
 * const buffer = new Uint8Array(8);
 * assert.equal(await conn.read(buffer), 2);
 * assert.equal(await conn.read(buffer), 1);
 * assert.equal(buffer[0], 3);
 * ```
 */
export class MseConn implements Deno.Conn {
  readonly #inner: Deno.Conn;
  #prefix: Uint8Array;
  readonly #decrypt: Rc4 | undefined;
  readonly #encrypt: Rc4 | undefined;
  readonly #infoHash: Uint8Array | undefined;
  #readable: ReadableStream<Uint8Array<ArrayBuffer>> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;

  /**
   * Wraps a socket whose MSE handshake is done.
   *
   * @param inner The socket, positioned right after the handshake.
   * @param init Bytes already received, ciphers, agreed info hash.
   * @throws {TypeError} If only one of the two ciphers is given.
   */
  constructor(inner: Deno.Conn, init: MseConnInit = {}) {
    if ((init.decrypt === undefined) !== (init.encrypt === undefined)) {
      throw new TypeError("Cannot wrap connection: give both RC4 ciphers or neither");
    }
    this.#inner = inner;
    this.#prefix = init.prefix ?? new Uint8Array(0);
    this.#decrypt = init.decrypt;
    this.#encrypt = init.encrypt;
    this.#infoHash = init.infoHash;
  }

  /** `"rc4"` when the stream is encrypted, else `"plaintext"`. */
  get method(): MseMethod {
    return this.#encrypt ? "rc4" : "plaintext";
  }

  /** The info hash agreed during the MSE handshake (SKEY); undefined for plain connections. */
  get infoHash(): Uint8Array | undefined {
    return this.#infoHash;
  }

  /** The wrapped connection. */
  get inner(): Deno.Conn {
    return this.#inner;
  }

  /** The local address of the socket. */
  get localAddr(): Deno.Addr {
    return this.#inner.localAddr;
  }

  /** The remote address of the socket. */
  get remoteAddr(): Deno.Addr {
    return this.#inner.remoteAddr;
  }

  /**
   * Reads into `p`: buffered bytes first, then from the socket (decrypted in RC4 mode).
   *
   * @param p The buffer to fill.
   * @returns The count read, or null at the end of the stream.
   */
  read(p: Uint8Array): Promise<number | null> {
    const prefix = this.#prefix;
    if (prefix.length > 0) {
      const count = Math.min(p.length, prefix.length);
      p.set(prefix.subarray(0, count));
      this.#prefix = prefix.subarray(count);
      return Promise.resolve(count);
    }
    const decrypt = this.#decrypt;
    if (decrypt === undefined) return this.#inner.read(p);
    return this.#inner.read(p).then((count) => {
      if (count !== null && count > 0) decrypt.xor(p.subarray(0, count));
      return count;
    });
  }

  /**
   * Writes all of `p` (a copy is encrypted in RC4 mode; `p` is left intact).
   *
   * @param p The bytes to send.
   * @returns `p.length`.
   */
  async write(p: Uint8Array): Promise<number> {
    if (this.#encrypt === undefined) return await this.#inner.write(p);
    const bytes = this.#encrypt.xor(p.slice());
    let written = 0;
    while (written < bytes.length) written += await this.#inner.write(bytes.subarray(written));
    return p.length;
  }

  /** Closes the socket. */
  close(): void {
    this.#inner.close();
  }

  /** Closes the socket for writing. */
  closeWrite(): Promise<void> {
    return this.#inner.closeWrite();
  }

  /** Makes the socket keep the event loop alive. */
  ref(): void {
    this.#inner.ref();
  }

  /** Lets the event loop exit while the socket is open. */
  unref(): void {
    this.#inner.unref();
  }

  /**
   * Turns Nagle's algorithm off or on, when the socket supports it.
   *
   * @param noDelay True to send small writes at once.
   */
  setNoDelay(noDelay = true): void {
    const inner = this.#inner as Partial<Deno.TcpConn>;
    if (typeof inner.setNoDelay === "function") inner.setNoDelay(noDelay);
  }

  /** Bytes received, decrypted as `read` returns them. */
  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    if (this.#readable === undefined) {
      if (this.#decrypt === undefined && this.#prefix.length === 0) {
        this.#readable = this.#inner.readable;
      } else {
        this.#readable = new ReadableStream<Uint8Array<ArrayBuffer>>({
          pull: async (controller) => {
            const buffer = new Uint8Array(65536);
            const count = await this.read(buffer);
            if (count === null) {
              controller.close();
              this.#closeQuietly();
            } else controller.enqueue(buffer.subarray(0, count));
          },
          cancel: () => this.#closeQuietly(),
        });
      }
    }
    return this.#readable;
  }

  /** Bytes to send, encrypted in RC4 mode. */
  get writable(): WritableStream<Uint8Array> {
    if (this.#writable === undefined) {
      const encrypt = this.#encrypt;
      if (encrypt === undefined) {
        this.#writable = this.#inner.writable;
      } else {
        const writer = this.#inner.writable.getWriter();
        this.#writable = new WritableStream<Uint8Array>({
          // The sink runs one chunk at a time, so chunks are encrypted in wire order.
          write: async (chunk) => {
            await writer.write(encrypt.xor(chunk.slice()));
          },
          close: () => writer.close(),
          abort: (reason) => writer.abort(reason),
        }, { highWaterMark: 4 });
      }
    }
    return this.#writable;
  }

  /** Same as {@linkcode MseConn.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #closeQuietly(): void {
    try {
      this.#inner.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }
}

/** Options shared by {@linkcode acceptMse} and {@linkcode connectMse}. */
export interface MseDeadlineOptions {
  /** Time allowed for the handshake, in ms; defaults to 10 s. */
  timeoutMs?: number;
  /** Aborting closes the socket and rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** Options for {@linkcode acceptMse}. */
export interface AcceptMseOptions extends MseResponderOptions, MseDeadlineOptions {
  /** Info hashes we serve: the SKEY candidates. */
  infoHashes: Iterable<Uint8Array>;
  /** Bytes already read from `conn` (e.g. peeked), fed to the handshake first. */
  prefix?: Uint8Array;
}

/** Options for {@linkcode connectMse}. */
export interface ConnectMseOptions extends MseInitiatorOptions, MseDeadlineOptions {}

/**
 * Serves the receiving side (B) of an MSE handshake on `conn`. Takes
 * ownership of `conn`: it is closed if the handshake fails.
 *
 * @param conn An accepted socket whose peer starts with an MSE handshake.
 * @param options SKEY candidates, bytes already read, preferred mode, deadline.
 * @returns The wrapped connection; `read` first returns IA, the initial payload.
 * @throws {HandshakeError} If the handshake is invalid, names an unknown info hash,
 * or does not complete in time. Aborting `signal` rejects with `signal.reason`.
 *
 * @example Usage
 * ```ts
 * import { acceptMse, connectMse } from "./mse_conn.ts";
 * import assert from "node:assert/strict";
 *
 * const infoHash = new Uint8Array(20).fill(5);
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const dialled = Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port })
 *   .then((conn) => connectMse(conn, infoHash, { initialPayload: new Uint8Array([42]) }));
 * using server = await acceptMse(await listener.accept(), { infoHashes: [infoHash] });
 * using client = await dialled;
 * const buffer = new Uint8Array(4);
 * assert.equal(await server.read(buffer), 1);
 * assert.equal(buffer[0], 42);
 * assert.equal(client.method, "plaintext");
 * ```
 */
export async function acceptMse(conn: Deno.Conn, options: AcceptMseOptions): Promise<MseConn> {
  const responder = new MseResponder(options.infoHashes, options);
  return await drive(conn, options, options.prefix, (bytes) => responder.receive(bytes));
}

/**
 * Runs the initiating side (A) of an MSE handshake on `conn`. Takes
 * ownership of `conn`: it is closed if the handshake fails.
 *
 * @param conn A connected socket.
 * @param infoHash SKEY: the info hash of the torrent we want.
 * @param options Provided methods, initial payload (e.g. the BitTorrent handshake), deadline.
 * @returns The wrapped connection, in the mode the peer selected.
 * @throws {HandshakeError} If the peer's answer is invalid or late.
 * Aborting `signal` rejects with `signal.reason`.
 *
 * @example Usage
 * ```ts
 * import { acceptMse, connectMse, CRYPTO_RC4 } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const infoHash = new Uint8Array(20).fill(6);
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served = listener.accept().then((conn) => acceptMse(conn, { infoHashes: [infoHash] }));
 * using client = await connectMse(
 *   await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
 *   infoHash,
 *   { provide: CRYPTO_RC4 },
 * );
 * using server = await served;
 * assert.equal(client.method, "rc4");
 * await client.write(new Uint8Array([9, 8]));
 * const buffer = new Uint8Array(2);
 * let filled = 0;
 * while (filled < 2) filled += (await server.read(buffer.subarray(filled))) ?? 2;
 * assert.deepEqual(buffer, new Uint8Array([9, 8]));
 * ```
 */
export async function connectMse(
  conn: Deno.Conn,
  infoHash: Uint8Array,
  options: ConnectMseOptions = {},
): Promise<MseConn> {
  let initiator: MseInitiator;
  try {
    initiator = new MseInitiator(infoHash, options);
  } catch (error) {
    closeQuietly(conn);
    throw error;
  }
  return await drive(
    conn,
    options,
    undefined,
    (bytes) => initiator.receive(bytes),
    initiator.start(),
  );
}

/**
 * Whether the first bytes of an incoming connection can still be a plaintext
 * BitTorrent handshake (19, "BitTorrent protocol"); false means MSE.
 *
 * @param bytes The first bytes received (any number).
 * @returns True while `bytes` agrees with the plaintext handshake's start.
 *
 * @example Usage
 * ```ts
 * import { looksPlaintext } from "./mse_conn.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(looksPlaintext(new Uint8Array([19, 66])), true);
 * assert.equal(looksPlaintext(new Uint8Array([200])), false);
 * ```
 */
export function looksPlaintext(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, PLAIN_PREFIX.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== PLAIN_PREFIX[i]) return false;
  return true;
}

/** Length of the prefix {@linkcode looksPlaintext} needs to decide for sure. */
export const PLAINTEXT_PREFIX_LENGTH: number = PLAIN_PREFIX.length;

async function drive(
  conn: Deno.Conn,
  options: MseDeadlineOptions,
  prefix: Uint8Array | undefined,
  receive: (bytes: Uint8Array) => MseStep,
  first?: Uint8Array,
): Promise<MseConn> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_MSE_TIMEOUT_MS;
  const where = describe(conn);
  let failure: unknown;
  const fail = (reason: unknown) => {
    failure ??= reason;
    closeQuietly(conn);
  };
  const timer = setTimeout(
    () =>
      fail(
        new HandshakeError(
          `Cannot complete MSE handshake with ${where}: no answer within ${timeoutMs} ms`,
        ),
      ),
    timeoutMs,
  );
  const onAbort = () => fail(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    options.signal?.throwIfAborted();
    if (first !== undefined) await writeAll(conn, first);
    let result: MseResult | undefined;
    if (prefix !== undefined && prefix.length > 0) result = await apply(conn, receive(prefix));
    const buffer = new Uint8Array(READ_SIZE);
    while (result === undefined) {
      const count = await conn.read(buffer);
      if (count === null) {
        throw new HandshakeError(
          `Cannot complete MSE handshake with ${where}: peer closed the connection`,
        );
      }
      result = await apply(conn, receive(buffer.subarray(0, count)));
    }
    const init: MseConnInit = {
      prefix: concat(result.initialPayload, result.rest),
      infoHash: result.infoHash,
    };
    if (result.decrypt && result.encrypt) {
      init.decrypt = result.decrypt;
      init.encrypt = result.encrypt;
    }
    return new MseConn(conn, init);
  } catch (error) {
    closeQuietly(conn);
    if (failure !== undefined) throw failure;
    if (
      error instanceof HandshakeError || error instanceof TypeError || error instanceof RangeError
    ) {
      throw error;
    }
    const detail = error instanceof Error ? error.message : String(error);
    throw new HandshakeError(`Cannot complete MSE handshake with ${where}: ${detail}`, {
      cause: error,
    });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

async function apply(conn: Deno.Conn, step: MseStep): Promise<MseResult | undefined> {
  if (step.send !== undefined) await writeAll(conn, step.send);
  return step.result;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function describe(conn: Deno.Conn): string {
  const addr = conn.remoteAddr;
  if (addr.transport !== "tcp" && addr.transport !== "udp") return addr.transport;
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    // Already closed (by a timeout, an abort or the peer): nothing left to release.
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}
