/**
 * The peer wire message codec: BEP 3 core messages, BEP 5 `port`, BEP 6 fast
 * extension messages and the BEP 10 `extended` envelope.
 *
 * A frame on the wire is a 4-byte big-endian length followed by that many
 * bytes of payload; the payload starts with a 1-byte message id. A frame of
 * length 0 is a keep-alive.
 *
 * @module
 */

import { PeerProtocolError } from "./errors.ts";

/** A message of the BitTorrent peer wire protocol, discriminated on `type`. */
export type PeerMessage =
  | { type: "keep-alive" }
  | { type: "choke" }
  | { type: "unchoke" }
  | { type: "interested" }
  | { type: "not-interested" }
  | { type: "have"; index: number }
  | { type: "bitfield"; bitfield: Uint8Array }
  | { type: "request"; index: number; begin: number; length: number }
  | { type: "piece"; index: number; begin: number; block: Uint8Array }
  | { type: "cancel"; index: number; begin: number; length: number }
  | { type: "port"; port: number }
  | { type: "suggest"; index: number }
  | { type: "have-all" }
  | { type: "have-none" }
  | { type: "reject"; index: number; begin: number; length: number }
  | { type: "allowed-fast"; index: number }
  | { type: "extended"; id: number; payload: Uint8Array }
  | { type: "unknown"; id: number; payload: Uint8Array };

/** The `type` of a {@linkcode PeerMessage}. */
export type PeerMessageType = PeerMessage["type"];

/**
 * Message ids on the wire: BEP 3 (0-8), BEP 5 (9), BEP 6 (13-17) and
 * BEP 10 (20).
 */
export const MESSAGE_ID: Readonly<
  Record<Exclude<PeerMessageType, "keep-alive" | "unknown">, number>
> = Object.freeze(
  {
    choke: 0,
    unchoke: 1,
    interested: 2,
    "not-interested": 3,
    have: 4,
    bitfield: 5,
    request: 6,
    piece: 7,
    cancel: 8,
    port: 9,
    suggest: 13,
    "have-all": 14,
    "have-none": 15,
    reject: 16,
    "allowed-fast": 17,
    extended: 20,
  } as const,
);

/** Length of the big-endian frame length prefix. */
export const LENGTH_PREFIX_BYTES = 4;

/**
 * Returns the number of bytes {@linkcode encodeMessage} produces for a
 * message, including the 4-byte length prefix.
 *
 * @param message The message to measure.
 * @returns The frame length in bytes.
 *
 * @example Usage
 * ```ts
 * import { encodedLength } from "./message.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(encodedLength({ type: "keep-alive" }), 4);
 * assert.equal(encodedLength({ type: "have", index: 7 }), 9);
 * assert.equal(
 *   encodedLength({ type: "piece", index: 0, begin: 0, block: new Uint8Array(16384) }),
 *   16397,
 * );
 * ```
 */
export function encodedLength(message: PeerMessage): number {
  switch (message.type) {
    case "keep-alive":
      return 4;
    case "choke":
    case "unchoke":
    case "interested":
    case "not-interested":
    case "have-all":
    case "have-none":
      return 5;
    case "have":
    case "suggest":
    case "allowed-fast":
      return 9;
    case "port":
      return 7;
    case "request":
    case "cancel":
    case "reject":
      return 17;
    case "piece":
      return 13 + message.block.length;
    case "bitfield":
      return 5 + message.bitfield.length;
    case "extended":
      return 6 + message.payload.length;
    case "unknown":
      return 5 + message.payload.length;
    default:
      return unknownType(message);
  }
}

/**
 * Encodes a message into a fresh frame, including the 4-byte big-endian
 * length prefix (BEP 3).
 *
 * @param message The message to encode.
 * @returns The frame bytes.
 * @throws {RangeError} If a number field is out of range (indices are
 * 32-bit unsigned, `port` 16-bit, extended and unknown ids 8-bit).
 *
 * @example Usage
 * ```ts
 * import { encodeMessage } from "./message.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(
 *   encodeMessage({ type: "have", index: 258 }),
 *   new Uint8Array([0, 0, 0, 5, 4, 0, 0, 1, 2]),
 * );
 * ```
 */
export function encodeMessage(message: PeerMessage): Uint8Array {
  const frame = new Uint8Array(encodedLength(message));
  encodeMessageInto(message, frame, 0);
  return frame;
}

