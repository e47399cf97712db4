/**
 * One connected peer, both directions: what we ask it for, what it asks us
 * for, and the validation of everything it sends (BEP 3, BEP 6 fast
 * extension, the `reqq` field of the BEP 10 extension handshake).
 *
 * @module
 */

import { formatPeerAddress, type PeerAddress } from "../peer/address.ts";
import { PeerProtocolError } from "../peer/errors.ts";
import { supportsExtensionProtocol, supportsFastExtension } from "../peer/handshake.ts";
import { encodedLength, encodeMessageInto, type PeerMessage } from "../peer/message.ts";
import { Bitfield, BLOCK_SIZE, type BlockRequest, type PiecePicker } from "../piece/mod.ts";
import type { ExtensionHandshake } from "../peer/extension.ts";
import { type ExtensionHooks, SessionExtensions } from "./extensions.ts";
import { Uploader, type UploadRequest } from "./uploader.ts";
import { IntSet } from "./_int_set.ts";

/** Smallest request pipeline per peer. */
export const MIN_QUEUE_DEPTH = 2;
/** Largest request pipeline per peer. */
export const MAX_QUEUE_DEPTH = 500;
/** Pipeline depth of a new peer, before its rate is known. */
export const INITIAL_QUEUE_DEPTH = 16;
/** Seconds of data the request pipeline should cover. */
export const QUEUE_SECONDS = 3;
/** Most requests from one peer we keep queued; more are dropped (or rejected, BEP 6). */
export const MAX_QUEUED_UPLOADS = 500;
/** Largest block a peer may request from us. */
export const MAX_REQUEST_LENGTH = BLOCK_SIZE;

/** What a session needs from a connected peer: a `PeerConnection` fits. */
export interface SessionConnection {
  /** Decoded messages from the peer. */
  readonly messages: ReadableStream<PeerMessage>;
  /** The peer's 20-byte id. */
  readonly remotePeerId: Uint8Array;
  /** The peer's reserved handshake bytes. */
  readonly remoteReserved: Uint8Array;
  /** The peer's address. */
  readonly address: PeerAddress;
  /** Resolves when the connection is closed. */
  readonly closed: Promise<void>;
  /** Sends a message or a batch as one write. */
  send(message: PeerMessage | readonly PeerMessage[]): Promise<void>;
  /** Writes already encoded messages as one write; `frames` is reused once it resolves. */
  sendEncoded(frames: Uint8Array): Promise<void>;
  /** Closes the connection. */
  close(reason?: unknown): void;
  /**
   * Optional fast path: `piece` blocks go to `handler` (a view valid during the call) while
   * `messages` is read, instead of as message objects.
   */
  setPieceHandler?(handler: (index: number, begin: number, block: Uint8Array) => void): void;
}

/** The torrent a session belongs to, as seen from the session. */
export interface SessionHost {
  /** Nominal piece length. */
  readonly pieceLength: number;
  /** Total torrent length. */
  readonly totalLength: number;
  /** Pieces we have verified and stored. */
  readonly have: Bitfield;
  /** The picker that tracks availability and in-flight blocks. */
  readonly picker: PiecePicker;
  /** Whether we still want piece `index` (wanted and not verified yet). */
  wants(index: number): boolean;
  /** Returns the pieces worth requesting from a peer holding `field`. */
  requestable(field: Bitfield): Bitfield;
  /** Chooses up to `count` blocks to request from `session`, in the pieces of `field`. */
  pickRequests(session: PeerSession, field: Bitfield, count: number): BlockRequest[];
  /** Takes a block we requested; `block` is a view that is only valid during the call. */
  blockReceived(session: PeerSession, index: number, begin: number, block: Uint8Array): void;
  /** Blocks went back to the picker (choke, reject, timeout, close): other peers may take them. */
  requestsReturned(): void;
  /**
   * Reads verified data for upload, `length` bytes at `begin` of piece `index`; the range may
   * run past the piece into the following ones (all verified).
   */
  read(index: number, begin: number, length: number): Promise<Uint8Array>;
  /** Like `read`, into `target` (`target.length` bytes), so upload buffers can be reused. */
  readInto?(index: number, begin: number, target: Uint8Array): Promise<void>;
  /** The peer changed its interest in us. */
  interestChanged(session: PeerSession): void;
  /** The peer announced a piece. */
  peerHasChanged(session: PeerSession): void;
  /** The session ended; `error` is why, or `undefined` for a clean close. */
  sessionClosed(session: PeerSession, error: unknown): void;
  /** Clock in ms. */
  now(): number;
  /** Our raw info dictionary, served to peers over `ut_metadata` (BEP 9). */
  readonly infoBytes?: Uint8Array;
  /** Our TCP listen port, announced as `p` in the extension handshake. */
  readonly listenPort?: number;
  /** Handlers for extension traffic (PEX, metadata fetching). */
  readonly extensionHooks?: ExtensionHooks<PeerSession>;
}

