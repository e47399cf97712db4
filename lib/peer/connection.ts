/**
 * A BitTorrent peer connection over TCP (BEP 3): the handshake, then a
 * stream of decoded messages in and coalesced writes out. The only file of
 * `lib/peer` that touches `Deno.Conn`.
 *
 * @module
 */

import { formatPeerAddress, type PeerAddress } from "./address.ts";
import { HandshakeError } from "./errors.ts";
import { decodeHandshake, encodeHandshake, type Handshake, HANDSHAKE_LENGTH } from "./handshake.ts";
import { PeerProtocolError } from "./errors.ts";
import { decodeMessage, encodeMessage, encodeMessages, type PeerMessage } from "./message.ts";
import { DEFAULT_MAX_MESSAGE_LENGTH } from "./message_streams.ts";
import { nextReadBufferSize } from "./_read_buffer.ts";

/**
 * Initial size of the socket read buffer: four blocks with their headers, few enough bytes
 * that an idle or slow connection stays cheap.
 */
const READ_BUFFER_SIZE = 64 * 1024;

/**
 * Largest the read buffer of a `reuseReadBuffer` connection grows to (see
 * {@linkcode nextReadBufferSize}). Fewer, larger reads from a fast peer: measured with one
 * libtorrent seeder on loopback (1 GiB, 6 interleaved rounds), 1 MiB reads took 1.80 s
 * against 1.93 s with 256 KiB, and the seeder spent less CPU refilling the socket.
 */
const MAX_READ_BUFFER_SIZE = 1024 * 1024;

/** Default time allowed for connecting plus the handshake. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Options shared by {@linkcode PeerConnection.connect} and {@linkcode PeerConnection.accept}. */
export interface PeerHandshakeOptions {
  /** Our 20-byte peer id. */
  peerId: Uint8Array;
  /** Our 8 reserved bytes; defaults to the extension protocol bit (BEP 10) only. */
  reserved?: Uint8Array;
  /** Aborts connecting and the handshake (not the established connection). */
  signal?: AbortSignal;
  /** Time allowed for connecting plus the handshake, in ms. Defaults to 10 s. */
  timeoutMs?: number;
  /** Largest message frame accepted; see `PeerMessageSplitter`. Defaults to 1 MiB + 13. */
  maxMessageLength?: number;
  /**
   * Read the socket into one reused buffer: `piece` blocks from
   * {@linkcode PeerConnection.messages} are then views valid only until the next message is
   * read (other payloads are copies). Saves the allocation and the garbage of every read, at
   * hundreds of MiB/s most of the memory footprint. The buffer starts at 64 KiB and doubles,
   * up to 1 MiB, while reads fill it. Defaults to `false`.
   */
  reuseReadBuffer?: boolean;
}

/**
 * Takes a `piece` message's block (BEP 3) without a message object: see
 * {@linkcode PeerConnection.setPieceHandler}. `block` is a view valid only during the call.
 */
export type PieceHandler = (index: number, begin: number, block: Uint8Array) => void;

/** Options for {@linkcode PeerConnection.connect}. */
export interface PeerConnectOptions extends PeerHandshakeOptions {
  /** The 20-byte info hash of the torrent we want from the peer. */
  infoHash: Uint8Array;
}

/** Options for {@linkcode PeerConnection.accept}. */
export interface PeerAcceptOptions extends PeerHandshakeOptions {
  /**
   * Tells whether we serve the torrent with this info hash. Answering
   * `false` closes the connection with a {@linkcode HandshakeError}.
   */
  lookup(infoHash: Uint8Array): boolean | Promise<boolean>;
}

/** What {@linkcode PeerConnection}'s constructor needs to know about a finished handshake. */
export interface PeerConnectionInit {
  /** The info hash both sides agreed on. */
  infoHash: Uint8Array;
  /** The remote peer's handshake. */
  remote: Handshake;
  /** The remote address; defaults to `conn.remoteAddr`. */
  address?: PeerAddress;
  /** Largest message frame accepted. Defaults to 1 MiB + 13. */
  maxMessageLength?: number;
  /** See {@linkcode PeerHandshakeOptions.reuseReadBuffer}. Defaults to `false`. */
  reuseReadBuffer?: boolean;
}

