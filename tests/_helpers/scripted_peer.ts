/**
 * A scripted BitTorrent peer for engine tests: it speaks raw wire bytes over
 * a real loopback socket (our codec, no engine code), and can misbehave on
 * purpose: corrupt blocks, choke mid-transfer, drop the connection
 * mid-piece, go silent, hold only some pieces, or send a bad bitfield.
 *
 * @module
 */

import {
  decodeHandshake,
  encodeHandshake,
  HANDSHAKE_LENGTH,
  reservedBits,
} from "../../lib/peer/handshake.ts";
import { encodeMessages, type PeerMessage } from "../../lib/peer/message.ts";
import { PeerMessageSplitter } from "../../lib/peer/message_streams.ts";
import { Bitfield } from "../../lib/piece/mod.ts";

/** A torrent's geometry, as in a `Metainfo`. */
export interface ScriptedTorrent {
  infoHash: Uint8Array;
  pieceLength: number;
  pieceCount: number;
  totalLength: number;
}

/** A raw peer wire connection: handshake done, then messages in and out. */
export class RawPeer {
  readonly conn: Deno.TcpConn;
  readonly remoteReserved: Uint8Array;
  readonly remotePeerId: Uint8Array;
  readonly #splitter = new PeerMessageSplitter();
  readonly #queue: PeerMessage[] = [];
  readonly #buffer = new Uint8Array(65536);
  #ended = false;

  private constructor(conn: Deno.TcpConn, remote: { reserved: Uint8Array; peerId: Uint8Array }) {
    this.conn = conn;
    this.remoteReserved = remote.reserved;
    this.remotePeerId = remote.peerId;
  }

