/**
 * Message Stream Encryption / Protocol Encryption (MSE/PE): the Diffie-Hellman + RC4
 * handshake that libtorrent, aria2, Transmission and Vuze speak, as state machines
 * ({@linkcode MseResponder}, {@linkcode MseInitiator}) and over sockets
 * ({@linkcode acceptMse}, {@linkcode connectMse}, {@linkcode MseConn}).
 *
 * @example RC4 test vector
 * ```ts
 * import { Rc4 } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new TextEncoder().encode("Plaintext");
 * assert.equal(new Rc4(new TextEncoder().encode("Key")).xor(data).toHex(), "bbf316e8d940af0ad3");
 * ```
 *
 * @module
 */
export * from "./handshake.ts";
export * from "./mse_conn.ts";
export * from "./rc4.ts";
export * from "./random.ts";
