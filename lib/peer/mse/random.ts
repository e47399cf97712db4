/** Fills a buffer with random bytes (injectable, so tests can make handshakes repeatable). */
export type RandomFill = (bytes: Uint8Array) => void;

/**
 * The default random source: the platform CSPRNG, in chunks of at most 64 KiB (the most
 * `crypto.getRandomValues` fills at once).
 *
 * @param bytes The buffer to fill.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { randomFill } from "./random.ts";
 *
 * const bytes = new Uint8Array(32);
 * randomFill(bytes);
 * assert.equal(bytes.length, 32);
 * ```
 */
export function randomFill(bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length; at += 65536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(at + 65536, bytes.length)));
  }
}
