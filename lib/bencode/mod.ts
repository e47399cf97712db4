/**
 * Strict bencode (BEP 3): a decoder that rejects every non-canonical form and reports the byte
 * offset of the problem, a canonical encoder, and access helpers for decoded values.
 *
 * @example Round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { decode, encode } from "./mod.ts";
 *
 * const bytes = new TextEncoder().encode("d3:cow3:moo4:spaml1:a1:bee");
 * assert.deepEqual(encode(decode(bytes)), bytes);
 * ```
 *
 * @module
 */
export * from "./access.ts";
export * from "./decode.ts";
export * from "./encode.ts";
export * from "./errors.ts";
export * from "./json.ts";
export * from "./types.ts";