  /** Dials a peer and exchanges handshakes. */
  static async connect(
    port: number,
    options: { infoHash: Uint8Array; fast?: boolean; peerId?: Uint8Array },
  ): Promise<RawPeer> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(conn, handshake(options.infoHash, options.fast ?? false, options.peerId));
    const remote = decodeHandshake(await readExactly(conn, HANDSHAKE_LENGTH));
    return new RawPeer(conn, remote);
  }

  /** Answers an incoming connection's handshake. */
  static async accept(
    conn: Deno.TcpConn,
    options: { infoHash: Uint8Array; fast?: boolean; peerId?: Uint8Array },
  ): Promise<RawPeer> {
    const remote = decodeHandshake(await readExactly(conn, HANDSHAKE_LENGTH));
    await writeAll(conn, handshake(options.infoHash, options.fast ?? false, options.peerId));
    return new RawPeer(conn, remote);
  }

  /** Sends messages in one write. */
  async send(...messages: PeerMessage[]): Promise<void> {
    await writeAll(this.conn, encodeMessages(messages));
  }

  /** Sends raw bytes. */
  async sendRaw(bytes: Uint8Array): Promise<void> {
    await writeAll(this.conn, bytes);
  }

  /** The next message, or `undefined` at end of stream (or on a reset). */
  async next(): Promise<PeerMessage | undefined> {
    while (this.#queue.length === 0) {
      if (this.#ended) return undefined;
      let count: number | null;
      try {
        count = await this.conn.read(this.#buffer);
      } catch (error) {
        if (
          error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BadResource
        ) {
          count = null;
        } else {
          throw error;
        }
      }
      if (count === null) {
        this.#ended = true;
        return undefined;
      }
      // The splitter may keep views: give it a copy of the reused buffer.
      this.#splitter.push(this.#buffer.slice(0, count), this.#queue);
    }
    return this.#queue.shift();
  }

  /** Reads messages until one of type `type` arrives. */
  async expect<T extends PeerMessage["type"]>(
    type: T,
  ): Promise<Extract<PeerMessage, { type: T }>> {
    for (;;) {
      const message = await this.next();
      if (message === undefined) throw new Error(`Connection ended while waiting for ${type}`);
      if (message.type === type) return message as Extract<PeerMessage, { type: T }>;
    }
  }

  /** Closes the socket (idempotent). */
  close(): void {
    try {
      this.conn.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }
}

/** How a {@linkcode ScriptedSeeder} behaves. */
export interface ScriptedSeederOptions {
  torrent: ScriptedTorrent;
  /** The whole torrent content. */
  data: Uint8Array;
  /** Pieces it has; all by default. */
  pieces?: readonly number[];
  /** Serve flipped bytes for these pieces. */
  corruptPieces?: readonly number[];
  /** Send `choke` after this many blocks, dropping pending requests; unchoke after `unchokeAfterMs`. */
  chokeAfterBlocks?: number;
  /** Delay before unchoking again after a choke (default 200 ms). */
  unchokeAfterMs?: number;
  /** Close the connection after this many blocks. */
  dropAfterBlocks?: number;
  /** Unchoke but never answer requests. */
  silent?: boolean;
  /** Send this as the bitfield payload instead of the real one. */
  badBitfield?: Uint8Array;
  /** Announce the fast extension (BEP 6). */
  fast?: boolean;
}

/** A listening scripted seeder; the engine dials it. */
export class ScriptedSeeder implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #options: ScriptedSeederOptions;
  readonly #tasks = new Set<Promise<void>>();
  readonly #peers = new Set<RawPeer>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #accepting: Promise<void>;
  /** Blocks sent so far, over all connections. */
  blocksServed = 0;
  /** Every request received, in order, as `index:begin`. */
  readonly requests: string[] = [];
  /** Every cancel received, as `index:begin`. */
  readonly cancels: string[] = [];
  /** Connections accepted. */
  connections = 0;
  /** Keep-alives received, over all connections. */
  keepAlives = 0;
  /** Connections the other side closed. */
  closedByPeer = 0;

  constructor(options: ScriptedSeederOptions) {
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

  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
    for (const timer of this.#timers) clearTimeout(timer);
    for (const peer of this.#peers) peer.close();
    await this.#accepting;
    await Promise.allSettled([...this.#tasks]);
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
      const task = this.#serve(conn).catch((error) => {
        if (
          !(error instanceof Deno.errors.BadResource ||
            error instanceof Deno.errors.ConnectionReset ||
            error instanceof Deno.errors.BrokenPipe)
        ) {
          throw error;
        }
      });
      this.#tasks.add(task);
    }
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const o = this.#options;
    const { torrent, data } = o;
    const peer = await RawPeer.accept(conn, {
      infoHash: torrent.infoHash,
      fast: o.fast ?? false,
    });
    this.#peers.add(peer);
    const have = new Bitfield(torrent.pieceCount);
    for (const index of o.pieces ?? Array.from({ length: torrent.pieceCount }, (_, i) => i)) {
      have.set(index);
    }
    const corrupt = new Set(o.corruptPieces ?? []);
    let choking = false;
    await peer.send(
      { type: "bitfield", bitfield: o.badBitfield ?? have.toBytes() },
      { type: "unchoke" },
    );
    for (;;) {
      const message = await peer.next();
      if (message === undefined) {
        this.closedByPeer++;
        break;
      }
      if (message.type === "keep-alive") this.keepAlives++;
      if (message.type === "cancel") this.cancels.push(`${message.index}:${message.begin}`);
      if (message.type !== "request") continue;
      this.requests.push(`${message.index}:${message.begin}`);
      if (o.silent || choking || !have.has(message.index)) continue;
      const offset = message.index * torrent.pieceLength + message.begin;
      let block = data.subarray(offset, offset + message.length);
      if (corrupt.has(message.index)) block = block.map((byte) => byte ^ 0xff);
      await peer.send({ type: "piece", index: message.index, begin: message.begin, block });
      this.blocksServed++;
      if (o.dropAfterBlocks !== undefined && this.blocksServed >= o.dropAfterBlocks) {
        peer.close();
        break;
      }
      if (o.chokeAfterBlocks !== undefined && this.blocksServed === o.chokeAfterBlocks) {
        choking = true;
        await peer.send({ type: "choke" });
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          choking = false;
          peer.send({ type: "unchoke" }).catch(() => peer.close());
        }, o.unchokeAfterMs ?? 200);
        this.#timers.add(timer);
      }
    }
    this.#peers.delete(peer);
    peer.close();
  }
}

function handshake(infoHash: Uint8Array, fast: boolean, peerId?: Uint8Array): Uint8Array {
  return encodeHandshake({
    infoHash,
    peerId: peerId ?? crypto.getRandomValues(new Uint8Array(20)),
    reserved: reservedBits({ fast }),
  });
}

async function readExactly(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const count = await conn.read(buffer.subarray(filled));
    if (count === null) throw new Error(`Connection ended after ${filled} of ${length} bytes`);
    filled += count;
  }
  return buffer;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}
