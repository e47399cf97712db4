/**
 * The BitTorrent peer wire protocol (BEP 3, with BEP 5/6/10 message types): handshake and
 * message codecs, length-prefixed framing as Web Streams, and a connection over `Deno.Conn`.
 *
 * @example Encoding and decoding a message
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeMessage, encodeMessage } from "./mod.ts";
 *
 * const frame = encodeMessage({ type: "have", index: 7 });
 * assert.deepEqual(decodeMessage(frame.subarray(4)), { type: "have", index: 7 });
 * ```
 *
 * @module
 */
export * from "./address.ts";
export * from "./connection.ts";
export * from "./errors.ts";
export * from "./extension.ts";
export * from "./handshake.ts";
export * from "./message.ts";
export * from "./message_streams.ts";
export * from "./metadata_exchange.ts";
export * from "./ut_metadata.ts";
export * from "./ut_pex.ts";
export * from "./mse/mod.ts";
export * from "./ip.ts";
