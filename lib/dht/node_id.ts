/**
 * Node ids of the Mainline DHT (BEP 5): 160-bit values compared by XOR distance.
 *
 * @module
 */

/** Length of a node id or info hash in bytes. */
export const NODE_ID_LENGTH = 20;

/**
 * Makes a random 20-byte node id (BEP 5).
 *
 * @param options `random` fills a buffer with random bytes (default `crypto.getRandomValues`).
 * @returns A new id.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { randomNodeId } from "./node_id.ts";
 *
 * assert.equal(randomNodeId().length, 20);
 * assert.deepEqual(randomNodeId({ random: (bytes) => bytes.fill(7) }), new Uint8Array(20).fill(7));
 * ```
 */
export function randomNodeId(
  options: { random?: (bytes: Uint8Array) => Uint8Array } = {},
): Uint8Array {
  const random = options.random ?? ((bytes: Uint8Array) => crypto.getRandomValues(bytes));
  return random(new Uint8Array(NODE_ID_LENGTH));
}

/**
 * Computes the XOR distance between two ids (Kademlia metric, BEP 5).
 *
 * @param a An id.
 * @param b Another id of the same length.
 * @returns `a XOR b`, to be read as a big-endian unsigned integer.
 * @throws {TypeError} When the lengths differ.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { xorDistance } from "./node_id.ts";
 *
 * assert.deepEqual(xorDistance(Uint8Array.of(0b1100), Uint8Array.of(0b1010)), Uint8Array.of(0b0110));
 * ```
 */
export function xorDistance(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length !== b.length) {
    throw new TypeError(`Cannot compute distance: ids have ${a.length} and ${b.length} bytes`);
  }
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/**
 * Compares two ids as big-endian unsigned integers.
 *
 * @param a An id.
 * @param b Another id of the same length.
 * @returns A negative number when `a < b`, 0 when equal, positive when `a > b`.
 *
 * @example Sorting
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareIds } from "./node_id.ts";
 *
 * const ids = [Uint8Array.of(2, 0), Uint8Array.of(1, 255)].sort(compareIds);
 * assert.deepEqual(ids[0], Uint8Array.of(1, 255));
 * ```
 */
export function compareIds(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

/**
 * Compares which of two ids lies closer to a target by XOR distance, without allocating.
 *
 * @param target The id distances are measured from.
 * @param a An id.
 * @param b Another id.
 * @returns Negative when `a` is closer, 0 when equally close (same id), positive when `b` is.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareDistance } from "./node_id.ts";
 *
 * const target = Uint8Array.of(0b1000);
 * assert.ok(compareDistance(target, Uint8Array.of(0b1001), Uint8Array.of(0b0000)) < 0);
 * ```
 */
export function compareDistance(target: Uint8Array, a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < target.length; i++) {
    const da = a[i]! ^ target[i]!;
    const db = b[i]! ^ target[i]!;
    if (da !== db) return da - db;
  }
  return 0;
}

/**
 * Counts the leading bits two ids share: 0 when the first bit differs, 160 for equal ids.
 * A node's bucket in a routing table is found from this count against the table's own id.
 *
 * @param a An id.
 * @param b Another id of the same length.
 * @returns The length of the common prefix in bits.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { commonPrefixLength } from "./node_id.ts";
 *
 * assert.equal(commonPrefixLength(Uint8Array.of(0xff, 0x00), Uint8Array.of(0xff, 0x20)), 10);
 * assert.equal(commonPrefixLength(Uint8Array.of(1), Uint8Array.of(1)), 8);
 * ```
 */
export function commonPrefixLength(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a[i]! ^ b[i]!;
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return length * 8;
}

/**
 * Tells whether two ids are byte-for-byte equal.
 *
 * @param a An id.
 * @param b Another id.
 * @returns True when equal.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { idsEqual } from "./node_id.ts";
 *
 * assert.equal(idsEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2)), true);
 * assert.equal(idsEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3)), false);
 * ```
 */
export function idsEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareIds(a, b) === 0;
}

/**
 * Makes a random id that shares exactly `prefixLength` leading bits with `id` (the next bit
 * differs), or all of `id`'s first `prefixLength` bits when `exact` is false. Used to pick
 * refresh targets inside a routing-table bucket.
 *
 * @param id The reference id.
 * @param prefixLength How many leading bits to keep (0 to 160).
 * @param options `exact`: flip the bit after the prefix (default true); `random`: RNG.
 * @returns A new id.
 * @throws {RangeError} When `prefixLength` is outside 0 to the id's bit length.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { commonPrefixLength, idWithPrefix, randomNodeId } from "./node_id.ts";
 *
 * const own = randomNodeId();
 * assert.equal(commonPrefixLength(own, idWithPrefix(own, 12)), 12);
 * ```
 */
export function idWithPrefix(
  id: Uint8Array,
  prefixLength: number,
  options: { exact?: boolean; random?: (bytes: Uint8Array) => Uint8Array } = {},
): Uint8Array {
  const bits = id.length * 8;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > bits) {
    throw new RangeError(`Cannot make id with prefix: length ${prefixLength} is out of range`);
  }
  const random = options.random ?? ((bytes: Uint8Array) => crypto.getRandomValues(bytes));
  const out = random(new Uint8Array(id.length));
  const whole = prefixLength >> 3;
  out.set(id.subarray(0, whole));
  const rest = prefixLength & 7;
  if (whole < id.length) {
    const mask = (0xff << (8 - rest)) & 0xff;
    out[whole] = (id[whole]! & mask) | (out[whole]! & ~mask & 0xff);
  }
  if ((options.exact ?? true) && prefixLength < bits) {
    const bit = 0x80 >> rest;
    out[whole] = (out[whole]! & ~bit) | (~id[whole]! & bit);
  }
  return out;
}