/** Options for {@linkcode PeerSession}. */
export interface PeerSessionOptions {
  /** Our reserved handshake bytes, to tell which extensions both sides speak. */
  reserved: Uint8Array;
  /** No block for this long while requests are outstanding marks the peer snubbed; 30 s default. */
  snubTimeoutMs?: number;
  /** Nothing received for this long (not even a keep-alive) closes the session; 240 s default. */
  idleTimeoutMs?: number;
  /** Nothing sent for this long sends a keep-alive (BEP 3); 90 s default. */
  keepAliveMs?: number;
  /** Client name sent in the BEP 10 handshake. */
  clientName?: string;
}

/** Counters and state of a session, for stats and the choker. */
export interface PeerSessionStats {
  /** The peer's address. */
  address: PeerAddress;
  /** We are choking the peer (not uploading to it). */
  amChoking: boolean;
  /** We want pieces the peer has. */
  amInterested: boolean;
  /** The peer is choking us. */
  peerChoking: boolean;
  /** The peer wants pieces we have. */
  peerInterested: boolean;
  /** No block from the peer for the snub timeout while requests were outstanding. */
  snubbed: boolean;
  /** Payload bytes received from the peer. */
  downloaded: number;
  /** Payload bytes sent to the peer. */
  uploaded: number;
  /** Bytes per second received from the peer, recently. */
  downloadRate: number;
  /** Bytes per second sent to the peer, recently. */
  uploadRate: number;
  /** Requests we keep outstanding with the peer (from its measured rate). */
  queueDepth: number;
  /** Requests outstanding now. */
  requestsInFlight: number;
  /** Pieces the peer has. */
  piecesHave: number;
  /** The peer's requests waiting for us to serve them (at most 500). */
  requestsQueued: number;
  /** Bytes we wrote to the peer that its socket has not taken yet: messages and blocks. */
  bytesQueued: number;
}

const BLOCKS_PER_PIECE_KEY = 131072; // 2 GiB / 16 KiB, the largest piece length accepted
const MAX_LATE_BLOCKS = 4096;
const SLOW_START_MS = 2_000;

/** Key of a 16 KiB-aligned block; unaligned offsets give a non-integer key that matches nothing. */
function blockKey(index: number, begin: number): number {
  return index * BLOCKS_PER_PIECE_KEY + begin / BLOCK_SIZE;
}

/**
 * Control-message writes (requests, rejects, `have`) a session keeps in flight. More means the
 * peer does not read what we send while it keeps talking, e.g. a request flood answered with
 * rejects: it is closed rather than buffered without limit.
 */
const MAX_WRITES_IN_FLIGHT = 1024;

/**
 * One connected peer. Reads the peer's messages in one loop and validates
 * them (a violation closes the session with a {@linkcode PeerProtocolError}
 * reason, never the torrent); keeps a request pipeline sized from the
 * measured rate (~3 s of data, 2 to 500 blocks, at most the peer's `reqq`);
 * returns dropped requests to the picker; serves verified pieces to the peer
 * while we unchoke it.
 *
 * Outgoing control messages (requests, `have`, interest) queued in the same
 * turn of the event loop go out as one write.
 *
 * @example Usage
 * ```ts
 * import { PeerSession } from "./peer_session.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(typeof PeerSession, "function");
 * ```
 */
export class PeerSession {
  readonly #conn: SessionConnection;
  readonly #host: SessionHost;
  readonly #fast: boolean;
  readonly #extended: boolean;
  readonly #snubTimeoutMs: number;
  readonly #idleTimeoutMs: number;
  readonly #keepAliveMs: number;
  readonly #clientName: string;
  readonly #pieceCount: number;
  /** BEP 10 state, when both sides speak the extension protocol. */
  readonly #extensions: SessionExtensions | undefined;

  #amChoking = true;
  #amInterested = false;
  #peerChoking = true;
  #peerInterested = false;

