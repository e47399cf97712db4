import { BencodeSyntaxError } from "../bencode/mod.ts";

/** Byte range of a value in the input. */
export interface Span {
  start: number;
  end: number;
}

const latin1 = new TextDecoder("latin1");

/**
 * Finds the spans of the values of a top-level bencode dictionary without decoding them, so
 * that values with byte-string keys that are not UTF-8 (BEP 52 `piece layers`, keyed by raw
 * SHA-256 roots) can be stepped over. Nested values are checked for structure only (integer and
 * length syntax, termination, depth); callers decode the values they need with the strict
 * decoder. Top-level keys are returned as Latin-1 strings (one char per byte, lossless; equal to
 * the UTF-8 text for ASCII keys). Duplicate top-level keys are rejected.
 *
 * @param bytes A whole bencoded dictionary.
 * @param maxDepth Deepest nesting accepted.
 * @returns The top-level keys and the spans of their values.
 * @throws {BencodeSyntaxError} When the input is not one well-formed bencoded dictionary.
 */
export function skimDict(bytes: Uint8Array, maxDepth: number): Map<string, Span> {
  const entries = new Map<string, Span>();
  if (bytes[0] !== 0x64 /* d */) {
    throw new BencodeSyntaxError("Cannot skim bencode: not a dictionary", 0);
  }
  let position = 1;
  for (;;) {
    const byte = bytes[position];
    if (byte === undefined) {
      throw new BencodeSyntaxError("Cannot skim bencode dictionary: unterminated dictionary", 0);
    }
    if (byte === 0x65 /* e */) break;
    const keyStart = position;
    const keyEnd = skipString(bytes, position);
    const key = latin1.decode(bytes.subarray(bytes.indexOf(0x3a, keyStart) + 1, keyEnd));
    if (entries.has(key)) {
      throw new BencodeSyntaxError("Cannot skim bencode dictionary: duplicate key", keyStart);
    }
    const end = skipValue(bytes, keyEnd, 1, maxDepth);
    entries.set(key, { start: keyEnd, end });
    position = end;
  }
  if (position + 1 !== bytes.length) {
    throw new BencodeSyntaxError("Cannot skim bencode: trailing bytes", position + 1);
  }
  return entries;
}

function skipValue(bytes: Uint8Array, start: number, depth: number, maxDepth: number): number {
  const byte = bytes[start];
  if (byte === undefined) {
    throw new BencodeSyntaxError("Cannot skim bencode: unexpected end", start);
  }
  if (byte === 0x69 /* i */) return skipInteger(bytes, start);
  if (byte >= 0x30 && byte <= 0x39) return skipString(bytes, start);
  if (byte === 0x6c /* l */ || byte === 0x64 /* d */) {
    if (depth >= maxDepth) {
      throw new BencodeSyntaxError(`Cannot skim bencode: nesting deeper than ${maxDepth}`, start);
    }
    let position = start + 1;
    for (;;) {
      const next = bytes[position];
      if (next === undefined) {
        throw new BencodeSyntaxError("Cannot skim bencode: unterminated container", start);
      }
      if (next === 0x65 /* e */) return position + 1;
      if (byte === 0x64) {
        position = skipString(bytes, position);
        if (bytes[position] === 0x65) {
          throw new BencodeSyntaxError(
            "Cannot skim bencode dictionary: key has no value",
            position,
          );
        }
      }
      position = skipValue(bytes, position, depth + 1, maxDepth);
    }
  }
  throw new BencodeSyntaxError(`Cannot skim bencode: unexpected byte 0x${hex(byte)}`, start);
}

function skipInteger(bytes: Uint8Array, start: number): number {
  let i = start + 1;
  const negative = bytes[i] === 0x2d;
  if (negative) i++;
  const digits = i;
  while (i < bytes.length && bytes[i]! >= 0x30 && bytes[i]! <= 0x39) i++;
  if (
    bytes[i] !== 0x65 || i === digits || (bytes[digits] === 0x30 && (i - digits > 1 || negative))
  ) {
    throw new BencodeSyntaxError("Cannot skim bencode integer: malformed integer", start);
  }
  return i + 1;
}

function skipString(bytes: Uint8Array, start: number): number {
  let i = start;
  let length = 0;
  while (i < bytes.length && bytes[i]! >= 0x30 && bytes[i]! <= 0x39) {
    length = length * 10 + bytes[i]! - 0x30;
    i++;
    if (length > bytes.length) break;
  }
  if (
    i === start || bytes[i] !== 0x3a || (bytes[start] === 0x30 && i - start > 1) ||
    i + 1 + length > bytes.length
  ) {
    throw new BencodeSyntaxError("Cannot skim bencode string: malformed string", start);
  }
  return i + 1 + length;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
