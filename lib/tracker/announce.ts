import type { PeerAddress } from "../peer/address.ts";

/** What a client tells a tracker in an announce (BEP 3, BEP 15). */
export interface AnnounceRequest {
  /** The 20-byte SHA-1 info hash of the torrent. */
  infoHash: Uint8Array;
  /** This client's 20-byte peer id. */
  peerId: Uint8Array;
  /** The TCP port this client listens on. */
  port: number;
  /** Bytes uploaded since the `started` event. */
  uploaded: number;
  /** Bytes downloaded since the `started` event. */
  downloaded: number;
  /** Bytes still missing. */
  left: number;
  /** The event, if any; absent for a regular re-announce. */
  event?: "started" | "completed" | "stopped";
  /** How many peers to ask for (trackers default to about 50). */
  numWant?: number;
  /** A random 32-bit key identifying this client across IP changes. */
  key?: number;
  /** The `tracker id` a previous response returned (HTTP only). */
  trackerId?: string;
}

/** What a tracker answers to an announce. */
export interface AnnounceResponse {
  /** Seconds to wait before the next regular announce. */
  interval: number;
  /** Seconds the tracker insists on between announces, if it says. */
  minInterval?: number;
  /** Other peers in the swarm, IPv4 and IPv6 together. */
  peers: PeerAddress[];
  /** Number of seeders, if reported. */
  complete?: number;
  /** Number of leechers, if reported. */
  incomplete?: number;
  /** A `tracker id` to send back on the next announce (HTTP only). */
  trackerId?: string;
  /** A `warning message` the tracker attached to an otherwise successful response. */
  warning?: string;
}

/**
 * The tracker answered, but refused the announce with a `failure reason` (BEP 3) or an
 * error action (BEP 15).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { TrackerFailureError } from "./announce.ts";
 *
 * const error = new TrackerFailureError("unregistered torrent");
 * assert.equal(error.reason, "unregistered torrent");
 * assert.equal(error.message, "Tracker refused the announce: unregistered torrent");
 * ```
 */
export class TrackerFailureError extends Error {
  /** The reason text the tracker sent. */
  readonly reason: string;

  /**
   * Makes the error.
   *
   * @param reason The tracker's `failure reason`.
   * @param options The standard error options (`cause`).
   */
  constructor(reason: string, options?: ErrorOptions) {
    super(`Tracker refused the announce: ${reason}`, options);
    this.name = "TrackerFailureError";
    this.reason = reason;
  }
}

/**
 * The announce failed in transport or format: a timeout, an HTTP status, an unparsable body,
 * a bad UDP packet, or every tracker of a list failing.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { TrackerError } from "./announce.ts";
 *
 * const error = new TrackerError('Cannot announce to "http://t.example/announce": HTTP status 500');
 * assert.equal(error.name, "TrackerError");
 * ```
 */
export class TrackerError extends Error {
  /**
   * Makes the error.
   *
   * @param message What went wrong, naming the tracker URL.
   * @param options The standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TrackerError";
  }
}