/**
 * Encodes a message frame (with its length prefix) into `target` at
 * `offset`, so that several messages can be coalesced into one buffer
 * without intermediate allocations.
 *
 * @param message The message to encode.
 * @param target The buffer to write into.
 * @param offset Where in `target` the frame starts.
 * @returns The number of bytes written, equal to {@linkcode encodedLength}.
 * @throws {RangeError} If the frame does not fit in `target` at `offset`,
 * or a number field is out of range.
 *
 * @example Coalescing two messages
 * ```ts
 * import { encodedLength, encodeMessageInto, type PeerMessage } from "./message.ts";
 * import assert from "node:assert/strict";
 *
 * const messages: PeerMessage[] = [{ type: "interested" }, { type: "have", index: 1 }];
 * const buffer = new Uint8Array(messages.reduce((n, m) => n + encodedLength(m), 0));
 * let offset = 0;
 * for (const message of messages) offset += encodeMessageInto(message, buffer, offset);
 * assert.deepEqual(buffer, new Uint8Array([0, 0, 0, 1, 2, 0, 0, 0, 5, 4, 0, 0, 0, 1]));
 * ```
 */
export function encodeMessageInto(
  message: PeerMessage,
  target: Uint8Array,
  offset: number,
): number {
  const length = encodedLength(message);
  if (!Number.isInteger(offset) || offset < 0 || offset + length > target.length) {
    throw new RangeError(
      `Cannot encode ${message.type} message: ${length} bytes do not fit at offset ${offset} of a ${target.length}-byte buffer`,
    );
  }
  writeUint32(target, offset, length - 4);
  if (message.type === "keep-alive") return length;
  const id = message.type === "unknown" ? message.id : MESSAGE_ID[message.type];
  if (message.type === "unknown") checkUint8(message.id, "unknown", "id");
  target[offset + 4] = id;
  const body = offset + 5;
  switch (message.type) {
    case "choke":
    case "unchoke":
    case "interested":
    case "not-interested":
    case "have-all":
    case "have-none":
      break;
    case "have":
    case "suggest":
    case "allowed-fast":
      checkUint32(message.index, message.type, "index");
      writeUint32(target, body, message.index);
      break;
    case "request":
    case "cancel":
    case "reject":
      checkUint32(message.index, message.type, "index");
      checkUint32(message.begin, message.type, "begin");
      checkUint32(message.length, message.type, "length");
      writeUint32(target, body, message.index);
      writeUint32(target, body + 4, message.begin);
      writeUint32(target, body + 8, message.length);
      break;
    case "piece":
      checkUint32(message.index, message.type, "index");
      checkUint32(message.begin, message.type, "begin");
      writeUint32(target, body, message.index);
      writeUint32(target, body + 4, message.begin);
      target.set(message.block, body + 8);
      break;
    case "bitfield":
      target.set(message.bitfield, body);
      break;
    case "port":
      if (!Number.isInteger(message.port) || message.port < 0 || message.port > 0xffff) {
        throw new RangeError(
          `Cannot encode port message: port ${message.port} is not an integer in 0-65535`,
        );
      }
      target[body] = message.port >>> 8;
      target[body + 1] = message.port & 0xff;
      break;
    case "extended":
      checkUint8(message.id, message.type, "id");
      target[body] = message.id;
      target.set(message.payload, body + 1);
      break;
    case "unknown":
      target.set(message.payload, body);
      break;
    default:
      return unknownType(message);
  }
  return length;
}

/**
 * Encodes several messages into one buffer, back to back, so that they go
 * out in a single write.
 *
 * @param messages The messages to encode, in order.
 * @returns The concatenated frames (empty for no messages).
 * @throws {RangeError} If a number field is out of range.
 *
 * @example Usage
 * ```ts
 * import { encodeMessages } from "./message.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(
 *   encodeMessages([{ type: "unchoke" }, { type: "keep-alive" }]),
 *   new Uint8Array([0, 0, 0, 1, 1, 0, 0, 0, 0]),
 * );
 * ```
 */
export function encodeMessages(messages: readonly PeerMessage[]): Uint8Array {
  let total = 0;
  for (const message of messages) total += encodedLength(message);
  const buffer = new Uint8Array(total);
  let offset = 0;
  for (const message of messages) offset += encodeMessageInto(message, buffer, offset);
  return buffer;
}

