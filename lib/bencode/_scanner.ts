import { BencodeSyntaxError } from "./errors.ts";
import type { BencodeDict, BencodeValue } from "./types.ts";

const CHAR_0 = 0x30;
const CHAR_9 = 0x39;
const CHAR_COLON = 0x3a;
const CHAR_D = 0x64;
const CHAR_E = 0x65;
const CHAR_I = 0x69;
const CHAR_L = 0x6c;
const CHAR_MINUS = 0x2d;

/** Digits beyond which an integer may not fit in a safe integer. */
const SAFE_DIGITS = 15;
/** Longest integer accepted: parsing huge digit runs as BigInt is quadratic. */
const MAX_INTEGER_DIGITS = 1024;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Options shared by the decoding functions. */
export interface ScanOptions {
  /** Deepest nesting of lists and dictionaries accepted (default 256). */
  maxDepth?: number;
  /**
   * Accept dictionaries whose keys are not in sorted order (default false: such input is rejected,
   * as BEP 3 requires sorted keys). Duplicate keys are always rejected.
   */
  allowUnsortedKeys?: boolean;
}

/** Byte range of one value inside the input. */
export interface Span {
  start: number;
  end: number;
}

/**
 * A strict recursive-descent bencode reader over one input buffer. Byte strings are returned
 * as views into the input (no copies).
 */
export class Scanner {
  readonly #bytes: Uint8Array;
  readonly #maxDepth: number;
  readonly #allowUnsorted: boolean;
  /** When set, the spans of the values of the top-level dictionary are recorded here. */
  readonly topLevelSpans: Map<string, Span> | undefined;
  position = 0;

  constructor(bytes: Uint8Array, options: ScanOptions = {}, recordSpans = false) {
    this.#bytes = bytes;
    this.#maxDepth = options.maxDepth ?? 256;
    this.#allowUnsorted = options.allowUnsortedKeys ?? false;
    this.topLevelSpans = recordSpans ? new Map() : undefined;
  }

  /** Reads one value at the current position. */
  readValue(depth = 0): BencodeValue {
    const byte = this.#bytes[this.position];
    if (byte === undefined) throw this.#error("Cannot decode bencode: unexpected end of input");
    if (byte === CHAR_I) return this.#readInteger();
    if (byte >= CHAR_0 && byte <= CHAR_9) return this.#readBytes();
    if (byte === CHAR_L || byte === CHAR_D) {
      if (depth >= this.#maxDepth) {
        throw this.#error(`Cannot decode bencode: nesting deeper than ${this.#maxDepth}`);
      }
      return byte === CHAR_L ? this.#readList(depth + 1) : this.#readDict(depth + 1);
    }
    throw this.#error(`Cannot decode bencode: unexpected byte 0x${hexByte(byte)}`);
  }

