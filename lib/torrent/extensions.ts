/**
 * The extension protocol (BEP 10) on one engine session: our extension
 * handshake, the peer's, `ut_metadata` (BEP 9) serving, and hooks through
 * which other extensions (metadata fetching, PEX) see the peer's handshake
 * and messages.
 *
 * @module
 */

import {
  decodeExtensionHandshake,
  DEFAULT_LOCAL_EXTENSIONS,
  encodeExtensionHandshake,
  EXTENSION_HANDSHAKE_ID,
  type ExtensionHandshake,
  ExtensionRegistry,
} from "../peer/extension.ts";
import type { PeerMessage } from "../peer/message.ts";
import { metadataResponder } from "../peer/metadata_exchange.ts";
import {
  decodeMetadataMessage,
  encodeMetadataMessage,
  type MetadataMessage,
  metadataPieceCount,
} from "../peer/ut_metadata.ts";

/** Where an extension message handled by {@linkcode ExtensionHooks} came from. */
export interface ExtensionPeer {
  /** Sends a message of extension `name` to the peer, if it announced that extension. */
  sendExtension(name: string, payload: Uint8Array): boolean;
  /** The peer's latest extension handshake. */
  readonly remoteExtensions: ExtensionHandshake | undefined;
}

/**
 * Engine-wide handlers for extension traffic (e.g. PEX or fetching the
 * metadata of a magnet link). Each runs synchronously in the session's read
 * loop; a throw closes that session as a protocol violation.
 */
export interface ExtensionHooks<P extends ExtensionPeer = ExtensionPeer> {
  /** The peer's extension handshake arrived (again: BEP 10 allows updates). */
  onHandshake?(peer: P, handshake: ExtensionHandshake): void;
  /**
   * An extension message the engine does not answer itself: every message
   * of extensions other than `ut_metadata`, and `ut_metadata` data and
   * rejects. `payload` is only valid during the call.
   */
  onMessage?(peer: P, name: string, payload: Uint8Array): void;
}

/** Options for {@linkcode SessionExtensions}. */
export interface SessionExtensionsOptions {
  /** Our raw info dictionary, served over `ut_metadata`; omit while we have none. */
  infoBytes?: Uint8Array;
  /** Our TCP listen port, sent as `p`. */
  port?: number;
  /** Client name and version, sent as `v`. */
  clientName?: string;
  /** How many requests we queue for the peer, sent as `reqq`. */
  reqq?: number;
}

/** What {@linkcode SessionExtensions.receive} made of an `extended` message. */
export interface ExtensionReceipt {
  /** Messages to send back (a `ut_metadata` data or reject). */
  replies: PeerMessage[];
  /** The peer's extension handshake, when this message was one. */
  handshake?: ExtensionHandshake;
  /** The extension the message belongs to, when it was not the handshake and is known. */
  name?: string;
}

/** Local extension ids we announce: `ut_metadata` = 1, `ut_pex` = 2. */
export const LOCAL_EXTENSIONS: Readonly<Record<string, number>> = DEFAULT_LOCAL_EXTENSIONS;

/** Extra `ut_metadata` requests a peer may make beyond one per metadata piece. */
const METADATA_REQUEST_ALLOWANCE = 16;

/**
 * The BEP 10 state of one peer session. Builds our extension handshake
 * (`m: { ut_metadata: 1, ut_pex: 2 }`, `metadata_size` when we have the
 * info dictionary, `v`, `reqq`, `p`), records the peer's, and answers
 * `ut_metadata` requests (BEP 9) with data or a reject. A peer may request
 * each metadata piece a couple of times, no more: requests beyond twice the
 * piece count (plus a small allowance) are rejected, so a peer cannot make
 * us send the metadata in a loop.
 *
 * @example Serving metadata
 * ```ts
 * import { SessionExtensions } from "./extensions.ts";
 * import { decodeExtensionHandshake, encodeExtensionHandshake } from "../peer/extension.ts";
 * import { decodeMetadataMessage, encodeMetadataMessage } from "../peer/ut_metadata.ts";
 * import assert from "node:assert/strict";
 *
 * const info = new TextEncoder().encode("d4:name1:ae");
 * const ours = new SessionExtensions({ infoBytes: info, reqq: 500 });
 * const hello = ours.handshake();
 * assert.equal(hello.type, "extended");
 * if (hello.type === "extended") {
 *   assert.equal(decodeExtensionHandshake(hello.payload).metadataSize, info.length);
 * }
 *
 * // The peer announces ut_metadata as id 3, then asks for piece 0.
 * ours.receive(0, encodeExtensionHandshake({ m: { ut_metadata: 3 } }));
 * const { replies } = ours.receive(1, encodeMetadataMessage({ type: "request", piece: 0 }));
 * const reply = replies[0];
 * assert.ok(reply?.type === "extended" && reply.id === 3);
 * const message = decodeMetadataMessage(reply.payload);
 * assert.ok(message.type === "data");
 * assert.deepEqual(message.data, info);
 * ```
 */
