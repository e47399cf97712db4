/**
 * Write tokens of the Mainline DHT (BEP 5): what `get_peers` hands out and `announce_peer`
 * must present. Pure apart from hashing; clock and RNG injected.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Secrets rotate every 5 minutes; a token stays valid for one more period (BEP 5). */
export const TOKEN_ROTATE_MS = 5 * 60 * 1000;

/** Token length in bytes (a truncated SHA-1). */
export const TOKEN_LENGTH = 8;

/** Options of {@linkcode TokenManager}. */
export interface TokenManagerOptions {
  /** Clock in milliseconds (default `Date.now`). */
  now?: () => number;
  /** Fills a buffer with random bytes (default `crypto.getRandomValues`). */
  random?: (bytes: Uint8Array) => Uint8Array;
  /** Rotation period (default {@linkcode TOKEN_ROTATE_MS}). */
  rotateMs?: number;
}

const encoder = new TextEncoder();

/**
 * Issues and checks `announce_peer` tokens (BEP 5): a token is SHA-1(ip + secret) truncated to
 * 8 bytes; the secret rotates every 5 minutes and the current and previous secrets are accepted,
 * so a token lives 5 to 10 minutes.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { TokenManager } from "./tokens.ts";
 *
 * let now = 0;
 * const tokens = new TokenManager({ now: () => now });
 * const token = tokens.issue("10.0.0.1");
 * assert.equal(tokens.verify("10.0.0.1", token), true);
 * assert.equal(tokens.verify("10.0.0.2", token), false);
 * now += 11 * 60 * 1000;
 * assert.equal(tokens.verify("10.0.0.1", token), false);
 * ```
 */
export class TokenManager {
  readonly #now: () => number;
  readonly #random: (bytes: Uint8Array) => Uint8Array;
  readonly #rotateMs: number;
  #current: Uint8Array;
  #previous: Uint8Array;
  #rotatedAt: number;

  /**
   * Makes a manager with fresh random secrets.
   *
   * @param options Clock, RNG and rotation period.
   */
  constructor(options: TokenManagerOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? ((bytes) => crypto.getRandomValues(bytes));
    this.#rotateMs = options.rotateMs ?? TOKEN_ROTATE_MS;
    this.#current = this.#random(new Uint8Array(16));
    this.#previous = this.#random(new Uint8Array(16));
    this.#rotatedAt = this.#now();
  }

  /**
   * Makes the token for an IP address, valid for the current and the next period.
   *
   * @param host The querying node's IP address.
   * @returns The token.
   */
  issue(host: string): Uint8Array {
    this.#rotate();
    return tokenFor(host, this.#current);
  }

  /**
   * Checks a token presented by an IP address.
   *
   * @param host The announcing node's IP address.
   * @param token The token it presented.
   * @returns True when the token was issued to this address in this or the previous period.
   */
  verify(host: string, token: Uint8Array): boolean {
    this.#rotate();
    if (token.length !== TOKEN_LENGTH) return false;
    return equal(token, tokenFor(host, this.#current)) ||
      equal(token, tokenFor(host, this.#previous));
  }

  #rotate(): void {
    const elapsed = this.#now() - this.#rotatedAt;
    if (elapsed < this.#rotateMs) return;
    const periods = Math.floor(elapsed / this.#rotateMs);
    // After two or more periods both old secrets are stale.
    this.#previous = periods === 1 ? this.#current : this.#random(new Uint8Array(16));
    this.#current = this.#random(new Uint8Array(16));
    this.#rotatedAt += periods * this.#rotateMs;
  }
}

function tokenFor(host: string, secret: Uint8Array): Uint8Array {
  const digest = createHash("sha1").update(encoder.encode(host)).update(secret).digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, TOKEN_LENGTH).slice();
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
