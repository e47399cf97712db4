/**
 * Accepting incoming peer connections on a TCP port and handing each to the
 * torrent its handshake asks for.
 *
 * @module
 */

import { generatePeerId, reservedBits } from "../peer/handshake.ts";
import { PeerConnection } from "../peer/connection.ts";
import { HandshakeError } from "../peer/errors.ts";
import {
  acceptMse,
  looksPlaintext,
  MseConn,
  type MseMethod,
  PLAINTEXT_PREFIX_LENGTH,
} from "../peer/mse/mod.ts";

/** Our reserved handshake bits: extension protocol (BEP 10) and fast extension (BEP 6). */
export const DEFAULT_RESERVED: Uint8Array = reservedBits({ extensionProtocol: true, fast: true });

/** Options for {@linkcode PeerListener.listen}. */
export interface PeerListenerOptions {
  /** Interface to bind; defaults to `"0.0.0.0"`. */
  hostname?: string;
  /** Port to bind; 0 (the default) picks a free one. */
  port?: number;
  /** Our 20-byte peer id; generated when omitted. */
  peerId?: Uint8Array;
  /** Our reserved handshake bytes; defaults to {@linkcode DEFAULT_RESERVED}. */
  reserved?: Uint8Array;
  /** Time allowed for an incoming handshake, in ms; defaults to 10 s. */
  handshakeTimeoutMs?: number;
  /** Called when an incoming handshake fails (bad handshake, unknown info hash, timeout). */
  onError?: (error: unknown) => void;
  /**
   * Accept Message Stream Encryption (MSE/PE) handshakes, which libtorrent and aria2 send
   * first by default; defaults to true. Plaintext handshakes are always accepted.
   */
  encryption?: boolean;
  /** Mode picked when an MSE peer offers both; defaults to `"plaintext"` (cheaper). */
  preferEncryption?: MseMethod;
}

/** Receives connections whose handshake named a registered info hash. */
export type IncomingPeerHandler = (connection: PeerConnection) => void;

/**
 * Listens for incoming peer connections (BEP 3), answers their handshakes
 * for registered torrents, and dispatches each connection by info hash.
 * Connections for unknown info hashes are closed during the handshake.
 * A connection that starts with a Message Stream Encryption handshake
 * instead of the plaintext one is served too: MSE first (the registered info
 * hashes are the SKEY candidates), then the BitTorrent handshake over it.
 *
 * @example Usage
 * ```ts
 * import { PeerListener } from "./listener.ts";
 * import { PeerConnection } from "../peer/connection.ts";
import { HandshakeError } from "../peer/errors.ts";
import {
  acceptMse,
  looksPlaintext,
  type MseMethod,
  MseConn,
  PLAINTEXT_PREFIX_LENGTH,
} from "../peer/mse/mod.ts";
 * import { generatePeerId } from "../peer/handshake.ts";
 * import assert from "node:assert/strict";
 *
 * await using listener = PeerListener.listen({ hostname: "127.0.0.1" });
 * const infoHash = new Uint8Array(20).fill(3);
 * const incoming = Promise.withResolvers<PeerConnection>();
 * const unregister = listener.register(infoHash, (conn) => incoming.resolve(conn));
 * await using client = await PeerConnection.connect(
 *   { host: "127.0.0.1", port: listener.port },
 *   { infoHash, peerId: generatePeerId() },
 * );
 * await using server = await incoming.promise;
 * assert.deepEqual(server.infoHash, infoHash);
 * assert.deepEqual(client.remotePeerId, listener.peerId);
 * unregister();
 * ```
 */
