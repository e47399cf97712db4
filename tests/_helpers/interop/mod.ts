/**
 * Test harness that runs independent BitTorrent software on 127.0.0.1: opentracker,
 * libtorrent (python3-libtorrent), aria2, Transmission and mktorrent, plus payload helpers.
 * Every `start*` returns a handle with `stop()` and `[Symbol.asyncDispose]`, so
 * `await using` leaves no child process or pipe behind.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { freePort, hasTool } from "./mod.ts";
 * assert.ok((await freePort()) > 0);
 * assert.equal(typeof hasTool("aria2c"), "boolean");
 * ```
 *
 * @module
 */

export * from "./tools.ts";
export * from "./free_port.ts";
export * from "./temp_dir.ts";
export * from "./payload.ts";
export * from "./mktorrent.ts";
export * from "./opentracker.ts";
export * from "./libtorrent.ts";
export * from "./aria2.ts";
export * from "./transmission.ts";
export { delay, inOwnSession, type ProcessExit, withTimeout } from "./_process.ts";
