import { compareBytes } from "./_scanner.ts";
import type { BencodeEncodable } from "./types.ts";

const utf8 = new TextEncoder();

/**
 * Encodes a value as canonical bencode (BEP 3): dictionary keys sorted by their raw bytes,
 * integers without leading zeros. Strings are encoded as UTF-8; dictionary entries whose value
 * is `undefined` are left out.
 *
 * @param value What to encode.
 * @returns The encoded bytes.
 * @throws {TypeError} For values bencode cannot hold (non-integer numbers, booleans, null).
 *
 * @example Canonical key order
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode } from "./encode.ts";
 *
 * const bytes = encode({ zeta: 1, alpha: ["x", 2n ** 64n] });
 * assert.equal(new TextDecoder().decode(bytes), "d5:alphal1:xi18446744073709551616ee4:zetai1ee");
 * ```
 */
export function encode(value: BencodeEncodable): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  const push = (bytes: Uint8Array) => {
    parts.push(bytes);
    total += bytes.length;
  };
  encodeInto(value, push, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

const MAX_ENCODE_DEPTH = 512;

function encodeInto(value: BencodeEncodable, push: (b: Uint8Array) => void, depth: number): void {
  if (depth > MAX_ENCODE_DEPTH) {
    throw new TypeError(`Cannot encode bencode: nesting deeper than ${MAX_ENCODE_DEPTH}`);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new TypeError(`Cannot encode bencode integer: ${value} is not a safe integer`);
    }
    push(utf8.encode(`i${value}e`));
  } else if (typeof value === "bigint") {
    push(utf8.encode(`i${value}e`));
  } else if (typeof value === "string") {
    const bytes = utf8.encode(value);
    push(utf8.encode(`${bytes.length}:`));
    push(bytes);
  } else if (value instanceof Uint8Array) {
    push(utf8.encode(`${value.length}:`));
    push(value);
  } else if (Array.isArray(value)) {
    push(LIST_START);
    for (const item of value as readonly BencodeEncodable[]) encodeInto(item, push, depth + 1);
    push(END);
  } else if (value instanceof Map || (typeof value === "object" && value !== null)) {
    const entries: [Uint8Array, BencodeEncodable][] = [];
    const source = value instanceof Map ? value.entries() : Object.entries(value);
    for (const [key, item] of source as Iterable<[unknown, BencodeEncodable | undefined]>) {
      if (typeof key !== "string") {
        throw new TypeError(`Cannot encode bencode dictionary: key ${String(key)} is not a string`);
      }
      if (!key.isWellFormed()) {
        // A lone surrogate would be written as U+FFFD, so two distinct keys could collide.
        throw new TypeError(
          `Cannot encode bencode dictionary: key ${JSON.stringify(key)} is not well-formed UTF-16`,
        );
      }
      if (item !== undefined) entries.push([utf8.encode(key), item]);
    }
    entries.sort((a, b) => compareBytes(a[0], b[0]));
    push(DICT_START);
    for (const [key, item] of entries) {
      push(utf8.encode(`${key.length}:`));
      push(key);
      encodeInto(item, push, depth + 1);
    }
    push(END);
  } else {
    throw new TypeError(`Cannot encode bencode: unsupported value ${String(value)}`);
  }
}

const LIST_START = utf8.encode("l");
const DICT_START = utf8.encode("d");
const END = utf8.encode("e");
