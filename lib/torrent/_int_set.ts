/**
 * A set of non-negative integers (up to 2^53) in one typed array: open addressing with linear
 * probing and backward-shift deletion. It exists for the per-block bookkeeping of the download
 * path (a request sent, a block arrived: two operations per 16 KiB). A `Set<number>` there
 * rehashes into a new table every few hundred operations at a steady size; the tables live
 * long enough to be promoted and pile up as old-generation garbage. This table only grows.
 *
 * @module
 */

const EMPTY = -1;
const MIN_CAPACITY = 16;

/**
 * A growable hash set of non-negative safe integers that never allocates while its size stays
 * under a high-water mark.
 *
 * @example Usage
 * ```ts
 * import { IntSet } from "./_int_set.ts";
 * import assert from "node:assert/strict";
 *
 * const set = new IntSet();
 * set.add(7);
 * assert.ok(set.has(7));
 * assert.ok(set.delete(7));
 * assert.equal(set.size, 0);
 * ```
 */
export class IntSet {
  #slots: Float64Array;
  #mask: number;
  #size = 0;

  /**
   * Creates an empty set with room for `expected` members before it grows.
   *
   * @param expected Members expected at most (a hint).
   */
  constructor(expected = 0) {
    let capacity = MIN_CAPACITY;
    while (capacity < expected * 2) capacity *= 2;
    this.#slots = new Float64Array(capacity).fill(EMPTY);
    this.#mask = capacity - 1;
  }

  /** Number of members. */
  get size(): number {
    return this.#size;
  }

  /** Slots in the table: it doubles when half full and never shrinks. */
  get capacity(): number {
    return this.#slots.length;
  }

  /**
   * Tells whether `key` is a member. Anything but a non-negative safe integer is never one.
   *
   * @param key The key.
   * @returns `true` if present.
   */
  has(key: number): boolean {
    if (!isKey(key)) return false;
    const slots = this.#slots;
    for (let at = hash(key) & this.#mask;; at = (at + 1) & this.#mask) {
      const found = slots[at]!;
      if (found === key) return true;
      if (found === EMPTY) return false;
    }
  }

  /**
   * Adds `key`.
   *
   * @param key A non-negative safe integer.
   * @returns `true` if it was not a member yet.
   * @throws {RangeError} If `key` is not a non-negative safe integer.
   */
  add(key: number): boolean {
    if (!isKey(key)) throw new RangeError(`Invalid set key "${key}": not a non-negative integer`);
    if ((this.#size + 1) * 2 > this.#slots.length) this.#grow();
    const slots = this.#slots;
    for (let at = hash(key) & this.#mask;; at = (at + 1) & this.#mask) {
      const found = slots[at]!;
      if (found === key) return false;
      if (found === EMPTY) {
        slots[at] = key;
        this.#size++;
        return true;
      }
    }
  }

  /**
   * Removes `key`.
   *
   * @param key The key.
   * @returns `true` if it was a member.
   */
  delete(key: number): boolean {
    if (!isKey(key)) return false;
    const slots = this.#slots;
    const mask = this.#mask;
    let at = hash(key) & mask;
    for (;; at = (at + 1) & mask) {
      const found = slots[at]!;
      if (found === key) break;
      if (found === EMPTY) return false;
    }
    // Backward shift: move later members of the probe run into the hole, so lookups never
    // need tombstones.
    let hole = at;
    for (let next = (hole + 1) & mask;; next = (next + 1) & mask) {
      const moved = slots[next]!;
      if (moved === EMPTY) break;
      const home = hash(moved) & mask;
      // `moved` may fill the hole only if its home is not inside (hole, next].
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        slots[hole] = moved;
        hole = next;
      }
    }
    slots[hole] = EMPTY;
    this.#size--;
    return true;
  }

  /** Removes every member, keeping the table. */
  clear(): void {
    if (this.#size === 0) return;
    this.#slots.fill(EMPTY);
    this.#size = 0;
  }

  /**
   * Calls `fn` for each member, in no particular order. `fn` must not change the set.
   *
   * @param fn Called with each member.
   */
  forEach(fn: (key: number) => void): void {
    const slots = this.#slots;
    for (let at = 0; at < slots.length; at++) {
      const key = slots[at]!;
      if (key !== EMPTY) fn(key);
    }
  }

  #grow(): void {
    const old = this.#slots;
    this.#slots = new Float64Array(old.length * 2).fill(EMPTY);
    this.#mask = this.#slots.length - 1;
    this.#size = 0;
    for (let at = 0; at < old.length; at++) {
      const key = old[at]!;
      if (key !== EMPTY) this.add(key);
    }
  }
}

function isKey(key: number): boolean {
  return Number.isSafeInteger(key) && key >= 0;
}

/** Mixes both 32-bit halves of a safe integer. */
function hash(key: number): number {
  const low = key >>> 0;
  const high = (key / 4294967296) >>> 0;
  let h = Math.imul(low ^ Math.imul(high, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 13);
}