  /** The peer's pieces. */
  readonly #field: Bitfield;
  /** The peer's pieces we might want (`#field` masked by the wanted pieces). */
  #requestable: Bitfield;
  #haveAll = false;
  #gotAvailability = false;
  /** Pieces the peer has that we want and lack. */
  #interesting = 0;
  readonly #allowedFast = new Set<number>();

  /** Our outstanding requests, by block key. */
  readonly #requests = new IntSet(MAX_QUEUE_DEPTH);
  /** Requests we gave up on (choke, cancel): their blocks may still arrive. */
  readonly #late = new Set<number>();
  #queueDepth = INITIAL_QUEUE_DEPTH;
  /** The last top-up found fewer blocks than it had room for. */
  #starved = false;
  #slowStart = true;
  #peerReqq = Infinity;
  #waitingSince = 0;
  #lastBlockAt = 0;
  #snubbed = false;

  /** Serves the peer's requests while we unchoke it. */
  readonly #uploader: Uploader;

  /**
   * Queued control messages, encoded as they are queued (`#outboxLength` bytes): a request
   * costs no message object. Copied out on flush, so the buffer is reused.
   */
  #outbox = new Uint8Array(1024);
  #outboxLength = 0;
  #flushScheduled = false;
  #writesInFlight = 0;
  #controlBytesInFlight = 0;

  #downloaded = 0;
  #lastTick = 0;
  #startedAt = 0;
  /**
   * Liveness, checked once a tick from counters so the message path reads no clock: messages
   * read and frames written, the values seen at the last tick, and when they last moved.
   */
  #messagesIn = 0;
  #framesOut = 0;
  #seenIn = 0;
  #seenOut = 0;
  #heardAt = 0;
  #saidAt = 0;
  #lastDownloaded = 0;
  #lastUploaded = 0;
  #downloadRate = 0;
  #uploadRate = 0;

  #closed = false;
  #ended: Promise<void> | undefined;

