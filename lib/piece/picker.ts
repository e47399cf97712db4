/**
 * Rarest-first piece and block selection (BEP 3), as a pure state machine.
 *
 * @module
 */

import { Bitfield } from "./bitfield.ts";
import { BLOCK_SIZE } from "./assembler.ts";

/** One block to request from a peer. */
export interface BlockRequest {
  /** Piece index. */
  index: number;
  /** Byte offset inside the piece. */
  begin: number;
  /** Length in bytes. */
  length: number;
}

/** Options for {@linkcode PiecePicker}. */
export interface PiecePickerOptions {
  /** Number of pieces in the torrent. */
  pieceCount: number;
  /** Nominal piece length from the metainfo. */
  pieceLength: number;
  /** Total length of all files. */
  totalLength: number;
  /** Block size; defaults to 16384. */
  blockSize?: number;
  /** Random source in `[0, 1)`; defaults to `Math.random`. Inject a fixed one in tests. */
  random?: () => number;
  /** Pieces picked in random order (not rarest) until this many are complete; defaults to 4. */
  randomFirstPieces?: number;
}

/** Options for {@linkcode PiecePicker.nextRequests}. */
export interface NextRequestsOptions {
  /**
   * Allow duplicate requests for blocks already in flight once every missing block is
   * requested (endgame). The caller sends `cancel` to the other peers when a block arrives.
   */
  endgame?: boolean;
  /**
   * Returns `true` for blocks this peer was already asked for, so endgame never
   * asks one peer twice for the same block.
   */
  skip?: (index: number, begin: number) => boolean;
  /**
   * Only blocks of pieces already started (some block requested or received): no new piece
   * is begun. For a caller over its memory cap, which may only finish what it holds.
   */
  startedOnly?: boolean;
}

/** Retired piece states kept for reuse, at most. */
const MAX_SPARE_PIECES = 256;

/** Download state of a piece that has at least one block requested or received. */
interface ActivePiece {
  /** Outstanding requests per block. */
  inFlight: Uint16Array;
  /** 1 when the block has arrived. */
  received: Uint8Array;
  receivedCount: number;
  /** Blocks neither received nor in flight. */
  freeCount: number;
  /** No free block sits below this slot. */
  cursor: number;
  length: number;
}

/**
 * Chooses which blocks to request next (BEP 3): partially requested pieces first,
 * then rarest-first with random tie-breaking (random order for the first few pieces),
 * and duplicate requests in endgame. No I/O; the RNG is injected.
 *
 * Not-yet-started pieces sit in buckets by availability, so picking a piece from a
 * peer that has it is O(1) in the common case, and availability changes are O(1) per piece.
 *
 * @example Usage
 * ```ts
 * import { PiecePicker } from "./picker.ts";
 * import { Bitfield } from "./bitfield.ts";
 * import assert from "node:assert/strict";
 *
 * const picker = new PiecePicker({
 *   pieceCount: 3,
 *   pieceLength: 32768,
 *   totalLength: 81920,
 *   randomFirstPieces: 0,
 * });
 * const common = new Bitfield(3);
 * common.setAll();
 * const rare = new Bitfield(3);
 * rare.set(2);
 * picker.addPeerBitfield(common);
 * picker.addPeerBitfield(rare);
 * // Pieces 0 and 1 have availability 1, piece 2 has 2: a rarest piece comes first.
 * const requests = picker.nextRequests(common, 2);
 * assert.equal(requests.length, 2);
 * assert.notEqual(requests[0]!.index, 2);
 * assert.equal(requests[0]!.index, requests[1]!.index);
 * ```
 */
export class PiecePicker {
  readonly #pieceCount: number;
  readonly #pieceLength: number;
  readonly #totalLength: number;
  readonly #blockSize: number;
  readonly #random: () => number;
  readonly #randomFirstPieces: number;

  readonly #have: Bitfield;
  /** Per-piece availability, not counting have-all peers. */
  readonly #avail: Int32Array;
  /** Peers that sent `have all` (BEP 6): they add to every piece, so they shift no bucket. */
  #seeds = 0;
  /** Untouched missing pieces by availability. */
  readonly #buckets: number[][] = [[]];
  /** Position of each piece in its bucket, or -1. */
  readonly #pos: Int32Array;
  readonly #active = new Map<number, ActivePiece>();
  /** Active pieces with at least one free block, in the order they started. */
  readonly #activeWithFree = new Set<number>();
  /**
   * Retired states of full-size pieces, reused by the next pieces started: one per piece
   * would live as long as the piece downloads and then be old-generation garbage.
   */
  readonly #spare: ActivePiece[] = [];
  /** Blocks of a full-size piece: the size kept in `#spare`. */
  readonly #spareBlocks: number;
  /** Missing blocks neither received nor in flight. */
  #freeBlocks = 0;
  /** Pieces to pick before any other, most urgent first (see `setPriority`). */
  #priority: readonly number[] = [];

