/**
 * Error classes of the peer wire layer.
 *
 * @module
 */

/**
 * Thrown when a peer breaks the BitTorrent wire protocol (BEP 3): a frame
 * longer than allowed, a fixed-size message with the wrong payload size, and
 * so on. Callers catch it to close the peer with a reason.
 *
 * @example Usage
 * ```ts
 * import { PeerProtocolError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new PeerProtocolError("Cannot decode have message: payload is 3 bytes, expected 4");
 * assert.equal(error.name, "PeerProtocolError");
 * assert.ok(error instanceof Error);
 * ```
 */
export class PeerProtocolError extends Error {
  /**
   * Creates a protocol error.
   *
   * @param message What the peer did wrong.
   * @param options Standard error options, e.g. `{ cause }`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PeerProtocolError";
  }
}

/**
 * Thrown when the BitTorrent handshake (BEP 3) fails: a wrong protocol
 * string, an unexpected info hash, a peer that hangs up or never answers.
 *
 * @example Usage
 * ```ts
 * import { HandshakeError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const cause = new Error("Connection reset");
 * const error = new HandshakeError("Cannot complete handshake: connection reset", { cause });
 * assert.equal(error.name, "HandshakeError");
 * assert.equal(error.cause, cause);
 * ```
 */
export class HandshakeError extends Error {
  /**
   * Creates a handshake error.
   *
   * @param message Why the handshake failed.
   * @param options Standard error options, e.g. `{ cause }`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HandshakeError";
  }
}
