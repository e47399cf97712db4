/**
 * SHA-1 piece verification (BEP 3) with a bounded number of digests in flight.
 *
 * @module
 */

/**
 * Thrown when a piece's SHA-1 digest differs from the hash in the metainfo (BEP 3).
 *
 * @example Usage
 * ```ts
 * import { PieceHashMismatchError } from "./verify.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new PieceHashMismatchError(7);
 * assert.equal(error.name, "PieceHashMismatchError");
 * assert.equal(error.pieceIndex, 7);
 * ```
 */
export class PieceHashMismatchError extends Error {
  /** Index of the piece that failed verification. */
  readonly pieceIndex: number;

  /**
   * Creates the error.
   *
   * @param pieceIndex Index of the piece that failed.
   * @param options Standard error options (`cause`).
   */
  constructor(pieceIndex: number, options?: ErrorOptions) {
    super(`Cannot verify piece ${pieceIndex}: SHA-1 hash mismatch`, options);
    this.name = "PieceHashMismatchError";
    this.pieceIndex = pieceIndex;
  }
}

/**
 * Computes the SHA-1 digest of `bytes` with `crypto.subtle`.
 *
 * @example Usage
 * ```ts
 * import { sha1 } from "./verify.ts";
 * import assert from "node:assert/strict";
 *
 * const digest = await sha1(new TextEncoder().encode("abc"));
 * assert.equal(digest[0], 0xa9);
 * assert.equal(digest.length, 20);
 * ```
 *
 * @param bytes Data to hash.
 * @returns The 20-byte digest.
 */
export async function sha1(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-1", bytes as Uint8Array<ArrayBuffer>));
}

/**
 * Compares two byte arrays in full.
 *
 * @param a First array.
 * @param b Second array.
 * @returns `true` if equal.
 */
function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Options for {@linkcode verifyPiece}. */
export interface VerifyPieceOptions {
  /** Queue that bounds concurrent digests; defaults to a shared queue of 3. */
  queue?: HashQueue;
}

/**
 * Tells whether the SHA-1 of a piece equals its expected hash (BEP 3).
 *
 * @example Usage
 * ```ts
 * import { sha1, verifyPiece } from "./verify.ts";
 * import assert from "node:assert/strict";
 *
 * const piece = new Uint8Array([1, 2, 3]);
 * assert.equal(await verifyPiece(piece, await sha1(piece)), true);
 * assert.equal(await verifyPiece(piece, new Uint8Array(20)), false);
 * ```
 *
 * @param bytes The piece data.
 * @param expectedHash The 20-byte hash from the metainfo.
 * @param options Optional queue.
 * @returns `true` when the hash matches.
 * @throws {TypeError} If `expectedHash` is not 20 bytes.
 */
export async function verifyPiece(
  bytes: Uint8Array,
  expectedHash: Uint8Array,
  options: VerifyPieceOptions = {},
): Promise<boolean> {
  if (expectedHash.length !== 20) {
    throw new TypeError(
      `Cannot verify piece: expected hash must be 20 bytes, got "${expectedHash.length}"`,
    );
  }
  const queue = options.queue ?? defaultHashQueue;
  return bytesEqual(await queue.digest(bytes), expectedHash);
}

/** Options for {@linkcode HashQueue}. */
export interface HashQueueOptions {
  /** Maximum digests in flight; defaults to 3. */
  concurrency?: number;
}

/**
 * Runs SHA-1 digests with at most `concurrency` in flight; further calls wait in FIFO order.
 * A few parallel digests let `crypto.subtle` use a second core without unbounded memory.
 *
 * @example Usage
 * ```ts
 * import { HashQueue } from "./verify.ts";
 * import assert from "node:assert/strict";
 *
 * const queue = new HashQueue({ concurrency: 2 });
 * const digests = await Promise.all([1, 2, 3, 4].map((n) => queue.digest(new Uint8Array(n))));
 * assert.equal(digests.length, 4);
 * assert.equal(queue.inFlight, 0);
 * ```
 */
export class HashQueue {
  readonly #concurrency: number;
  #inFlight = 0;
  readonly #waiting: (() => void)[] = [];
  #head = 0;

  /**
   * Creates a queue.
   *
   * @param options Concurrency limit.
   * @throws {RangeError} If `concurrency` is not a positive integer.
   */
  constructor(options: HashQueueOptions = {}) {
    const concurrency = options.concurrency ?? 3;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`Cannot create hash queue: invalid concurrency "${concurrency}"`);
    }
    this.#concurrency = concurrency;
  }

  /** Digests currently running. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Calls waiting for a free slot. */
  get pending(): number {
    return this.#waiting.length - this.#head;
  }

  /**
   * Computes SHA-1 of `bytes` once a slot is free.
   *
   * @param bytes Data to hash.
   * @returns The 20-byte digest.
   */
  async digest(bytes: Uint8Array): Promise<Uint8Array> {
    if (this.#inFlight >= this.#concurrency) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#inFlight++;
    }
    try {
      return await sha1(bytes);
    } finally {
      this.#release();
    }
  }

  #release(): void {
    if (this.#head < this.#waiting.length) {
      // Hand the slot straight to the next waiter; inFlight stays the same.
      const next = this.#waiting[this.#head]!;
      this.#waiting[this.#head++] = noop;
      if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
        this.#waiting.splice(0, this.#head);
        this.#head = 0;
      }
      next();
    } else {
      this.#inFlight--;
    }
  }
}

function noop(): void {}

const defaultHashQueue = new HashQueue();
