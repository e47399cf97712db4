/**
 * A bencode input that cannot be decoded. `offset` is the byte position where decoding failed.
 *
 * @example Catching a syntax error
 * ```ts
 * import assert from "node:assert/strict";
 * import { BencodeSyntaxError } from "./errors.ts";
 * import { decode } from "./decode.ts";
 *
 * assert.throws(() => decode(new TextEncoder().encode("i03e")), BencodeSyntaxError);
 * ```
 */
export class BencodeSyntaxError extends SyntaxError {
  /** Byte offset in the input at which the problem was found. */
  readonly offset: number;

  /**
   * Makes the error; the message ends with `at offset <offset>`.
   *
   * @param message What is wrong; the offset is appended to it.
   * @param offset Byte offset of the problem.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(`${message} at offset ${offset}`, options);
    this.name = "BencodeSyntaxError";
    this.offset = offset;
  }
}