/**
 * A peer wire connection (BEP 3) whose handshake is complete.
 *
 * Incoming messages arrive on {@linkcode PeerConnection.messages}; it ends
 * (done) when either side closes the connection cleanly, and errors on a
 * socket error or a protocol violation ({@linkcode PeerProtocolError}), after
 * which the connection is closed. Cancelling `messages` closes the
 * connection. {@linkcode PeerConnection.send} encodes one message or a batch
 * into one buffer and writes it with backpressure.
 *
 * @example Usage
 * ```ts
 * import { PeerConnection } from "./connection.ts";
 * import { generatePeerId } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const infoHash = new Uint8Array(20).fill(1);
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const serving = listener.accept().then((conn) =>
 *   PeerConnection.accept(conn, {
 *     peerId: generatePeerId(),
 *     lookup: (hash) => hash.every((byte) => byte === 1),
 *   })
 * );
 * await using client = await PeerConnection.connect(
 *   { host: "127.0.0.1", port: listener.addr.port },
 *   { infoHash, peerId: generatePeerId() },
 * );
 * await using server = await serving;
 *
 * await client.send([{ type: "interested" }, { type: "have", index: 3 }]);
 * const reader = server.messages.getReader();
 * assert.deepEqual((await reader.read()).value, { type: "interested" });
 * assert.deepEqual((await reader.read()).value, { type: "have", index: 3 });
 * reader.releaseLock();
 * ```
 */
export class PeerConnection implements AsyncDisposable {
  #conn: Deno.Conn;
  #infoHash: Uint8Array;
  #remote: Handshake;
  #address: PeerAddress;
  #maxMessageLength: number;
  #reuse: boolean;
  /** Received bytes not yet decoded are `#buffer[#start, #end)`. */
  #buffer = new Uint8Array(READ_BUFFER_SIZE);
  /** Size for the next read buffer, from {@linkcode nextReadBufferSize}. */
  #nextSize = READ_BUFFER_SIZE;
  #start = 0;
  #end = 0;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #messages: ReadableStream<PeerMessage>;
  #controller!: ReadableStreamDefaultController<PeerMessage>;
  #messagesDone = false;
  #onPiece: PieceHandler | undefined;
  #closing = false;
  #closeReason: unknown;
  #pendingRead: Promise<unknown> | undefined;
  #lastWrite: Promise<unknown> | undefined;
  #closed: PromiseWithResolvers<void> = Promise.withResolvers();

  /**
   * Dials a peer, sends our handshake and waits for the peer's (BEP 3).
   *
   * Exactly the 68 handshake bytes are read, so messages the peer sends
   * right after its handshake are left for {@linkcode PeerConnection.messages}.
   *
   * @param address Where the peer listens.
   * @param options Info hash, our peer id and reserved bits, timeout, signal.
   * @returns The connection, ready for messages.
   * @throws {HandshakeError} If the peer answers with another info hash or
   * a malformed handshake, closes the connection, or does not answer within
   * `timeoutMs`.
   * @throws {TypeError} If the info hash, peer id or reserved bytes have the
   * wrong size.
   * @throws {Deno.errors.ConnectionRefused} Or another connect error if dialing fails.
   * Aborting `signal` rejects with `signal.reason`.
   *
   * @example Usage
   * ```ts
   * import { PeerConnection } from "./connection.ts";
   * import { HandshakeError } from "./errors.ts";
   * import { encodeHandshake } from "./handshake.ts";
   * import assert from "node:assert/strict";
   *
   * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
   * // A scripted peer that answers for another torrent.
   * const peer = listener.accept().then(async (conn) => {
   *   const theirs = encodeHandshake({ infoHash: new Uint8Array(20).fill(2), peerId: new Uint8Array(20) });
   *   await conn.write(theirs);
   *   await conn.read(new Uint8Array(68));
   *   conn.close();
   * });
   * await assert.rejects(
   *   PeerConnection.connect({ host: "127.0.0.1", port: listener.addr.port }, {
   *     infoHash: new Uint8Array(20).fill(1),
   *     peerId: new Uint8Array(20),
   *   }),
   *   HandshakeError,
   * );
   * await peer;
   * ```
   */
  static async connect(address: PeerAddress, options: PeerConnectOptions): Promise<PeerConnection> {
    const ours = encodeHandshake(handshakeFields(options.infoHash, options));
    const where = formatPeerAddress(address);
    return await withDeadline(where, options, async (signal, adopt) => {
      const conn = adopt(
        await Deno.connect({ hostname: address.host, port: address.port, signal }),
      );
      disableNagle(conn);
      await writeAll(conn, ours);
      const remote = await readHandshake(conn, where);
      if (!equalBytes(remote.infoHash, options.infoHash)) {
        throw new HandshakeError(
          `Peer answered with info hash ${toHex(remote.infoHash)}, expected ${
            toHex(options.infoHash)
          }`,
        );
      }
      return new PeerConnection(conn, {
        infoHash: options.infoHash,
        remote,
        address,
        ...limit(options),
      });
    });
  }

