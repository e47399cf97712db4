/**
 * Streams that split peer wire frames (BEP 3) out of arbitrary byte chunks
 * and encode messages back into frames.
 *
 * @module
 */

import { PeerProtocolError } from "./errors.ts";
import { decodeMessage, encodeMessage, encodeMessages, type PeerMessage } from "./message.ts";

/**
 * Default maximum frame length: a 1 MiB block plus the 13-byte `piece`
 * header. Real clients send 16 KiB blocks, so this is generous.
 */
export const DEFAULT_MAX_MESSAGE_LENGTH: number = 1024 * 1024 + 13;

/** Options for {@linkcode PeerMessageSplitter} and {@linkcode PeerMessageDecoderStream}. */
export interface PeerMessageDecoderOptions {
  /**
   * Largest frame length accepted, excluding the 4-byte prefix. Longer
   * frames are rejected before any buffer is allocated.
   * Defaults to {@linkcode DEFAULT_MAX_MESSAGE_LENGTH}.
   */
  maxMessageLength?: number;
}

/** Receives decoded messages from {@linkcode PeerMessageSplitter.push}. */
export interface PeerMessageSink {
  /** Called once per decoded message, in order. */
  enqueue(message: PeerMessage): void;
}

/**
 * Splits length-prefixed peer wire frames (BEP 3) out of whatever byte chunks
 * arrive and decodes them. A frame that lies whole inside a chunk is decoded
 * from a view into that chunk; only a frame that straddles chunks is copied
 * into a buffer of its own. The 4-byte length prefix may itself be split
 * across chunks.
 *
 * This is the engine of {@linkcode PeerMessageDecoderStream}, for callers
 * that drive reads themselves. Chunks must not be modified after `push`,
 * since decoded messages may be views into them.
 *
 * @example Usage
 * ```ts
 * import { PeerMessageSplitter } from "./message_streams.ts";
 * import type { PeerMessage } from "./message.ts";
 * import assert from "node:assert/strict";
 *
 * const messages: PeerMessage[] = [];
 * const splitter = new PeerMessageSplitter();
 * // "have 1" split inside its length prefix, then a keep-alive.
 * splitter.push(new Uint8Array([0, 0]), messages);
 * splitter.push(new Uint8Array([0, 5, 4, 0, 0, 0, 1, 0, 0, 0, 0]), messages);
 * splitter.finish();
 * assert.deepEqual(messages, [{ type: "have", index: 1 }, { type: "keep-alive" }]);
 * ```
 */
export class PeerMessageSplitter {
  #maxMessageLength: number;
  #header = new Uint8Array(4);
  #headerFilled = 0;
  #frame: Uint8Array | undefined;
  #frameFilled = 0;