export class SessionExtensions {
  readonly #registry = new ExtensionRegistry(LOCAL_EXTENSIONS);
  readonly #respond: (message: MetadataMessage) => MetadataMessage | undefined;
  readonly #fields: Omit<ExtensionHandshake, "m">;
  readonly #maxMetadataRequests: number;
  #metadataRequests = 0;

  /**
   * Creates the extension state of one session.
   *
   * @param options Our info dictionary, port, client name and `reqq`.
   */
  constructor(options: SessionExtensionsOptions = {}) {
    this.#respond = metadataResponder(options.infoBytes);
    const fields: Omit<ExtensionHandshake, "m"> = {};
    if (options.clientName !== undefined) fields.v = options.clientName;
    if (options.port !== undefined && options.port > 0) fields.p = options.port;
    if (options.reqq !== undefined) fields.reqq = options.reqq;
    if (options.infoBytes !== undefined) fields.metadataSize = options.infoBytes.length;
    this.#fields = fields;
    const pieces = options.infoBytes === undefined
      ? 0
      : metadataPieceCount(options.infoBytes.length);
    this.#maxMetadataRequests = 2 * pieces + METADATA_REQUEST_ALLOWANCE;
  }

  /** The peer's latest extension handshake, if one arrived. */
  get remoteHandshake(): ExtensionHandshake | undefined {
    return this.#registry.remoteHandshake;
  }

  /**
   * Our extension handshake, as the `extended` message (id 0) to send.
   *
   * @returns The message.
   */
  handshake(): PeerMessage {
    const payload = encodeExtensionHandshake(this.#registry.localHandshake(this.#fields));
    return { type: "extended", id: EXTENSION_HANDSHAKE_ID, payload };
  }

  /**
   * Wraps a payload for the peer with the id it assigned to extension `name`.
   *
   * @param name The extension name, e.g. `"ut_pex"`.
   * @param payload The extension message payload.
   * @returns The message, or `undefined` if the peer did not announce `name`.
   */
  message(name: string, payload: Uint8Array): PeerMessage | undefined {
    const id = this.#registry.remoteId(name);
    return id === undefined ? undefined : { type: "extended", id, payload };
  }

  /**
   * Handles an `extended` message from the peer: records a handshake,
   * answers a `ut_metadata` request, names the extension of anything else.
   * Messages with an id we never assigned are ignored (BEP 10).
   *
   * @param id The extended message id (ours; 0 is the handshake).
   * @param payload The payload.
   * @returns Replies to send, the handshake if it was one, the extension name.
   * @throws {PeerProtocolError} If a handshake or a `ut_metadata` request is malformed.
   */
  receive(id: number, payload: Uint8Array): ExtensionReceipt {
    if (id === EXTENSION_HANDSHAKE_ID) {
      const handshake = decodeExtensionHandshake(payload);
      this.#registry.receiveHandshake(handshake);
      return { replies: [], handshake };
    }
    const name = this.#registry.localName(id);
    if (name === undefined) return { replies: [] };
    if (name !== "ut_metadata") return { replies: [], name };
    // No size limit from our metadata here: a request past the end gets a reject, not a close.
    const message = decodeMetadataMessage(payload);
    if (message.type !== "request") return { replies: [], name };
    let answer: MetadataMessage | undefined = this.#respond(message);
    if (++this.#metadataRequests > this.#maxMetadataRequests) {
      answer = { type: "reject", piece: message.piece };
    }
    if (answer === undefined) return { replies: [], name };
    const reply = this.message("ut_metadata", encodeMetadataMessage(answer));
    return { replies: reply ? [reply] : [], name };
  }
}