  /**
   * Serves an incoming connection: reads the peer's handshake, asks
   * `lookup` whether we have the torrent, then answers with our handshake
   * (BEP 3). Takes ownership of `conn`: it is closed if the handshake fails.
   *
   * @param conn An accepted TCP connection.
   * @param options Our peer id and reserved bits, `lookup`, timeout, signal.
   * @returns The connection, ready for messages.
   * @throws {HandshakeError} If the peer's handshake is malformed, asks for
   * an info hash `lookup` rejects, or does not arrive within `timeoutMs`.
   * Aborting `signal` rejects with `signal.reason`.
   *
   * @example Usage
   * ```ts
   * import { PeerConnection } from "./connection.ts";
   * import { decodeHandshake, encodeHandshake } from "./handshake.ts";
   * import assert from "node:assert/strict";
   *
   * const infoHash = new Uint8Array(20).fill(7);
   * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
   * const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
   * await client.write(encodeHandshake({ infoHash, peerId: new Uint8Array(20) }));
   *
   * await using server = await PeerConnection.accept(await listener.accept(), {
   *   peerId: new Uint8Array(20).fill(9),
   *   lookup: () => true,
   * });
   * const answer = new Uint8Array(68);
   * let filled = 0;
   * while (filled < 68) filled += (await client.read(answer.subarray(filled))) ?? 68;
   * assert.deepEqual(decodeHandshake(answer).peerId, new Uint8Array(20).fill(9));
   * assert.deepEqual(server.infoHash, infoHash);
   * client.close();
   * ```
   */
  static async accept(conn: Deno.Conn, options: PeerAcceptOptions): Promise<PeerConnection> {
    const address = remoteAddress(conn);
    const where = formatPeerAddress(address);
    disableNagle(conn);
    try {
      return await PeerConnection.#serve(conn, address, where, options);
    } catch (error) {
      // withDeadline closes an adopted conn; this covers failures before adoption.
      closeConn(conn);
      throw error;
    }
  }

