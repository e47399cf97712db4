import type { BencodeValue } from "./types.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Renders a decoded value as compact JSON, losslessly:
 * - integers are written exactly, including those beyond 2^53;
 * - byte strings that are valid UTF-8 become JSON strings;
 * - other byte strings become `{"$hex":"<lowercase hex>"}`;
 * - a dictionary key that starts with `$` is written with one more `$` in front, so such
 *   keys can never be mistaken for the `$hex` marker.
 *
 * @param value A decoded bencode value.
 * @returns One line of JSON.
 *
 * @example Integers, text and raw bytes
 * ```ts
 * import assert from "node:assert/strict";
 * import { toJson } from "./json.ts";
 *
 * assert.equal(toJson([2n ** 64n, new TextEncoder().encode("hi")]), '[18446744073709551616,"hi"]');
 * assert.equal(toJson(new Uint8Array([0xff, 0x00])), '{"$hex":"ff00"}');
 * ```
 */
export function toJson(value: BencodeValue): string {
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (value instanceof Uint8Array) {
    try {
      return JSON.stringify(utf8.decode(value));
    } catch {
      // Not UTF-8: render the bytes as hex instead (see the doc comment).
      return `{"$hex":"${value.toHex()}"}`;
    }
  }
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`;
  const entries = Object.entries(value).map(([key, item]) =>
    `${JSON.stringify(key.startsWith("$") ? `$${key}` : key)}:${toJson(item)}`
  );
  return `{${entries.join(",")}}`;
}
