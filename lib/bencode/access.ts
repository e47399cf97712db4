import type { BencodeDict, BencodeValue } from "./types.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Tells whether a decoded value is a dictionary.
 *
 * @param value A decoded value.
 * @returns True for a dictionary.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isDict } from "./access.ts";
 * import { decode } from "./decode.ts";
 *
 * assert.equal(isDict(decode(new TextEncoder().encode("de"))), true);
 * assert.equal(isDict(decode(new TextEncoder().encode("le"))), false);
 * ```
 */
export function isDict(value: BencodeValue | undefined): value is BencodeDict {
  return typeof value === "object" && !(value instanceof Uint8Array) && !Array.isArray(value);
}

/**
 * Returns the value as a dictionary.
 *
 * @param value A decoded value.
 * @param what Its name, for the error message.
 * @returns The dictionary.
 * @throws {TypeError} When the value is not a dictionary.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { asDict } from "./access.ts";
 *
 * assert.throws(() => asDict(5, "info"), TypeError);
 * ```
 */
export function asDict(value: BencodeValue | undefined, what: string): BencodeDict {
  if (!isDict(value)) {
    throw new TypeError(`Expected ${what} to be a dictionary, got ${kind(value)}`);
  }
  return value;
}

/**
 * Returns the value as a list.
 *
 * @param value A decoded value.
 * @param what Its name, for the error message.
 * @returns The list.
 * @throws {TypeError} When the value is not a list.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { asList } from "./access.ts";
 *
 * assert.deepEqual(asList([1], "files"), [1]);
 * ```
 */
export function asList(value: BencodeValue | undefined, what: string): BencodeValue[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`Expected ${what} to be a list, got ${kind(value)}`);
  }
  return value;
}

/**
 * Returns the value as a byte string.
 *
 * @param value A decoded value.
 * @param what Its name, for the error message.
 * @returns The bytes.
 * @throws {TypeError} When the value is not a byte string.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { asBytes } from "./access.ts";
 *
 * assert.throws(() => asBytes(1, "pieces"), /Expected pieces to be a byte string, got an integer/);
 * ```
 */
export function asBytes(value: BencodeValue | undefined, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`Expected ${what} to be a byte string, got ${kind(value)}`);
  }
  return value;
}

/**
 * Returns the value as text: a byte string that must be valid UTF-8.
 *
 * @param value A decoded value.
 * @param what Its name, for the error message.
 * @returns The decoded text.
 * @throws {TypeError} When the value is not a byte string or not valid UTF-8.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { asString } from "./access.ts";
 *
 * assert.equal(asString(new TextEncoder().encode("hi"), "name"), "hi");
 * ```
 */
export function asString(value: BencodeValue | undefined, what: string): string {
  const bytes = asBytes(value, what);
  try {
    return utf8.decode(bytes);
  } catch (cause) {
    throw new TypeError(`Expected ${what} to be UTF-8 text`, { cause });
  }
}

/**
 * Returns the value as an integer that fits in a safe JavaScript number.
 *
 * @param value A decoded value.
 * @param what Its name, for the error message.
 * @returns The integer.
 * @throws {TypeError} When the value is not an integer.
 * @throws {RangeError} When it is an integer too large for a safe number.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { asInteger } from "./access.ts";
 *
 * assert.equal(asInteger(7, "length"), 7);
 * assert.throws(() => asInteger(2n ** 70n, "length"), RangeError);
 * ```
 */
export function asInteger(value: BencodeValue | undefined, what: string): number {
  if (typeof value === "bigint") {
    throw new RangeError(`Expected ${what} to be at most ${Number.MAX_SAFE_INTEGER}, got ${value}`);
  }
  if (typeof value !== "number") {
    throw new TypeError(`Expected ${what} to be an integer, got ${kind(value)}`);
  }
  return value;
}

/**
 * Describes the kind of a decoded value for error messages.
 *
 * @param value A decoded value, or undefined for a missing one.
 * @returns A phrase such as "a list" or "nothing".
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { kind } from "./access.ts";
 *
 * assert.equal(kind(undefined), "nothing");
 * ```
 */
export function kind(value: BencodeValue | undefined): string {
  if (value === undefined) return "nothing";
  if (typeof value === "number" || typeof value === "bigint") return "an integer";
  if (value instanceof Uint8Array) return "a byte string";
  if (Array.isArray(value)) return "a list";
  return "a dictionary";
}