export class PeerListener implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #peerId: Uint8Array;
  readonly #reserved: Uint8Array;
  readonly #timeoutMs: number | undefined;
  readonly #onError: ((error: unknown) => void) | undefined;
  readonly #handlers = new Map<string, IncomingPeerHandler>();
  readonly #infoHashes = new Map<string, Uint8Array>();
  readonly #encryption: boolean;
  readonly #preferEncryption: MseMethod;
  readonly #abort = new AbortController();
  readonly #handshakes = new Set<Promise<void>>();
  readonly #acceptLoop: Promise<void>;
  #closed = false;

  /**
   * Binds a TCP port and starts accepting.
   *
   * @param options Address, port, peer id, reserved bits, timeout.
   * @returns The listener.
   * @throws {Deno.errors.AddrInUse} If the port is taken.
   */
  static listen(options: PeerListenerOptions = {}): PeerListener {
    const listener = Deno.listen({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? 0,
      transport: "tcp",
    });
    return new PeerListener(listener, options);
  }

  private constructor(listener: Deno.TcpListener, options: PeerListenerOptions) {
    this.#listener = listener;
    this.#peerId = options.peerId ?? generatePeerId();
    this.#reserved = options.reserved ?? DEFAULT_RESERVED;
    this.#timeoutMs = options.handshakeTimeoutMs;
    this.#onError = options.onError;
    this.#encryption = options.encryption ?? true;
    this.#preferEncryption = options.preferEncryption ?? "plaintext";
    this.#acceptLoop = this.#accept();
  }

  /** The bound port. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** The bound address. */
  get hostname(): string {
    return this.#listener.addr.hostname;
  }

  /** Our peer id, sent in every handshake this listener answers. */
  get peerId(): Uint8Array {
    return this.#peerId;
  }

  /** Our reserved handshake bytes. */
  get reserved(): Uint8Array {
    return this.#reserved;
  }

  /**
   * Routes incoming connections for `infoHash` to `handler`.
   *
   * @param infoHash The torrent's 20-byte info hash.
   * @param handler Takes ownership of each connection.
   * @returns A function that unregisters the handler.
   * @throws {TypeError} If the info hash is already registered.
   */
  register(infoHash: Uint8Array, handler: IncomingPeerHandler): () => void {
    const key = infoHash.toHex();
    if (this.#handlers.has(key)) {
      throw new TypeError(`Cannot register torrent: info hash "${key}" is already registered`);
    }
    this.#handlers.set(key, handler);
    this.#infoHashes.set(key, infoHash.slice());
    return () => {
      if (this.#handlers.get(key) === handler) {
        this.#handlers.delete(key);
        this.#infoHashes.delete(key);
      }
    };
  }

  /**
   * Stops accepting, aborts handshakes in progress and waits for them.
   * Connections already handed out stay open.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#abort.abort(new Error("Peer listener closed"));
      this.#listener.close();
    }
    await this.#acceptLoop;
    while (this.#handshakes.size > 0) await Promise.allSettled([...this.#handshakes]);
  }

  /** Same as {@linkcode PeerListener.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #accept(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closed) return;
        if (error instanceof Deno.errors.BadResource) return;
        this.#onError?.(error);
        continue;
      }
      if (this.#closed) {
        conn.close();
        return;
      }
      conn.setNoDelay(true);
      const handshake = this.#handshake(conn);
      this.#handshakes.add(handshake);
      handshake.then(() => this.#handshakes.delete(handshake));
    }
  }

  /**
   * Peeks at the first bytes: a plaintext handshake goes on as it is (the
   * peeked bytes replayed), anything else is taken for MSE.
   */
  async #negotiate(conn: Deno.TcpConn): Promise<Deno.Conn> {
    if (!this.#encryption) return conn;
    const timeoutMs = this.#timeoutMs ?? 10_000;
    const peeked = new Uint8Array(PLAINTEXT_PREFIX_LENGTH);
    let filled = 0;
    const timer = setTimeout(() => closeQuietly(conn), timeoutMs);
    const onAbort = () => closeQuietly(conn);
    this.#abort.signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (filled < peeked.length && looksPlaintext(peeked.subarray(0, filled))) {
        const count = await conn.read(peeked.subarray(filled));
        if (count === null) {
          throw new HandshakeError(
            `Cannot complete handshake: peer closed the connection after ${filled} bytes`,
          );
        }
        filled += count;
      }
    } catch (error) {
      closeQuietly(conn);
      if (this.#abort.signal.aborted) throw this.#abort.signal.reason;
      if (error instanceof HandshakeError) throw error;
      throw new HandshakeError(`Cannot complete handshake: ${errorMessage(error)}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
      this.#abort.signal.removeEventListener("abort", onAbort);
    }
    const prefix = peeked.subarray(0, filled);
    if (looksPlaintext(prefix)) return new MseConn(conn, { prefix });
    return await acceptMse(conn, {
      infoHashes: this.#infoHashes.values(),
      prefix,
      prefer: this.#preferEncryption,
      signal: this.#abort.signal,
      timeoutMs,
    });
  }

  async #handshake(conn: Deno.TcpConn): Promise<void> {
    let connection: PeerConnection;
    try {
      const negotiated = await this.#negotiate(conn);
      const skey = negotiated instanceof MseConn ? negotiated.infoHash : undefined;
      connection = await PeerConnection.accept(negotiated, {
        peerId: this.#peerId,
        reserved: this.#reserved,
        // After MSE, the BitTorrent handshake must name the torrent agreed as SKEY.
        lookup: (infoHash) =>
          this.#handlers.has(infoHash.toHex()) &&
          (skey === undefined || infoHash.toHex() === skey.toHex()),
        signal: this.#abort.signal,
        // Sessions handle each block synchronously (copied into its piece): no per-read garbage.
        reuseReadBuffer: true,
        ...(this.#timeoutMs === undefined ? {} : { timeoutMs: this.#timeoutMs }),
      });
    } catch (error) {
      // acceptMse / PeerConnection.accept closed the socket; the peer simply goes away.
      if (!this.#closed) this.#onError?.(error);
      return;
    }
    const handler = this.#handlers.get(connection.infoHash.toHex());
    if (!handler || this.#closed) {
      connection.close(new Error("Torrent no longer registered"));
      await connection.closed;
      return;
    }
    handler(connection);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    // Already closed (timeout and abort race): nothing left to release.
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
