/**
 * IP address text to bytes and back, for the compact peer and node formats (BEP 5, 7, 11, 23).
 *
 * @module
 */

/**
 * Parses a dotted-quad IPv4 address (no leading zeros, each part 0 to 255).
 *
 * @param host The text.
 * @returns The 4 address bytes, or `undefined` when the text is not IPv4.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIPv4 } from "./ip.ts";
 *
 * assert.deepEqual(parseIPv4("10.0.0.1"), new Uint8Array([10, 0, 0, 1]));
 * assert.equal(parseIPv4("010.0.0.1"), undefined);
 * ```
 */
export function parseIPv4(host: string): Uint8Array | undefined {
  const parts = host.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!/^(?:0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return undefined;
    bytes[i] = Number(part);
  }
  return bytes;
}

/**
 * Parses IPv6 text, with `::` and an optional embedded IPv4 tail (`::ffff:1.2.3.4`).
 *
 * @param host The text, without brackets.
 * @returns The 16 address bytes, or `undefined` when the text is not IPv6.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIPv6 } from "./ip.ts";
 *
 * assert.equal(parseIPv6("::1")?.toHex(), "00000000000000000000000000000001");
 * assert.equal(parseIPv6("1::2::3"), undefined);
 * ```
 */
export function parseIPv6(host: string): Uint8Array | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(host)) return undefined;
  const halves = host.split("::");
  if (halves.length > 2) return undefined;
  const groups = (text: string): number[] | undefined => {
    if (text === "") return [];
    const out: number[] = [];
    const parts = text.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIPv4(part);
        if (v4 === undefined) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
        out.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >>> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/**
 * Formats 16 bytes as IPv6 text in the RFC 5952 short form: lower-case hex, no leading zeros,
 * the longest run of two or more zero groups as `::`, IPv4-mapped addresses as `::ffff:a.b.c.d`.
 *
 * @param bytes The 16 address bytes.
 * @returns The text form, without brackets.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatIPv6 } from "./ip.ts";
 *
 * assert.equal(formatIPv6(Uint8Array.fromHex("00000000000000000000000000000001")), "::1");
 * assert.equal(formatIPv6(Uint8Array.fromHex("20010db8000000000001000000000001")), "2001:db8::1:0:0:1");
 * ```
 */
export function formatIPv6(bytes: Uint8Array): string {
  if (bytes.length !== 16) {
    throw new RangeError(`Cannot format IPv6 address: expected 16 bytes, got ${bytes.length}`);
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  // Find the longest run of zero groups (the first one on a tie); only runs of 2+ collapse.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}