/**
 * Decodes the payload of one frame: the bytes after the 4-byte length
 * prefix. An empty payload is a keep-alive. Unknown message ids decode to
 * `{ type: "unknown", id, payload }`, which callers ignore.
 *
 * `piece.block`, `bitfield.bitfield`, `extended.payload` and
 * `unknown.payload` are views into `payload`, not copies.
 *
 * @param payload The frame body, without the length prefix.
 * @returns The decoded message.
 * @throws {PeerProtocolError} If a message has the wrong payload size for
 * its id.
 *
 * @example Usage
 * ```ts
 * import { decodeMessage } from "./message.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(decodeMessage(new Uint8Array([4, 0, 0, 1, 2])), { type: "have", index: 258 });
 * assert.deepEqual(decodeMessage(new Uint8Array(0)), { type: "keep-alive" });
 * ```
 *
 * @example A malformed message
 * ```ts
 * import { decodeMessage } from "./message.ts";
 * import { PeerProtocolError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => decodeMessage(new Uint8Array([4, 0, 0, 1])), PeerProtocolError);
 * ```
 */
export function decodeMessage(payload: Uint8Array): PeerMessage {
  if (payload.length === 0) return { type: "keep-alive" };
  const id = payload[0]!;
  const size = payload.length - 1;
  switch (id) {
    case 0:
      expectSize("choke", size, 0);
      return { type: "choke" };
    case 1:
      expectSize("unchoke", size, 0);
      return { type: "unchoke" };
    case 2:
      expectSize("interested", size, 0);
      return { type: "interested" };
    case 3:
      expectSize("not-interested", size, 0);
      return { type: "not-interested" };
    case 4:
      expectSize("have", size, 4);
      return { type: "have", index: readUint32(payload, 1) };
    case 5:
      return { type: "bitfield", bitfield: payload.subarray(1) };
    case 6:
      expectSize("request", size, 12);
      return {
        type: "request",
        index: readUint32(payload, 1),
        begin: readUint32(payload, 5),
        length: readUint32(payload, 9),
      };
    case 7:
      if (size < 8) {
        throw new PeerProtocolError(
          `Cannot decode piece message: payload is ${size} bytes, expected at least 8`,
        );
      }
      return {
        type: "piece",
        index: readUint32(payload, 1),
        begin: readUint32(payload, 5),
        block: payload.subarray(9),
      };
    case 8:
      expectSize("cancel", size, 12);
      return {
        type: "cancel",
        index: readUint32(payload, 1),
        begin: readUint32(payload, 5),
        length: readUint32(payload, 9),
      };
    case 9:
      expectSize("port", size, 2);
      return { type: "port", port: (payload[1]! << 8) | payload[2]! };
    case 13:
      expectSize("suggest", size, 4);
      return { type: "suggest", index: readUint32(payload, 1) };
    case 14:
      expectSize("have-all", size, 0);
      return { type: "have-all" };
    case 15:
      expectSize("have-none", size, 0);
      return { type: "have-none" };
    case 16:
      expectSize("reject", size, 12);
      return {
        type: "reject",
        index: readUint32(payload, 1),
        begin: readUint32(payload, 5),
        length: readUint32(payload, 9),
      };
    case 17:
      expectSize("allowed-fast", size, 4);
      return { type: "allowed-fast", index: readUint32(payload, 1) };
    case 20:
      if (size < 1) {
        throw new PeerProtocolError(
          `Cannot decode extended message: payload is 0 bytes, expected at least 1`,
        );
      }
      return { type: "extended", id: payload[1]!, payload: payload.subarray(2) };
    default:
      return { type: "unknown", id, payload: payload.subarray(1) };
  }
}

function expectSize(type: string, size: number, expected: number): void {
  if (size !== expected) {
    throw new PeerProtocolError(
      `Cannot decode ${type} message: payload is ${size} bytes, expected ${expected}`,
    );
  }
}

function readUint32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) |
    bytes[offset + 3]!) >>> 0;
}

function writeUint32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = (value >>> 16) & 0xff;
  bytes[offset + 2] = (value >>> 8) & 0xff;
  bytes[offset + 3] = value & 0xff;
}

function checkUint32(value: number, type: string, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new RangeError(
      `Cannot encode ${type} message: ${field} ${value} is not an integer in 0-4294967295`,
    );
  }
}

function checkUint8(value: number, type: string, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new RangeError(
      `Cannot encode ${type} message: ${field} ${value} is not an integer in 0-255`,
    );
  }
}

function unknownType(message: never): never {
  throw new TypeError(
    `Cannot encode message: unknown type "${(message as { type?: unknown }).type}"`,
  );
}