  #error(message: string, offset = this.position): BencodeSyntaxError {
    return new BencodeSyntaxError(message, offset);
  }

  #readInteger(): number | bigint {
    const start = this.position;
    const bytes = this.#bytes;
    let i = start + 1;
    const negative = bytes[i] === CHAR_MINUS;
    if (negative) i++;
    const digitsStart = i;
    while (i < bytes.length && bytes[i]! >= CHAR_0 && bytes[i]! <= CHAR_9) i++;
    const digitCount = i - digitsStart;
    if (i >= bytes.length) {
      throw this.#error("Cannot decode bencode integer: unterminated integer", start);
    }
    if (bytes[i] !== CHAR_E) {
      throw this.#error(
        `Cannot decode bencode integer: unexpected byte 0x${hexByte(bytes[i]!)}`,
        i,
      );
    }
    if (digitCount === 0) throw this.#error("Cannot decode bencode integer: no digits", start);
    if (digitCount > MAX_INTEGER_DIGITS) {
      throw this.#error(
        `Cannot decode bencode integer: more than ${MAX_INTEGER_DIGITS} digits`,
        start,
      );
    }
    if (bytes[digitsStart] === CHAR_0 && (digitCount > 1 || negative)) {
      throw this.#error(
        negative
          ? "Cannot decode bencode integer: negative zero"
          : "Cannot decode bencode integer: leading zero",
        start,
      );
    }
    this.position = i + 1;
    if (digitCount <= SAFE_DIGITS) {
      let value = 0;
      for (let j = digitsStart; j < i; j++) value = value * 10 + (bytes[j]! - CHAR_0);
      return negative ? -value : value;
    }
    const text = String.fromCharCode(...bytes.subarray(start + 1, i));
    const big = BigInt(text);
    const asNumber = Number(big);
    return Number.isSafeInteger(asNumber) ? asNumber : big;
  }

  /** Reads a `<length>:<bytes>` string and returns a view into the input. */
  #readBytes(): Uint8Array {
    const start = this.position;
    const bytes = this.#bytes;
    let i = start;
    let length = 0;
    while (i < bytes.length && bytes[i]! >= CHAR_0 && bytes[i]! <= CHAR_9) {
      length = length * 10 + (bytes[i]! - CHAR_0);
      i++;
      if (length > bytes.length) {
        throw this.#error("Cannot decode bencode string: length exceeds the input", start);
      }
    }
    if (i >= bytes.length) {
      throw this.#error("Cannot decode bencode string: unterminated length", start);
    }
    if (bytes[i] !== CHAR_COLON) {
      throw this.#error(
        `Cannot decode bencode string: unexpected byte 0x${hexByte(bytes[i]!)} in length`,
        i,
      );
    }
    if (bytes[start] === CHAR_0 && i - start > 1) {
      throw this.#error("Cannot decode bencode string: leading zero in length", start);
    }
    const dataStart = i + 1;
    const end = dataStart + length;
    if (end > bytes.length) {
      throw this.#error(
        `Cannot decode bencode string: length ${length} exceeds the ${
          bytes.length - dataStart
        } bytes left`,
        start,
      );
    }
    this.position = end;
    return bytes.subarray(dataStart, end);
  }

  #readList(depth: number): BencodeValue[] {
    const start = this.position;
    this.position++;
    const list: BencodeValue[] = [];
    for (;;) {
      const byte = this.#bytes[this.position];
      if (byte === undefined) {
        throw this.#error("Cannot decode bencode list: unterminated list", start);
      }
      if (byte === CHAR_E) {
        this.position++;
        return list;
      }
      list.push(this.readValue(depth));
    }
  }

  #readDict(depth: number): BencodeDict {
    const start = this.position;
    const recordSpans = depth === 1 && this.topLevelSpans !== undefined;
    this.position++;
    const dict: BencodeDict = Object.create(null);
    let previousKey: Uint8Array | undefined;
    for (;;) {
      const byte = this.#bytes[this.position];
      if (byte === undefined) {
        throw this.#error("Cannot decode bencode dictionary: unterminated dictionary", start);
      }
      if (byte === CHAR_E) {
        this.position++;
        return dict;
      }
      const keyStart = this.position;
      if (byte < CHAR_0 || byte > CHAR_9) {
        throw this.#error("Cannot decode bencode dictionary: key is not a byte string");
      }
      const keyBytes = this.#readBytes();
      if (previousKey !== undefined) {
        const order = compareBytes(previousKey, keyBytes);
        if (order === 0) {
          throw this.#error("Cannot decode bencode dictionary: duplicate key", keyStart);
        }
        if (order > 0 && !this.#allowUnsorted) {
          throw this.#error("Cannot decode bencode dictionary: keys are not sorted", keyStart);
        }
      }
      previousKey = keyBytes;
      let key: string;
      try {
        key = utf8.decode(keyBytes);
      } catch (cause) {
        throw new BencodeSyntaxError(
          "Cannot decode bencode dictionary: key is not valid UTF-8",
          keyStart,
          { cause },
        );
      }
      if (this.#allowUnsorted && Object.hasOwn(dict, key)) {
        throw this.#error("Cannot decode bencode dictionary: duplicate key", keyStart);
      }
      const valueStart = this.position;
      if (this.#bytes[valueStart] === CHAR_E) {
        throw this.#error("Cannot decode bencode dictionary: key has no value", valueStart);
      }
      dict[key] = this.readValue(depth);
      if (recordSpans) this.topLevelSpans!.set(key, { start: valueStart, end: this.position });
    }
  }
}

/** Compares two byte strings as unsigned bytes, the order BEP 3 requires for dictionary keys. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function hexByte(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