  /**
   * Creates a splitter.
   *
   * @param options The maximum frame length.
   * @throws {RangeError} If `maxMessageLength` is not a non-negative integer.
   */
  constructor(options: PeerMessageDecoderOptions = {}) {
    const max = options.maxMessageLength ?? DEFAULT_MAX_MESSAGE_LENGTH;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw new RangeError(
        `Cannot create peer message decoder: maxMessageLength ${max} is not a non-negative integer`,
      );
    }
    this.#maxMessageLength = max;
  }

  /**
   * Number of bytes held back because they belong to an incomplete frame.
   *
   * @returns 0 when the input so far ended on a frame boundary.
   */
  get bufferedBytes(): number {
    return this.#frame === undefined ? this.#headerFilled : 4 + this.#frameFilled;
  }

  /**
   * Feeds one chunk and hands every frame it completes to `sink`.
   *
   * @param chunk The next bytes of the stream.
   * @param sink Receives the decoded messages, e.g. a stream controller or
   * an array.
   * @returns How many messages were handed to `sink`.
   * @throws {PeerProtocolError} If a frame is longer than `maxMessageLength`
   * or a message is malformed.
   */
  push(chunk: Uint8Array, sink: PeerMessageSink | PeerMessage[]): number {
    const end = chunk.length;
    let offset = 0;
    let count = 0;
    const target = Array.isArray(sink) ? { enqueue: (m: PeerMessage) => sink.push(m) } : sink;
    if (this.#frame !== undefined) {
      const frame = this.#frame;
      const take = Math.min(frame.length - this.#frameFilled, end);
      frame.set(take === end ? chunk : chunk.subarray(0, take), this.#frameFilled);
      this.#frameFilled += take;
      offset = take;
      if (this.#frameFilled < frame.length) return 0;
      this.#frame = undefined;
      this.#frameFilled = 0;
      target.enqueue(decodeMessage(frame));
      count++;
    } else if (this.#headerFilled > 0) {
      const header = this.#header;
      while (this.#headerFilled < 4 && offset < end) {
        header[this.#headerFilled++] = chunk[offset++]!;
      }
      if (this.#headerFilled < 4) return 0;
      this.#headerFilled = 0;
      offset = this.#startFrame(readUint32(header, 0), chunk, offset, target);
      if (this.#frame === undefined) count++;
    }
    while (end - offset >= 4) {
      offset = this.#startFrame(readUint32(chunk, offset), chunk, offset + 4, target);
      if (this.#frame === undefined) count++;
    }
    while (offset < end) this.#header[this.#headerFilled++] = chunk[offset++]!;
    return count;
  }

  /**
   * Declares the end of input.
   *
   * @throws {PeerProtocolError} If the input ended inside a frame.
   */
  finish(): void {
    if (this.#frame !== undefined) {
      throw new PeerProtocolError(
        `Cannot decode peer message: stream ended inside a frame, ${this.#frameFilled} of ${this.#frame.length} bytes received`,
      );
    }
    if (this.#headerFilled > 0) {
      throw new PeerProtocolError(
        `Cannot decode peer message: stream ended inside a length prefix, ${this.#headerFilled} of 4 bytes received`,
      );
    }
  }

  /** Decodes a frame whose body starts at `offset`; returns the offset after what was consumed. */
  #startFrame(length: number, chunk: Uint8Array, offset: number, sink: PeerMessageSink): number {
    if (length > this.#maxMessageLength) {
      throw new PeerProtocolError(
        `Cannot decode peer message: frame length ${length} exceeds the maximum of ${this.#maxMessageLength} bytes`,
      );
    }
    const available = chunk.length - offset;
    if (available >= length) {
      sink.enqueue(decodeMessage(chunk.subarray(offset, offset + length)));
      return offset + length;
    }
    // The frame straddles chunks: the only place a copy is made.
    const frame = new Uint8Array(length);
    frame.set(chunk.subarray(offset), 0);
    this.#frame = frame;
    this.#frameFilled = available;
    return chunk.length;
  }
}

/**
 * Decodes a byte stream of length-prefixed peer wire frames (BEP 3) into
 * {@linkcode PeerMessage}s, whatever the chunk boundaries. Frames lying whole
 * in a chunk are decoded from views into it; a zero-length frame is a
 * keep-alive.
 *
 * The stream errors with {@linkcode PeerProtocolError} on a frame longer
 * than `maxMessageLength` (checked before allocating), a malformed message,
 * or input that ends inside a frame.
 *
 * @example Usage
 * ```ts
 * import { PeerMessageDecoderStream } from "./message_streams.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = new Uint8Array([
 *   0, 0, 0, 1, 1, // unchoke
 *   0, 0, 0, 5, 4, 0, 0, 0, 9, // have 9
 * ]);
 * // Deliver the bytes one at a time.
 * const chunks = ReadableStream.from(Array.from(bytes, (b) => new Uint8Array([b])));
 * const messages = await Array.fromAsync(chunks.pipeThrough(new PeerMessageDecoderStream()));
 * assert.deepEqual(messages, [{ type: "unchoke" }, { type: "have", index: 9 }]);
 * ```
 */
export class PeerMessageDecoderStream extends TransformStream<Uint8Array, PeerMessage> {
  /**
   * Creates a decoder stream.
   *
   * @param options The maximum frame length.
   * @throws {RangeError} If `maxMessageLength` is not a non-negative integer.
   */
  constructor(options: PeerMessageDecoderOptions = {}) {
    const splitter = new PeerMessageSplitter(options);
    super({
      transform: (chunk, controller) => {
        splitter.push(chunk, controller);
      },
      flush: () => splitter.finish(),
    });
  }
}

/**
 * Encodes {@linkcode PeerMessage}s into length-prefixed frames (BEP 3). An
 * array of messages becomes one chunk, so it goes out in a single write.
 *
 * @example Usage
 * ```ts
 * import { PeerMessageEncoderStream } from "./message_streams.ts";
 * import type { PeerMessage } from "./message.ts";
 * import assert from "node:assert/strict";
 *
 * const input = ReadableStream.from<PeerMessage | PeerMessage[]>([
 *   { type: "interested" },
 *   [{ type: "have", index: 1 }, { type: "keep-alive" }],
 * ]);
 * const chunks = await Array.fromAsync(input.pipeThrough(new PeerMessageEncoderStream()));
 * assert.deepEqual(chunks, [
 *   new Uint8Array([0, 0, 0, 1, 2]),
 *   new Uint8Array([0, 0, 0, 5, 4, 0, 0, 0, 1, 0, 0, 0, 0]),
 * ]);
 * ```
 */
export class PeerMessageEncoderStream
  extends TransformStream<PeerMessage | PeerMessage[], Uint8Array> {
  /** Creates an encoder stream. */
  constructor() {
    super({
      transform: (input, controller) => {
        const bytes = Array.isArray(input) ? encodeMessages(input) : encodeMessage(input);
        if (bytes.length > 0) controller.enqueue(bytes);
      },
    });
  }
}

function readUint32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) |
    bytes[offset + 3]!) >>> 0;
}
