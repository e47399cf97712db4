import { BencodeSyntaxError } from "./errors.ts";
import { Scanner, type ScanOptions } from "./_scanner.ts";
import type { BencodeValue } from "./types.ts";

export type { ScanOptions as DecodeOptions } from "./_scanner.ts";

/**
 * Decodes one bencoded value (BEP 3), strictly: the whole input must be exactly one value.
 *
 * Rejected: leading zeros (`i03e`, `03:abc`), negative zero (`i-0e`), empty integers (`ie`,
 * `i-e`), trailing bytes, unterminated containers, string lengths past the input, non-string,
 * duplicate or (unless `allowUnsortedKeys`) unsorted dictionary keys, keys that are not valid
 * UTF-8, and nesting deeper than `maxDepth` (default 256).
 *
 * Byte strings are returned as `Uint8Array` views into `bytes` (no copies); integers as
 * `number`, or `bigint` when they do not fit in a safe integer.
 *
 * @param bytes The encoded input.
 * @param options Depth limit and key-order leniency.
 * @returns The decoded value.
 * @throws {BencodeSyntaxError} When the input is not exactly one valid bencoded value.
 *
 * @example Decoding a dictionary
 * ```ts
 * import assert from "node:assert/strict";
 * import { decode } from "./decode.ts";
 *
 * const value = decode(new TextEncoder().encode("d3:fooi42ee")) as Record<string, unknown>;
 * assert.equal(value.foo, 42);
 * ```
 */
export function decode(bytes: Uint8Array, options: ScanOptions = {}): BencodeValue {
  const scanner = new Scanner(bytes, options);
  const value = scanner.readValue();
  if (scanner.position !== bytes.length) {
    throw new BencodeSyntaxError("Cannot decode bencode: trailing bytes", scanner.position);
  }
  return value;
}

/**
 * Decodes the one bencoded value at the start of `bytes` and reports how many bytes it used,
 * so that data may follow it (as in a BEP 9 `ut_metadata` data message).
 *
 * @param bytes The input, starting with a bencoded value.
 * @param options Depth limit and key-order leniency.
 * @returns The value and the number of bytes it occupied.
 * @throws {BencodeSyntaxError} When the input does not start with a valid bencoded value.
 *
 * @example Value followed by raw bytes
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePrefix } from "./decode.ts";
 *
 * const { value, length } = decodePrefix(new TextEncoder().encode("i7eRAW"));
 * assert.equal(value, 7);
 * assert.equal(length, 3);
 * ```
 */
export function decodePrefix(
  bytes: Uint8Array,
  options: ScanOptions = {},
): { value: BencodeValue; length: number } {
  const scanner = new Scanner(bytes, options);
  const value = scanner.readValue();
  return { value, length: scanner.position };
}

/**
 * Returns the exact encoded bytes of one value of a top-level dictionary, as they stand in the
 * input. The info hash of a torrent is the SHA-1 of `rawDictValue(torrent, "info")`: the original
 * bytes, never a re-encoding.
 *
 * @param bytes A whole bencoded dictionary (validated strictly, as by {@linkcode decode}).
 * @param key The top-level key.
 * @param options Depth limit and key-order leniency.
 * @returns A view of the value's bytes, or `undefined` when the key is absent.
 * @throws {BencodeSyntaxError} When the input is not valid bencode.
 * @throws {TypeError} When the input is not a dictionary.
 *
 * @example Raw bytes of the info dictionary
 * ```ts
 * import assert from "node:assert/strict";
 * import { rawDictValue } from "./decode.ts";
 *
 * const raw = rawDictValue(new TextEncoder().encode("d4:infod1:ai1eee"), "info");
 * assert.equal(new TextDecoder().decode(raw), "d1:ai1ee");
 * ```
 */
export function rawDictValue(
  bytes: Uint8Array,
  key: string,
  options: ScanOptions = {},
): Uint8Array | undefined {
  const scanner = new Scanner(bytes, options, true);
  const value = scanner.readValue();
  if (scanner.position !== bytes.length) {
    throw new BencodeSyntaxError("Cannot decode bencode: trailing bytes", scanner.position);
  }
  if (!isDictValue(value)) throw new TypeError("Cannot find key in bencode: not a dictionary");
  const span = scanner.topLevelSpans!.get(key);
  return span === undefined ? undefined : bytes.subarray(span.start, span.end);
}

function isDictValue(value: BencodeValue): boolean {
  return typeof value === "object" && !(value instanceof Uint8Array) && !Array.isArray(value);
}