  /**
   * Creates a picker for a torrent where we have nothing yet.
   *
   * @param options Torrent geometry, block size, RNG.
   * @throws {RangeError} If the geometry is inconsistent.
   */
  constructor(options: PiecePickerOptions) {
    const { pieceCount, pieceLength, totalLength } = options;
    const blockSize = options.blockSize ?? BLOCK_SIZE;
    if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) {
      throw new RangeError(`Cannot create piece picker: invalid piece length "${pieceLength}"`);
    }
    if (!Number.isSafeInteger(blockSize) || blockSize <= 0) {
      throw new RangeError(`Cannot create piece picker: invalid block size "${blockSize}"`);
    }
    if (
      !Number.isSafeInteger(totalLength) || totalLength < 0 ||
      !Number.isSafeInteger(pieceCount) || pieceCount !== Math.ceil(totalLength / pieceLength)
    ) {
      throw new RangeError(
        `Cannot create piece picker: piece count "${pieceCount}" does not match total length ${totalLength} and piece length ${pieceLength}`,
      );
    }
    if (Math.ceil(pieceLength / blockSize) > 0xffff) {
      throw new RangeError(`Cannot create piece picker: too many blocks per piece`);
    }
    this.#pieceCount = pieceCount;
    this.#pieceLength = pieceLength;
    this.#totalLength = totalLength;
    this.#blockSize = blockSize;
    this.#spareBlocks = Math.ceil(pieceLength / blockSize);
    this.#random = options.random ?? Math.random;
    this.#randomFirstPieces = options.randomFirstPieces ?? 4;
    this.#have = new Bitfield(pieceCount);
    this.#avail = new Int32Array(pieceCount);
    this.#pos = new Int32Array(pieceCount);
    const bucket = this.#buckets[0]!;
    for (let i = 0; i < pieceCount; i++) {
      this.#pos[i] = i;
      bucket.push(i);
      this.#freeBlocks += this.#blockCount(i);
    }
  }

  /** Number of pieces. */
  get pieceCount(): number {
    return this.#pieceCount;
  }

  /** Whether we have every piece. */
  get isComplete(): boolean {
    return this.#have.isComplete;
  }

  /** Number of pieces we do not have. */
  get missingPieceCount(): number {
    return this.#pieceCount - this.#have.count;
  }

  /** Number of pieces we have. */
  get haveCount(): number {
    return this.#have.count;
  }

  /** Whether every missing block is already requested (endgame may start). */
  get inEndgame(): boolean {
    return this.#freeBlocks === 0 && !this.#have.isComplete;
  }

  /** A copy of the pieces we have, e.g. for a `bitfield` message. */
  get have(): Bitfield {
    return Bitfield.fromBytes(this.#have.toBytes(), this.#pieceCount);
  }

  /**
   * Tells whether we have piece `index`.
   *
   * @param index Piece index.
   * @returns `true` if verified and stored.
   */
  has(index: number): boolean {
    return this.#have.has(index);
  }

  /**
   * Returns how many known peers have piece `index`.
   *
   * @param index Piece index.
   * @returns The availability count.
   */
  availability(index: number): number {
    this.#check(index);
    return this.#avail[index]! + this.#seeds;
  }

  /**
   * Tells whether a peer has any piece we lack (BEP 3 `interested`).
   *
   * @param peerBitfield The peer's pieces.
   * @returns `true` if we want something from the peer.
   */
  isInteresting(peerBitfield: Bitfield): boolean {
    this.#checkBitfield(peerBitfield);
    if (this.#have.isComplete) return false;
    if (peerBitfield.isComplete) return true;
    for (const i of peerBitfield) if (!this.#have.has(i)) return true;
    return false;
  }

  /**
   * Counts a peer's pieces (from its `bitfield` message) in availability.
   *
   * @param bitfield The peer's pieces.
   * @throws {RangeError} If the bitfield length differs from the piece count.
   */
  addPeerBitfield(bitfield: Bitfield): void {
    this.#checkBitfield(bitfield);
    for (const i of bitfield) this.#bump(i, 1);
  }

  /**
   * Removes a departing peer's pieces from availability. Pass its current bitfield,
   * including pieces added later with {@linkcode PiecePicker.peerHas}.
   *
   * @param bitfield The peer's pieces.
   * @throws {RangeError} If the bitfield length differs or availability would go negative.
   */
  removePeerBitfield(bitfield: Bitfield): void {
    this.#checkBitfield(bitfield);
    for (const i of bitfield) {
      if (this.#avail[i]! <= 0) {
        throw new RangeError(
          `Cannot remove peer bitfield: availability of piece ${i} would be negative`,
        );
      }
    }
    for (const i of bitfield) this.#bump(i, -1);
  }

  /** Counts a peer that sent `have all` (BEP 6). O(1). */
  addPeerHaveAll(): void {
    this.#seeds++;
  }

  /**
   * Removes a `have all` peer (BEP 6). O(1).
   *
   * @throws {RangeError} If no such peer was added.
   */
  removePeerHaveAll(): void {
    if (this.#seeds === 0) throw new RangeError("Cannot remove have-all peer: none were added");
    this.#seeds--;
  }

  /**
   * Counts one `have` message (BEP 3).
   *
   * @param index Piece index.
   * @throws {RangeError} If `index` is out of range.
   */
  peerHas(index: number): void {
    this.#check(index);
    this.#bump(index, 1);
  }

  /**
   * Records that piece `index` is verified and stored.
   *
   * @param index Piece index.
   * @throws {RangeError} If `index` is out of range.
   */
  markHave(index: number): void {
    this.#check(index);
    if (!this.#have.set(index)) return;
    const active = this.#active.get(index);
    if (active) {
      this.#freeBlocks -= active.freeCount;
      this.#retire(index, active);
    } else {
      this.#freeBlocks -= this.#blockCount(index);
      this.#unbucket(index);
    }
  }

  /**
   * Records that piece `index` failed its hash check: all its blocks become requestable again.
   *
   * @param index Piece index.
   * @throws {RangeError} If `index` is out of range.
   */
  markPieceFailed(index: number): void {
    this.#check(index);
    if (this.#have.has(index)) return;
    const active = this.#active.get(index);
    if (!active) return;
    this.#freeBlocks += active.received.length - active.freeCount;
    this.#retire(index, active);
    this.#bucket(index);
  }

  /**
   * Chooses up to `count` blocks to request from a peer: first free blocks of partially
   * requested pieces the peer has, then new pieces rarest-first (random for the first
   * pieces). The chosen blocks are marked in flight.
   *
   * @param peerBitfield The peer's pieces.
   * @param count Maximum number of requests.
   * @param options Endgame switch and per-peer skip test.
   * @returns The requests, possibly fewer than `count`.
   * @throws {RangeError} If the bitfield length differs from the piece count.
   */
  nextRequests(
    peerBitfield: Bitfield,
    count: number,
    options: NextRequestsOptions = {},
  ): BlockRequest[] {
    this.#checkBitfield(peerBitfield);
    const out: BlockRequest[] = [];
    if (count <= 0 || this.#have.isComplete) return out;

    for (const index of this.#priority) {
      if (out.length >= count) return out;
      if (this.#have.has(index) || !peerBitfield.has(index)) continue;
      const active = this.#active.get(index);
      if (!active) {
        if (!options.startedOnly) this.#take(index, this.#activate(index), count, out);
      } else if (active.freeCount > 0) this.#take(index, active, count, out);
    }
    for (const index of this.#activeWithFree) {
      if (out.length >= count) return out;
      if (peerBitfield.has(index)) this.#take(index, this.#active.get(index)!, count, out);
    }
    while (out.length < count && this.#freeBlocks > 0 && !options.startedOnly) {
      const index = this.#have.count < this.#randomFirstPieces
        ? this.#pickRandom(peerBitfield)
        : this.#pickRarest(peerBitfield);
      if (index < 0) break;
      this.#take(index, this.#activate(index), count, out);
    }
    if (out.length < count && options.endgame && this.#freeBlocks === 0) {
      this.#takeDuplicates(peerBitfield, count, options.skip, out);
    }
    return out;
  }

  /**
   * Sets the pieces to request before any other, in order: a streaming reader's next pieces,
   * the one it waits on first (its deadline is the soonest). They take precedence over
   * partially requested and rarest pieces; pieces we have are skipped. Replaces the previous
   * list; an empty list restores plain rarest-first.
   *
   * @param pieces Piece indices, most urgent first.
   * @throws {RangeError} If an index is out of range.
   *
   * @example A sequential window
   * ```ts
   * import { PiecePicker } from "./picker.ts";
   * import { Bitfield } from "./bitfield.ts";
   * import assert from "node:assert/strict";
   *
   * const picker = new PiecePicker({ pieceCount: 8, pieceLength: 16384, totalLength: 131072 });
   * const seed = new Bitfield(8);
   * seed.setAll();
   * picker.addPeerBitfield(seed);
   * picker.setPriority([6, 7]);
   * assert.deepEqual(picker.nextRequests(seed, 2).map((r) => r.index), [6, 7]);
   * ```
   */
  setPriority(pieces: readonly number[]): void {
    for (const index of pieces) this.#check(index);
    this.#priority = [...pieces];
  }

  /**
   * Records an arrived block. Works for blocks sent unrequested too.
   *
   * @param index Piece index.
   * @param begin Block offset inside the piece.
   * @returns `true` if this block completed the piece (ready to verify).
   * @throws {RangeError} If the block is out of range.
   */
  blockReceived(index: number, begin: number): boolean {
    this.#check(index);
    if (this.#have.has(index)) return false;
    const slot = this.#slot(index, begin);
    const piece = this.#active.get(index) ?? this.#activate(index);
    if (piece.received[slot] === 1) return false;
    if (piece.inFlight[slot] === 0) {
      piece.freeCount--;
      this.#freeBlocks--;
      if (piece.freeCount === 0) this.#activeWithFree.delete(index);
    }
    piece.inFlight[slot] = 0;
    piece.received[slot] = 1;
    piece.receivedCount++;
    return piece.receivedCount === piece.received.length;
  }

  /**
   * Drops one in-flight request (choke, reject or timeout); the block becomes requestable
   * again when no other request for it is outstanding.
   *
   * @param index Piece index.
   * @param begin Block offset inside the piece.
   * @throws {RangeError} If the block is out of range.
   */
  blockCancelled(index: number, begin: number): void {
    this.#check(index);
    const slot = this.#slot(index, begin);
    const piece = this.#active.get(index);
    if (!piece || piece.received[slot] === 1 || piece.inFlight[slot] === 0) return;
    if (--piece.inFlight[slot]! === 0) {
      piece.freeCount++;
      this.#freeBlocks++;
      if (slot < piece.cursor) piece.cursor = slot;
      if (piece.freeCount === 1) this.#activeWithFree.add(index);
    }
  }

  /**
   * Returns the number of outstanding requests for a block.
   *
   * @param index Piece index.
   * @param begin Block offset inside the piece.
   * @returns The in-flight count (0 when free, received or not started).
   */
  inFlight(index: number, begin: number): number {
    this.#check(index);
    const slot = this.#slot(index, begin);
    return this.#active.get(index)?.inFlight[slot] ?? 0;
  }

  // --- internals ---

  #pieceLengthOf(index: number): number {
    return index === this.#pieceCount - 1
      ? this.#totalLength - index * this.#pieceLength
      : this.#pieceLength;
  }

  #blockCount(index: number): number {
    return Math.ceil(this.#pieceLengthOf(index) / this.#blockSize);
  }

  #slot(index: number, begin: number): number {
    const length = this.#pieceLengthOf(index);
    if (!Number.isInteger(begin) || begin < 0 || begin >= length || begin % this.#blockSize) {
      throw new RangeError(`Invalid block offset "${begin}" in piece ${index}`);
    }
    return begin / this.#blockSize;
  }

  #check(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.#pieceCount) {
      throw new RangeError(
        `Invalid piece index "${index}": out of range 0..${this.#pieceCount - 1}`,
      );
    }
  }

  #checkBitfield(bitfield: Bitfield): void {
    if (bitfield.length !== this.#pieceCount) {
      throw new RangeError(
        `Invalid peer bitfield: length "${bitfield.length}", expected ${this.#pieceCount}`,
      );
    }
  }

  #bump(index: number, delta: number): void {
    const from = this.#avail[index]!;
    const to = from + delta;
    this.#avail[index] = to;
    if (this.#pos[index]! < 0) return;
    this.#removeFromBucket(index, from);
    this.#addToBucket(index, to);
  }

  #addToBucket(index: number, avail: number): void {
    while (this.#buckets.length <= avail) this.#buckets.push([]);
    const bucket = this.#buckets[avail]!;
    this.#pos[index] = bucket.length;
    bucket.push(index);
  }

  #removeFromBucket(index: number, avail: number): void {
    const bucket = this.#buckets[avail]!;
    const at = this.#pos[index]!;
    const last = bucket.pop()!;
    if (last !== index) {
      bucket[at] = last;
      this.#pos[last] = at;
    }
    this.#pos[index] = -1;
  }

  #bucket(index: number): void {
    this.#addToBucket(index, this.#avail[index]!);
  }

  #unbucket(index: number): void {
    if (this.#pos[index]! >= 0) this.#removeFromBucket(index, this.#avail[index]!);
  }

  #activate(index: number): ActivePiece {
    this.#unbucket(index);
    const blocks = this.#blockCount(index);
    let piece = blocks === this.#spareBlocks ? this.#spare.pop() : undefined;
    if (piece) {
      piece.inFlight.fill(0);
      piece.received.fill(0);
      piece.receivedCount = 0;
      piece.freeCount = blocks;
      piece.cursor = 0;
      piece.length = this.#pieceLengthOf(index);
    } else {
      piece = {
        inFlight: new Uint16Array(blocks),
        received: new Uint8Array(blocks),
        receivedCount: 0,
        freeCount: blocks,
        cursor: 0,
        length: this.#pieceLengthOf(index),
      };
    }
    this.#active.set(index, piece);
    this.#activeWithFree.add(index);
    return piece;
  }

  /** Ends a piece's active state; its arrays are kept for the next piece of the same size. */
  #retire(index: number, piece: ActivePiece): void {
    this.#active.delete(index);
    this.#activeWithFree.delete(index);
    if (piece.received.length === this.#spareBlocks && this.#spare.length < MAX_SPARE_PIECES) {
      this.#spare.push(piece);
    }
  }

  #take(index: number, piece: ActivePiece, count: number, out: BlockRequest[]): void {
    const blocks = piece.received.length;
    let slot = piece.cursor;
    for (; slot < blocks && out.length < count && piece.freeCount > 0; slot++) {
      if (piece.received[slot] === 1 || piece.inFlight[slot] !== 0) continue;
      piece.inFlight[slot] = 1;
      piece.freeCount--;
      this.#freeBlocks--;
      const begin = slot * this.#blockSize;
      out.push({ index, begin, length: Math.min(this.#blockSize, piece.length - begin) });
    }
    piece.cursor = slot;
    if (piece.freeCount === 0) this.#activeWithFree.delete(index);
  }

  /** Rarest untouched piece the peer has, random among equals; -1 if none. */
  #pickRarest(peer: Bitfield): number {
    const buckets = this.#buckets;
    // Pieces in bucket 0 are only available through have-all peers.
    for (let a = this.#seeds > 0 ? 0 : 1; a < buckets.length; a++) {
      const bucket = buckets[a]!;
      const n = bucket.length;
      if (n === 0) continue;
      if (peer.isComplete) return bucket[Math.floor(this.#random() * n)]!;
      const start = Math.floor(this.#random() * n);
      for (let k = 0; k < n; k++) {
        const index = bucket[(start + k) % n]!;
        if (peer.has(index)) return index;
      }
    }
    return -1;
  }

  /** A random untouched missing piece the peer has; -1 if none. */
  #pickRandom(peer: Bitfield): number {
    const n = this.#pieceCount;
    const start = Math.floor(this.#random() * n);
    for (let k = 0; k < n; k++) {
      const index = (start + k) % n;
      if (this.#pos[index]! >= 0 && peer.has(index) && this.availability(index) > 0) return index;
    }
    return -1;
  }

  #takeDuplicates(
    peer: Bitfield,
    count: number,
    skip: ((index: number, begin: number) => boolean) | undefined,
    out: BlockRequest[],
  ): void {
    const candidates: { request: BlockRequest; inFlight: number }[] = [];
    for (const [index, piece] of this.#active) {
      if (!peer.has(index)) continue;
      for (let slot = 0; slot < piece.received.length; slot++) {
        if (piece.received[slot] === 1) continue;
        const begin = slot * this.#blockSize;
        if (skip?.(index, begin)) continue;
        if (out.some((r) => r.index === index && r.begin === begin)) continue;
        const length = Math.min(this.#blockSize, piece.length - begin);
        candidates.push({ request: { index, begin, length }, inFlight: piece.inFlight[slot]! });
      }
    }
    // Fewest outstanding copies first, so the slowest blocks get help first.
    candidates.sort((a, b) => a.inFlight - b.inFlight);
    for (const { request } of candidates) {
      if (out.length >= count) break;
      const piece = this.#active.get(request.index)!;
      const slot = request.begin / this.#blockSize;
      if (piece.inFlight[slot]! < 0xffff) piece.inFlight[slot]!++;
      out.push(request);
    }
  }
}