  static async #serve(
    conn: Deno.Conn,
    address: PeerAddress,
    where: string,
    options: PeerAcceptOptions,
  ): Promise<PeerConnection> {
    return await withDeadline(where, options, async (_signal, adopt) => {
      adopt(conn);
      // Check our own fields before reading, so a bad argument fails fast.
      encodeHandshake(handshakeFields(new Uint8Array(20), options));
      const remote = await readHandshake(conn, where);
      if (!(await options.lookup(remote.infoHash))) {
        throw new HandshakeError(`Peer asked for unknown info hash ${toHex(remote.infoHash)}`);
      }
      await writeAll(conn, encodeHandshake(handshakeFields(remote.infoHash, options)));
      return new PeerConnection(conn, {
        infoHash: remote.infoHash,
        remote,
        address,
        ...limit(options),
      });
    });
  }

  /**
   * Wraps a connection whose handshake is already complete. Most callers
   * want {@linkcode PeerConnection.connect} or {@linkcode PeerConnection.accept}.
   *
   * @param conn The connection, positioned right after the peer's handshake.
   * @param init The agreed info hash and the peer's handshake.
   */
  constructor(conn: Deno.Conn, init: PeerConnectionInit) {
    this.#conn = conn;
    this.#infoHash = init.infoHash;
    this.#remote = init.remote;
    this.#address = init.address ?? remoteAddress(conn);
    const max = init.maxMessageLength ?? DEFAULT_MAX_MESSAGE_LENGTH;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw new RangeError(
        `Cannot create peer connection: maxMessageLength ${max} is not a non-negative integer`,
      );
    }
    this.#maxMessageLength = max;
    this.#reuse = init.reuseReadBuffer ?? false;
    this.#writer = conn.writable.getWriter();
    this.#messages = new ReadableStream<PeerMessage>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: (controller) => this.#pull(controller),
      cancel: (reason) => {
        this.#messagesDone = true;
        this.close(reason);
      },
      // No read-ahead: `pull` runs only once every message handed out was read, which is what
      // makes reusing the read buffer safe.
    }, { highWaterMark: 0 });
  }

  /** The 20-byte info hash of the torrent this connection is for. */
  get infoHash(): Uint8Array {
    return this.#infoHash;
  }

  /** Size of the socket read buffer now: 64 KiB, more for a fast `reuseReadBuffer` peer. */
  get readBufferSize(): number {
    return this.#buffer.length;
  }

  /** The remote peer's 20-byte peer id, from its handshake. */
  get remotePeerId(): Uint8Array {
    return this.#remote.peerId;
  }

  /** The remote peer's 8 reserved bytes, from its handshake. */
  get remoteReserved(): Uint8Array {
    return this.#remote.reserved;
  }

  /** The remote peer's address. */
  get address(): PeerAddress {
    return this.#address;
  }

  /**
   * Messages from the peer, decoded. `piece` blocks are views into the
   * read buffer (valid only until the next message is read when
   * `reuseReadBuffer` is on). Ends when the connection closes; errors with a
   * {@linkcode PeerProtocolError} or socket error, which also closes the
   * connection; as with any stream error, messages not yet read are
   * dropped. Cancelling it closes the connection.
   */
  get messages(): ReadableStream<PeerMessage> {
    return this.#messages;
  }

  /**
   * Hands `piece` messages (BEP 3) to `handler`, called synchronously while
   * {@linkcode PeerConnection.messages} is being read, instead of enqueueing
   * them: no message object, read result or promise per block. Order is kept:
   * a `piece` that follows another message still waiting in `messages` is
   * enqueued as usual. An exception thrown by `handler` errors `messages` and
   * closes the connection, as a protocol violation does.
   *
   * @param handler Takes each block; `block` is a view valid only during the
   * call. `undefined` turns the fast path off.
   *
   * @example Usage
   * ```ts
   * import { PeerConnection } from "./connection.ts";
   * import assert from "node:assert/strict";
   *
   * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
   * const serving = listener.accept().then((conn) =>
   *   PeerConnection.accept(conn, { peerId: new Uint8Array(20), lookup: () => true })
   * );
   * await using client = await PeerConnection.connect(
   *   { host: "127.0.0.1", port: listener.addr.port },
   *   { infoHash: new Uint8Array(20), peerId: new Uint8Array(20).fill(2) },
   * );
   * await using server = await serving;
   *
   * const blocks: string[] = [];
   * client.setPieceHandler((index, begin, block) => blocks.push(`${index}:${begin}:${block.length}`));
   * await server.send([
   *   { type: "piece", index: 1, begin: 16384, block: new Uint8Array(3) },
   *   { type: "have", index: 2 },
   * ]);
   * const reader = client.messages.getReader();
   * assert.deepEqual((await reader.read()).value, { type: "have", index: 2 });
   * reader.releaseLock();
   * assert.deepEqual(blocks, ["1:16384:3"]);
   * ```
   */
  setPieceHandler(handler: PieceHandler | undefined): void {
    this.#onPiece = handler;
  }

  /** Resolves once the connection is closed and its pending I/O settled. Never rejects. */
  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /**
   * Sends one message, or a batch of messages as one write (BEP 3). Waits
   * for the socket to accept more data (backpressure) and for the write.
   *
   * @param message A message or a batch, encoded into a single buffer.
   * @returns Resolves when the bytes were handed to the socket.
   * @throws {RangeError} If a message field is out of range.
   * @throws {Error} If the connection is closed (the close reason is the
   * `cause`), or the socket error if writing fails, which closes the connection.
   */
  async send(message: PeerMessage | readonly PeerMessage[]): Promise<void> {
    if (this.#closing) throw this.#closedError();
    const bytes = isMessageList(message) ? encodeMessages(message) : encodeMessage(message);
    await this.#write(bytes);
  }

  /**
   * Writes messages already encoded (length-prefixed frames, BEP 3, e.g. from
   * `encodeMessageInto`) as one write, without copying them: a sender can fill
   * a reused buffer. Waits for the socket to accept more data (backpressure)
   * and for the write.
   *
   * @param frames Whole frames; must not be modified until the promise settles.
   * @returns Resolves when the bytes were handed to the socket; the buffer may then be reused.
   * @throws {Error} If the connection is closed (the close reason is the
   * `cause`), or the socket error if writing fails, which closes the connection.
   *
   * @example Usage
   * ```ts
   * import { PeerConnection } from "./connection.ts";
   * import { encodeMessageInto } from "./message.ts";
   * import assert from "node:assert/strict";
   *
   * const infoHash = new Uint8Array(20).fill(1);
   * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
   * const serving = listener.accept().then((conn) =>
   *   PeerConnection.accept(conn, { peerId: new Uint8Array(20), lookup: () => true })
   * );
   * await using client = await PeerConnection.connect(
   *   { host: "127.0.0.1", port: listener.addr.port },
   *   { infoHash, peerId: new Uint8Array(20).fill(2) },
   * );
   * await using server = await serving;
   *
   * const buffer = new Uint8Array(64);
   * const length = encodeMessageInto({ type: "have", index: 5 }, buffer, 0);
   * await server.sendEncoded(buffer.subarray(0, length));
   * const reader = client.messages.getReader();
   * assert.deepEqual((await reader.read()).value, { type: "have", index: 5 });
   * reader.releaseLock();
   * ```
   */
  async sendEncoded(frames: Uint8Array): Promise<void> {
    if (this.#closing) throw this.#closedError();
    await this.#write(frames);
  }

  async #write(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return;
    try {
      await this.#writer.ready;
      if (this.#closing) throw this.#closedError();
      const write = this.#writer.write(bytes);
      this.#lastWrite = write;
      await write;
    } catch (error) {
      if (this.#closing) throw this.#closedError();
      this.#fail(error);
      throw error;
    }
  }

  /**
   * Closes the connection. Idempotent. `messages` ends (done) after the
   * messages already received; later sends reject with `reason` as cause.
   *
   * @param reason Why we close, for later sends to report.
   */
  close(reason?: unknown): void {
    if (this.#closing) return;
    this.#closing = true;
    if (reason !== undefined) this.#closeReason = reason;
    this.#endMessages();
    closeConn(this.#conn);
    Promise.allSettled([this.#pendingRead, this.#lastWrite]).then(() => this.#closed.resolve());
  }

  /** Closes the connection and waits for {@linkcode PeerConnection.closed}. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.closed;
  }

  async #pull(controller: ReadableStreamDefaultController<PeerMessage>): Promise<void> {
    // Read until at least one message came out, so every pull makes progress.
    try {
      while (!this.#closing) {
        if (this.#decode(controller) > 0) return;
        const read = this.#read();
        this.#pendingRead = read;
        const done = await read;
        if (this.#closing) break;
        if (done) {
          if (this.#end > this.#start) {
            throw new PeerProtocolError(
              `Cannot decode peer message: stream ended inside a frame, ${
                this.#end - this.#start
              } bytes left over`,
            );
          }
          this.close();
          return;
        }
      }
    } catch (error) {
      // A read interrupted by our own close() is the expected way out.
      if (!this.#closing || error instanceof PeerProtocolError) this.#fail(error);
      return;
    }
    this.#endMessages();
  }

  /**
   * Decodes every whole frame buffered; returns how many messages were enqueued (blocks
   * taken by the piece handler do not count: the pending read still waits for a message).
   */
  #decode(controller: ReadableStreamDefaultController<PeerMessage>): number {
    const buffer = this.#buffer;
    let start = this.#start;
    const end = this.#end;
    let count = 0;
    while (end - start >= 4) {
      const length = ((buffer[start]! << 24) | (buffer[start + 1]! << 16) |
        (buffer[start + 2]! << 8) | buffer[start + 3]!) >>> 0;
      if (length > this.#maxMessageLength) {
        throw new PeerProtocolError(
          `Cannot decode peer message: frame length ${length} exceeds the maximum of ${this.#maxMessageLength} bytes`,
        );
      }
      if (end - start - 4 < length) break;
      if (count === 0 && length >= 9 && buffer[start + 4] === 7 && this.#onPiece !== undefined) {
        // Fast path: nothing is waiting in `messages`, so handling the block now keeps order.
        const at = start + 5;
        const index = ((buffer[at]! << 24) | (buffer[at + 1]! << 16) | (buffer[at + 2]! << 8) |
          buffer[at + 3]!) >>> 0;
        const begin = ((buffer[at + 4]! << 24) | (buffer[at + 5]! << 16) |
          (buffer[at + 6]! << 8) | buffer[at + 7]!) >>> 0;
        start += 4 + length;
        this.#start = start;
        this.#onPiece(index, begin, buffer.subarray(at + 8, start));
        if (this.#closing) return 0;
        continue;
      }
      const message = decodeMessage(buffer.subarray(start + 4, start + 4 + length));
      controller.enqueue(this.#reuse ? detach(message) : message);
      start += 4 + length;
      count++;
    }
    this.#start = start;
    if (count > 0 && !this.#reuse) {
      // Messages handed out are views into this buffer: continue in a fresh one.
      this.#buffer = new Uint8Array(Math.max(READ_BUFFER_SIZE, end - start + 4));
      this.#buffer.set(buffer.subarray(start, end));
      this.#start = 0;
      this.#end = end - start;
    }
    return count;
  }

  /** Reads more bytes after those buffered; resolves `true` at the end of the stream. */
  async #read(): Promise<boolean> {
    let buffer = this.#buffer;
    const pending = this.#end - this.#start;
    let needed = 4;
    if (pending >= 4) {
      const b = buffer, s = this.#start;
      needed = 4 + (((b[s]! << 24) | (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!) >>> 0);
    }
    const size = Math.max(needed, this.#nextSize);
    if (size > buffer.length) {
      // A frame larger than the buffer (up to maxMessageLength), or the last read filled the
      // buffer (more was waiting). Messages handed out were read, and blocks were copied out
      // by the piece handler, so only the partial frame moves.
      const larger = new Uint8Array(size);
      larger.set(buffer.subarray(this.#start, this.#end));
      this.#buffer = buffer = larger;
      this.#start = 0;
      this.#end = pending;
    } else if (this.#start > 0 && buffer.length - this.#end < Math.max(needed - pending, 65536)) {
      // Every message handed out was read (see highWaterMark): the partial frame can move.
      buffer.copyWithin(0, this.#start, this.#end);
      this.#start = 0;
      this.#end = pending;
    }
    const offered = buffer.length - this.#end;
    const count = await this.#conn.read(buffer.subarray(this.#end));
    if (count === null) return true;
    this.#end += count;
    if (this.#reuse) {
      this.#nextSize = nextReadBufferSize(buffer.length, offered, count, MAX_READ_BUFFER_SIZE);
    }
    return false;
  }

  #endMessages(): void {
    if (this.#messagesDone) return;
    this.#messagesDone = true;
    this.#controller.close();
  }

  #fail(error: unknown): void {
    if (!this.#messagesDone) {
      this.#messagesDone = true;
      this.#controller.error(error);
    }
    this.close(error);
  }

  #closedError(): Error {
    const message = `Cannot send peer message to ${
      formatPeerAddress(this.#address)
    }: connection is closed`;
    return this.#closeReason === undefined
      ? new Error(message)
      : new Error(message, { cause: this.#closeReason });
  }
}

/** Copies the payload of a message that may be kept, so it survives the read buffer's reuse. */
function detach(message: PeerMessage): PeerMessage {
  switch (message.type) {
    case "bitfield":
      return { type: "bitfield", bitfield: message.bitfield.slice() };
    case "extended":
    case "unknown":
      return { type: message.type, id: message.id, payload: message.payload.slice() };
    default:
      return message;
  }
}

function handshakeFields(
  infoHash: Uint8Array,
  options: PeerHandshakeOptions,
): { infoHash: Uint8Array; peerId: Uint8Array; reserved?: Uint8Array } {
  return options.reserved === undefined
    ? { infoHash, peerId: options.peerId }
    : { infoHash, peerId: options.peerId, reserved: options.reserved };
}

function limit(
  options: { maxMessageLength?: number; reuseReadBuffer?: boolean },
): { maxMessageLength?: number; reuseReadBuffer?: boolean } {
  const out: { maxMessageLength?: number; reuseReadBuffer?: boolean } = {};
  if (options.maxMessageLength !== undefined) out.maxMessageLength = options.maxMessageLength;
  if (options.reuseReadBuffer !== undefined) out.reuseReadBuffer = options.reuseReadBuffer;
  return out;
}

function isMessageList(
  message: PeerMessage | readonly PeerMessage[],
): message is readonly PeerMessage[] {
  return Array.isArray(message);
}

/**
 * Runs a handshake under a timeout and an optional abort signal. On
 * timeout or abort the adopted connection is closed, which interrupts any
 * pending read or write; on any failure it is closed too.
 */
async function withDeadline<T>(
  where: string,
  options: { signal?: AbortSignal; timeoutMs?: number },
  run: (signal: AbortSignal, adopt: <C extends Deno.Conn>(conn: C) => C) => Promise<T>,
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`Cannot start handshake: timeoutMs ${timeoutMs} is not a positive number`);
  }
  options.signal?.throwIfAborted();
  const controller = new AbortController();
  let conn: Deno.Conn | undefined;
  const timer = setTimeout(() => {
    controller.abort(
      new HandshakeError(
        `Cannot complete handshake with ${where}: no answer within ${timeoutMs} ms`,
      ),
    );
  }, timeoutMs);
  const forwardAbort = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", forwardAbort, { once: true });
  const closeOnAbort = () => {
    if (conn !== undefined) closeConn(conn);
  };
  controller.signal.addEventListener("abort", closeOnAbort, { once: true });
  try {
    return await run(controller.signal, (adopted) => {
      conn = adopted;
      // The deadline may have passed while the connect op was finishing.
      if (controller.signal.aborted) closeConn(adopted);
      return adopted;
    });
  } catch (error) {
    if (conn !== undefined) closeConn(conn);
    if (controller.signal.aborted) throw controller.signal.reason;
    if (error instanceof HandshakeError || error instanceof TypeError || conn === undefined) {
      throw error;
    }
    const detail = error instanceof Error ? error.message : String(error);
    throw new HandshakeError(`Cannot complete handshake with ${where}: ${detail}`, {
      cause: error,
    });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", forwardAbort);
    controller.signal.removeEventListener("abort", closeOnAbort);
  }
}

async function readHandshake(conn: Deno.Conn, where: string): Promise<Handshake> {
  // Read into a 68-byte buffer so no byte past the handshake is consumed.
  const buffer = new Uint8Array(HANDSHAKE_LENGTH);
  let filled = 0;
  while (filled < HANDSHAKE_LENGTH) {
    const count = await conn.read(buffer.subarray(filled));
    if (count === null) {
      throw new HandshakeError(
        `Cannot complete handshake with ${where}: peer closed the connection after ${filled} of ${HANDSHAKE_LENGTH} bytes`,
      );
    }
    filled += count;
  }
  return decodeHandshake(buffer);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

function closeConn(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    // Already closed: conn.readable closes the resource itself at end of stream.
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

function remoteAddress(conn: Deno.Conn): PeerAddress {
  const remote = conn.remoteAddr;
  return remote.transport === "tcp" || remote.transport === "udp"
    ? { host: remote.hostname, port: remote.port }
    : { host: String(remote.transport), port: 0 };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * Sends small messages at once: with Nagle's algorithm on (Deno's default), a request that
 * follows another small write waits for an ACK, ~40 ms on loopback.
 */
function disableNagle(conn: Deno.Conn): void {
  if ("setNoDelay" in conn && typeof conn.setNoDelay === "function") {
    (conn as Deno.TcpConn).setNoDelay(true);
  }
}