  /**
   * Wraps a connection whose handshake is complete. Call
   * {@linkcode PeerSession.start} to send our availability and read messages.
   *
   * @param conn The connection.
   * @param host The torrent.
   * @param options Our reserved bits and timeouts.
   */
  constructor(conn: SessionConnection, host: SessionHost, options: PeerSessionOptions) {
    this.#conn = conn;
    this.#host = host;
    this.#pieceCount = host.have.length;
    this.#fast = supportsFastExtension(options.reserved) &&
      supportsFastExtension(conn.remoteReserved);
    this.#extended = supportsExtensionProtocol(options.reserved) &&
      supportsExtensionProtocol(conn.remoteReserved);
    this.#snubTimeoutMs = options.snubTimeoutMs ?? 30_000;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 240_000;
    this.#keepAliveMs = options.keepAliveMs ?? 90_000;
    this.#clientName = options.clientName ?? "DenoTorrent 0.1";
    this.#field = new Bitfield(this.#pieceCount);
    this.#requestable = this.#field;
    this.#lastTick = host.now();
    this.#startedAt = this.#lastTick;
    this.#heardAt = this.#lastTick;
    this.#saidAt = this.#lastTick;
    this.#requestable = host.requestable(this.#field);
    this.#extensions = this.#extended
      ? new SessionExtensions({
        clientName: this.#clientName,
        reqq: MAX_QUEUED_UPLOADS,
        ...(host.infoBytes ? { infoBytes: host.infoBytes } : {}),
        ...(host.listenPort ? { port: host.listenPort } : {}),
      })
      : undefined;
    this.#uploader = new Uploader({
      pieceLength: host.pieceLength,
      totalLength: host.totalLength,
      has: (index) => host.have.has(index),
      read: (index, begin, length) => host.read(index, begin, length),
      ...(host.readInto
        ? { readInto: (index, begin, target) => host.readInto!(index, begin, target) }
        : {}),
      write: (frames) => {
        // Control messages queued before the blocks go first.
        this.#flush();
        return this.#conn.sendEncoded(frames);
      },
      onError: (error) => this.close(error),
      maxQueued: MAX_QUEUED_UPLOADS,
    });
  }

  /** The peer's address. */
  get address(): PeerAddress {
    return this.#conn.address;
  }

  /** The peer's 20-byte id. */
  get peerId(): Uint8Array {
    return this.#conn.remotePeerId;
  }

  /** Whether both sides announced the fast extension (BEP 6). */
  get fast(): boolean {
    return this.#fast;
  }

  /** We choke the peer. */
  get amChoking(): boolean {
    return this.#amChoking;
  }

  /** The peer is interested in our pieces. */
  get peerInterested(): boolean {
    return this.#peerInterested;
  }

  /** The peer has every piece. */
  get isSeed(): boolean {
    return this.#field.isComplete;
  }

  /** The peer has not sent a requested block for the snub timeout. */
  get snubbed(): boolean {
    return this.#snubbed;
  }

  /** The peer's pieces (live; do not modify). */
  get field(): Bitfield {
    return this.#field;
  }

  /** Bytes of verified-or-not block payload received. */
  get downloaded(): number {
    return this.#downloaded;
  }

  /** Bytes of block payload sent. */
  get uploaded(): number {
    return this.#uploader.uploaded;
  }

  /** Smoothed bytes per second received. */
  get downloadRate(): number {
    return this.#downloadRate;
  }

  /** Smoothed bytes per second sent. */
  get uploadRate(): number {
    return this.#uploadRate;
  }

  /** Whether the session has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Tells whether we have an outstanding request for a block.
   *
   * @param index Piece index.
   * @param begin Block offset.
   * @returns `true` if requested and not yet received.
   */
  isRequested(index: number, begin: number): boolean {
    return this.#requests.has(blockKey(index, begin));
  }

  /** The peer's latest extension handshake (BEP 10), if one arrived. */
  get remoteExtensions(): ExtensionHandshake | undefined {
    return this.#extensions?.remoteHandshake;
  }

  /**
   * Sends an extension message (BEP 10) with the id the peer assigned to
   * extension `name`, e.g. `ut_pex`.
   *
   * @param name The extension name.
   * @param payload The extension message payload.
   * @returns `false` if the peer did not announce the extension (nothing sent).
   */
  sendExtension(name: string, payload: Uint8Array): boolean {
    const message = this.#extensions?.message(name, payload);
    if (!message || this.#closed) return false;
    this.#queue(message);
    return true;
  }

  /**
   * Sends our availability (and the BEP 10 handshake), then reads the
   * peer's messages until the connection ends.
   *
   * @returns Resolves when the session has ended, never rejects.
   */
  start(): Promise<void> {
    if (this.#ended) return this.#ended;
    // BEP 3: the bitfield (or BEP 6 have-all/have-none) is the first message.
    const have = this.#host.have;
    if (this.#fast && have.count === 0) this.#queue({ type: "have-none" });
    else if (this.#fast && have.isComplete) this.#queue({ type: "have-all" });
    else if (have.count > 0) this.#queue({ type: "bitfield", bitfield: have.toBytes() });
    if (this.#extensions) this.#queue(this.#extensions.handshake());
    // Blocks skip the message object, the read result and the await: the bulk of the
    // per-block garbage at full speed.
    this.#conn.setPieceHandler?.((index, begin, block) => {
      if (!this.#closed) this.#onPiece(index, begin, block);
    });
    this.#ended = this.#readLoop();
    return this.#ended;
  }

  /**
   * Ends the session: outstanding requests go back to the picker, the
   * peer's pieces leave the availability counts, the connection closes.
   *
   * @param reason Why, for logs; an `Error` marks a faulty peer.
   */
  close(reason?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    const picker = this.#host.picker;
    const returned = this.#requests.size > 0;
    this.#requests.forEach((key) => {
      picker.blockCancelled(
        Math.floor(key / BLOCKS_PER_PIECE_KEY),
        (key % BLOCKS_PER_PIECE_KEY) * BLOCK_SIZE,
      );
    });
    this.#requests.clear();
    this.#late.clear();
    this.#uploader.close();
    this.#outboxLength = 0;
    if (this.#haveAll) picker.removePeerHaveAll();
    else if (this.#field.count > 0) picker.removePeerBitfield(this.#field);
    this.#conn.close(reason);
    this.#host.sessionClosed(this, reason);
    if (returned) this.#host.requestsReturned();
  }

  /**
   * Chokes or unchokes the peer (our upload decision). Choking drops the
   * peer's queued requests (rejecting them under BEP 6).
   *
   * @param choke `true` to choke.
   */
  setChoking(choke: boolean): void {
    if (this.#closed || choke === this.#amChoking) return;
    this.#amChoking = choke;
    this.#queue({ type: choke ? "choke" : "unchoke" });
    if (choke) {
      const dropped = this.#uploader.clear();
      if (this.#fast) { for (const r of dropped) this.#queue({ type: "reject", ...r }); }
    }
  }

  /**
   * Our piece `index` was verified: announce it and update our interest.
   *
   * @param index Piece index.
   */
  pieceVerified(index: number): void {
    if (this.#closed) return;
    if (this.#field.has(index)) {
      if (--this.#interesting === 0) this.#setInterested(false);
    } else {
      this.#queue({ type: "have", index });
    }
  }

  /**
   * Withdraws our request for a block that arrived from another peer
   * (endgame), sending `cancel`.
   *
   * @param index Piece index.
   * @param begin Block offset.
   * @param length Block length.
   */
  cancelRequest(index: number, begin: number, length: number): void {
    const key = blockKey(index, begin);
    if (!this.#requests.delete(key)) return;
    this.#late.add(key);
    this.#trimLate();
    this.#queue({ type: "cancel", index, begin, length });
  }

  /** Tops up the request pipeline, e.g. after blocks went back to the picker. */
  fillRequests(): void {
    if (this.#closed || !this.#amInterested) return;
    if (this.#peerChoking && this.#allowedFast.size === 0) return;
    const depth = this.#snubbed ? 1 : Math.min(this.#queueDepth, this.#peerReqq);
    const free = depth - this.#requests.size;
    if (free <= 0) return;
    // Top up in batches so requests go out several per write.
    if (this.#requests.size > 0 && free < Math.min(16, depth >> 2)) return;
    let field = this.#requestable;
    if (this.#peerChoking) field = this.#allowedFastField();
    const picked = this.#host.pickRequests(this, field, free);
    // Nothing more to pick until pieces complete or blocks return (which refill all sessions):
    // skip the picker's scan on every block that arrives meanwhile.
    this.#starved = picked.length < free;
    if (picked.length === 0) return;
    if (this.#requests.size === 0) this.#waitingSince = this.#host.now();
    for (const r of picked) {
      this.#requests.add(blockKey(r.index, r.begin));
      this.#queueRequest(r.index, r.begin, r.length);
    }
    this.#scheduleFlush();
  }

  /**
   * Periodic upkeep (about once a second): rates, pipeline depth, snub
   * detection.
   *
   * @param now The current time in ms.
   */
  tick(now: number): void {
    if (this.#closed) return;
    if (!this.#checkLiveness(now)) return;
    const elapsed = (now - this.#lastTick) / 1000;
    if (elapsed > 0) {
      const down = (this.#downloaded - this.#lastDownloaded) / elapsed;
      const uploaded = this.#uploader.uploaded;
      const up = (uploaded - this.#lastUploaded) / elapsed;
      this.#downloadRate = this.#downloadRate === 0 ? down : (this.#downloadRate + down) / 2;
      this.#uploadRate = this.#uploadRate === 0 ? up : (this.#uploadRate + up) / 2;
      this.#lastDownloaded = this.#downloaded;
      this.#lastUploaded = uploaded;
      this.#lastTick = now;
      if (down > 0) {
        const depth = Math.ceil((this.#downloadRate * QUEUE_SECONDS) / BLOCK_SIZE);
        const clamped = Math.max(MIN_QUEUE_DEPTH, Math.min(MAX_QUEUE_DEPTH, depth));
        if (this.#slowStart) {
          // Early samples are noisy: only grow until the rate has been measured for a while.
          this.#queueDepth = Math.max(this.#queueDepth, clamped);
          if (now - this.#startedAt >= SLOW_START_MS) this.#slowStart = false;
        } else {
          this.#queueDepth = clamped;
        }
      }
    }
    if (
      !this.#snubbed && this.#requests.size > 0 &&
      now - Math.max(this.#lastBlockAt, this.#waitingSince) >= this.#snubTimeoutMs
    ) {
      this.#snub();
    }
    this.fillRequests();
  }

  /**
   * A snapshot of the session's state and counters.
   *
   * @returns The stats.
   */
  stats(): PeerSessionStats {
    return {
      address: this.#conn.address,
      amChoking: this.#amChoking,
      amInterested: this.#amInterested,
      peerChoking: this.#peerChoking,
      peerInterested: this.#peerInterested,
      snubbed: this.#snubbed,
      downloaded: this.#downloaded,
      uploaded: this.#uploader.uploaded,
      downloadRate: this.#downloadRate,
      uploadRate: this.#uploadRate,
      queueDepth: this.#queueDepth,
      requestsInFlight: this.#requests.size,
      piecesHave: this.#field.count,
      requestsQueued: this.#uploader.queued,
      bytesQueued: this.#outboxLength + this.#controlBytesInFlight + this.#uploader.bytesInFlight,
    };
  }

  // --- reading ---

  async #readLoop(): Promise<void> {
    const reader = this.#conn.messages.getReader();
    let reason: unknown;
    try {
      while (!this.#closed) {
        const result = await reader.read();
        if (result.done) break;
        this.#messagesIn++;
        this.#handle(result.value);
      }
    } catch (error) {
      reason = error;
    } finally {
      reader.releaseLock();
    }
    this.close(reason);
    await this.#conn.closed;
  }

  #handle(message: PeerMessage): void {
    switch (message.type) {
      case "piece":
        return this.#onPiece(message.index, message.begin, message.block);
      case "request":
        return this.#onRequest(message);
      case "have":
        return this.#onHave(message.index);
      case "keep-alive":
        return;
      case "choke":
        return this.#onChoke();
      case "unchoke":
        this.#peerChoking = false;
        return this.fillRequests();
      case "interested":
      case "not-interested": {
        const interested = message.type === "interested";
        if (interested === this.#peerInterested) return;
        this.#peerInterested = interested;
        return this.#host.interestChanged(this);
      }
      case "bitfield":
        return this.#onBitfield(message.bitfield);
      case "have-all":
      case "have-none":
        return this.#onHaveAllOrNone(message.type === "have-all");
      case "cancel":
        return this.#onCancel(message.index, message.begin, message.length);
      case "reject":
        return this.#onReject(message.index, message.begin, message.length);
      case "allowed-fast":
        this.#requireFast(message.type);
        this.#checkIndex(message.index, message.type);
        this.#allowedFast.add(message.index);
        return this.fillRequests();
      case "suggest":
        this.#requireFast(message.type);
        return this.#checkIndex(message.index, message.type);
      case "extended":
        return this.#onExtended(message.id, message.payload);
      case "port":
      case "unknown":
        return;
    }
  }

  #onPiece(index: number, begin: number, block: Uint8Array): void {
    const key = blockKey(index, begin);
    if (!this.#requests.delete(key)) {
      if (this.#late.delete(key)) {
        this.#downloaded += block.length;
        return;
      }
      throw new PeerProtocolError(
        `Unexpected piece message from ${this.#where()}: block ${index}:${begin} was not requested`,
      );
    }
    const expected = Math.min(BLOCK_SIZE, this.#pieceLengthAt(index) - begin);
    if (block.length !== expected) {
      throw new PeerProtocolError(
        `Invalid piece message from ${this.#where()}: block ${index}:${begin} is ${block.length} bytes, expected ${expected}`,
      );
    }
    this.#downloaded += block.length;
    this.#lastBlockAt = this.#host.now();
    this.#snubbed = false;
    if (this.#slowStart && this.#queueDepth < MAX_QUEUE_DEPTH) this.#queueDepth++;
    this.#host.blockReceived(this, index, begin, block);
    if (!this.#starved) this.fillRequests();
  }

  #onRequest(r: UploadRequest): void {
    const valid = r.index < this.#pieceCount && r.length > 0 &&
      r.length <= MAX_REQUEST_LENGTH && this.#host.have.has(r.index) &&
      r.begin + r.length <= this.#pieceLengthAt(r.index);
    if (!valid || this.#amChoking || !this.#uploader.add(r)) {
      if (this.#fast) {
        this.#queue({ type: "reject", index: r.index, begin: r.begin, length: r.length });
      }
    }
  }

  #onCancel(index: number, begin: number, length: number): void {
    this.#uploader.cancel({ index, begin, length });
  }

  #onHave(index: number): void {
    this.#checkIndex(index, "have");
    this.#gotAvailability = true;
    if (!this.#field.set(index)) return;
    if (this.#haveAll) return;
    this.#host.picker.peerHas(index);
    if (this.#requestable !== this.#field && this.#host.wants(index)) this.#requestable.set(index);
    if (this.#host.wants(index) && this.#interesting++ === 0) this.#setInterested(true);
    else if (this.#amInterested) this.fillRequests();
    this.#host.peerHasChanged(this);
  }

  #onBitfield(bytes: Uint8Array): void {
    let field: Bitfield;
    try {
      field = Bitfield.fromBytes(bytes, this.#pieceCount);
    } catch (error) {
      throw new PeerProtocolError(
        `Invalid bitfield message from ${this.#where()}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (this.#gotAvailability) {
      // Out of order (BEP 3 wants it first), but aria2 1.36 sends one after have-none once it
      // has pieces: read it as the `have` messages it stands for rather than drop the peer.
      for (const index of field) this.#onHave(index);
      return;
    }
    this.#gotAvailability = true;
    for (const index of field) this.#field.set(index);
    this.#host.picker.addPeerBitfield(this.#field);
    this.#availabilityKnown();
  }

  #onHaveAllOrNone(all: boolean): void {
    const type = all ? "have-all" : "have-none";
    this.#requireFast(type);
    if (this.#gotAvailability) {
      throw new PeerProtocolError(
        `Unexpected ${type} message from ${this.#where()}: availability already known`,
      );
    }
    this.#gotAvailability = true;
    if (!all) return;
    this.#field.setAll();
    this.#haveAll = true;
    this.#host.picker.addPeerHaveAll();
    this.#availabilityKnown();
  }

  #availabilityKnown(): void {
    this.#requestable = this.#host.requestable(this.#field);
    let interesting = 0;
    for (const index of this.#requestable) if (this.#host.wants(index)) interesting++;
    this.#interesting = interesting;
    if (interesting > 0) this.#setInterested(true);
    this.#host.peerHasChanged(this);
  }

  #onChoke(): void {
    if (this.#peerChoking) return;
    this.#peerChoking = true;
    // Under BEP 6 a choke keeps requests alive until rejected; otherwise they are dropped.
    if (this.#fast || this.#requests.size === 0) return;
    this.#returnRequests(false);
  }

  #onReject(index: number, begin: number, length: number): void {
    this.#requireFast("reject");
    const key = blockKey(index, begin);
    if (this.#requests.delete(key)) {
      this.#host.picker.blockCancelled(index, begin);
      this.#host.requestsReturned();
      return;
    }
    if (this.#late.delete(key)) return;
    throw new PeerProtocolError(
      `Unexpected reject message from ${this.#where()}: block ${index}:${begin}+${length} was not requested`,
    );
  }

  #onExtended(id: number, payload: Uint8Array): void {
    const extensions = this.#extensions;
    if (!extensions) return; // not negotiated: ignored, as unknown messages are
    let receipt;
    try {
      receipt = extensions.receive(id, payload);
    } catch (error) {
      throw new PeerProtocolError(
        `Invalid extended message from ${this.#where()}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    for (const reply of receipt.replies) this.#queue(reply);
    const hooks = this.#host.extensionHooks;
    if (receipt.handshake) {
      const reqq = receipt.handshake.reqq;
      if (reqq !== undefined && reqq > 0) this.#peerReqq = Math.max(MIN_QUEUE_DEPTH, reqq);
      hooks?.onHandshake?.(this, receipt.handshake);
    } else if (receipt.name !== undefined && receipt.replies.length === 0) {
      hooks?.onMessage?.(this, receipt.name, payload);
    }
  }

  // --- requesting ---

  #setInterested(interested: boolean): void {
    if (interested === this.#amInterested) return;
    this.#amInterested = interested;
    this.#queue({ type: interested ? "interested" : "not-interested" });
    if (interested) this.fillRequests();
  }

  /** Gives up on the pipeline: a snubbing peer's requests go to other peers. */
  #snub(): void {
    this.#snubbed = true;
    this.#returnRequests(true);
  }

  #returnRequests(sendCancel: boolean): void {
    const picker = this.#host.picker;
    this.#requests.forEach((key) => {
      const index = Math.floor(key / BLOCKS_PER_PIECE_KEY);
      const begin = (key % BLOCKS_PER_PIECE_KEY) * BLOCK_SIZE;
      picker.blockCancelled(index, begin);
      this.#late.add(key);
      if (sendCancel) {
        const length = Math.min(BLOCK_SIZE, this.#pieceLengthAt(index) - begin);
        this.#queue({ type: "cancel", index, begin, length });
      }
    });
    this.#requests.clear();
    this.#trimLate();
    this.#host.requestsReturned();
  }

  #trimLate(): void {
    if (this.#late.size <= MAX_LATE_BLOCKS) return;
    for (const key of this.#late) {
      this.#late.delete(key);
      if (this.#late.size <= MAX_LATE_BLOCKS) return;
    }
  }

  #allowedFastField(): Bitfield {
    const field = new Bitfield(this.#pieceCount);
    for (const index of this.#allowedFast) {
      if (this.#requestable.has(index)) field.set(index);
    }
    return field;
  }

  // --- sending ---

  #queue(message: PeerMessage): void {
    if (this.#closed) return;
    try {
      const length = encodedLength(message);
      this.#reserve(length);
      encodeMessageInto(message, this.#outbox, this.#outboxLength);
      this.#outboxLength += length;
    } catch (error) {
      this.close(error);
      return;
    }
    this.#scheduleFlush();
  }

  /** Queues a `request` (BEP 3) for a block the picker chose: 17 bytes, no message object. */
  #queueRequest(index: number, begin: number, length: number): void {
    this.#reserve(17);
    const out = this.#outbox;
    const at = this.#outboxLength;
    writeUint32(out, at, 13);
    out[at + 4] = 6;
    writeUint32(out, at + 5, index);
    writeUint32(out, at + 9, begin);
    writeUint32(out, at + 13, length);
    this.#outboxLength = at + 17;
  }

  #reserve(bytes: number): void {
    const needed = this.#outboxLength + bytes;
    if (needed <= this.#outbox.length) return;
    const larger = new Uint8Array(Math.max(needed, this.#outbox.length * 2));
    larger.set(this.#outbox.subarray(0, this.#outboxLength));
    this.#outbox = larger;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => this.#flush());
  }

  #takeOutbox(): Uint8Array {
    const frames = this.#outbox.slice(0, this.#outboxLength);
    this.#outboxLength = 0;
    return frames;
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#closed || this.#outboxLength === 0) return;
    if (this.#writesInFlight >= MAX_WRITES_IN_FLIGHT) {
      this.close(
        new PeerProtocolError(
          `Peer ${this.#where()} does not read: ${this.#writesInFlight} writes ` +
            `(${this.#controlBytesInFlight} bytes) are waiting`,
        ),
      );
      return;
    }
    const frames = this.#takeOutbox();
    this.#writesInFlight++;
    this.#controlBytesInFlight += frames.length;
    this.#framesOut++;
    this.#conn.sendEncoded(frames).then(
      () => {
        this.#writesInFlight--;
        this.#controlBytesInFlight -= frames.length;
      },
      (error) => this.close(error),
    );
  }

  /**
   * Keep-alives both ways (BEP 3): a peer that sent nothing for `idleTimeoutMs` is gone and
   * loses its slot; when we have sent nothing for `keepAliveMs`, a keep-alive tells the peer we
   * are still here (libtorrent and Transmission drop silent peers). Returns `false` if closed.
   */
  #checkLiveness(now: number): boolean {
    // Blocks come through the piece path without a message count: the byte counters show them.
    const heard = this.#messagesIn + this.#downloaded;
    if (heard !== this.#seenIn) {
      this.#seenIn = heard;
      this.#heardAt = now;
    }
    const said = this.#framesOut + this.#uploader.uploaded;
    if (said !== this.#seenOut) {
      this.#seenOut = said;
      this.#saidAt = now;
    }
    if (now - this.#heardAt >= this.#idleTimeoutMs) {
      this.close(`idle: nothing received for ${Math.round((now - this.#heardAt) / 1000)} s`);
      return false;
    }
    if (now - this.#saidAt >= this.#keepAliveMs) {
      this.#queue({ type: "keep-alive" });
      this.#scheduleFlush();
    }
    return true;
  }

  // --- helpers ---

  #requireFast(type: string): void {
    if (!this.#fast) {
      throw new PeerProtocolError(
        `Unexpected ${type} message from ${this.#where()}: the fast extension was not negotiated`,
      );
    }
  }

  #checkIndex(index: number, type: string): void {
    if (index >= this.#pieceCount) {
      throw new PeerProtocolError(
        `Invalid ${type} message from ${this.#where()}: piece index ${index} out of range 0..${
          this.#pieceCount - 1
        }`,
      );
    }
  }

  #pieceLengthAt(index: number): number {
    const host = this.#host;
    return index === this.#pieceCount - 1
      ? host.totalLength - index * host.pieceLength
      : host.pieceLength;
  }

  #where(): string {
    return formatPeerAddress(this.#conn.address);
  }
}

function writeUint32(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value >>> 24;
  target[offset + 1] = (value >>> 16) & 0xff;
  target[offset + 2] = (value >>> 8) & 0xff;
  target[offset + 3] = value & 0xff;
}
