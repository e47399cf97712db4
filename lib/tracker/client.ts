import { type AnnounceRequest, type AnnounceResponse, TrackerError } from "./announce.ts";
import { announceHttp } from "./http.ts";
import type { TrackerTiers } from "./tiers.ts";
import { announceUdp, type ConnectionIdCache } from "./udp.ts";

/** Options for {@linkcode announce} and {@linkcode announceToTiers}. */
export interface AnnounceOptions {
  /** Aborts the announce; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Overall limit per tracker in milliseconds (HTTP default 15000; UDP default: retry schedule). */
  timeoutMs?: number;
  /** UDP: first retransmission wait, doubling each attempt (default 15000). */
  retryBaseMs?: number;
  /** UDP: requests sent before giving up (default 8). */
  maxAttempts?: number;
  /** UDP: where connection ids are kept. */
  connectionCache?: ConnectionIdCache;
  /** HTTP: largest body accepted (default 4 MiB). */
  maxBodyBytes?: number;
}

/**
 * Announces to one tracker, choosing HTTP(S) (BEP 3) or UDP (BEP 15) by the URL scheme.
 *
 * @param url The announce URL.
 * @param request What to announce.
 * @param options Timeouts, retries, abort signal.
 * @returns The tracker's response.
 * @throws {TypeError} For a URL scheme other than http, https and udp.
 * @throws {TrackerFailureError} When the tracker refuses the announce.
 * @throws {TrackerError} On transport or format failures.
 *
 * @example Unsupported scheme
 * ```ts
 * import assert from "node:assert/strict";
 * import { announce } from "./client.ts";
 *
 * const request = {
 *   infoHash: new Uint8Array(20), peerId: new Uint8Array(20),
 *   port: 6881, uploaded: 0, downloaded: 0, left: 0,
 * };
 * await assert.rejects(announce("wss://t.example/announce", request), TypeError);
 * ```
 */
export async function announce(
  url: string,
  request: AnnounceRequest,
  options: AnnounceOptions = {},
): Promise<AnnounceResponse> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  const timeout = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
  switch (scheme) {
    case "http":
    case "https":
      return await announceHttp(url, request, {
        ...signal,
        ...timeout,
        ...(options.maxBodyBytes === undefined ? {} : { maxBodyBytes: options.maxBodyBytes }),
      });
    case "udp":
      return await announceUdp(url, request, {
        ...signal,
        ...timeout,
        ...(options.retryBaseMs === undefined ? {} : { retryBaseMs: options.retryBaseMs }),
        ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
        ...(options.connectionCache === undefined
          ? {}
          : { connectionCache: options.connectionCache }),
      });
    default:
      throw new TypeError(`Unsupported tracker URL scheme: "${url}"`);
  }
}

/** Every tracker of a torrent failed; `errors` holds each failure, in the order tried. */
export class AllTrackersFailedError extends TrackerError {
  /** The failure of each tracker tried, in order. */
  readonly errors: { url: string; error: unknown }[];

  /**
   * Makes the error. Its message is one line: the failure itself when one tracker was tried,
   * else each tracker's failure, separated by semicolons.
   *
   * @param errors The failure of each tracker tried.
   */
  constructor(errors: { url: string; error: unknown }[]) {
    const describe = (error: unknown) => error instanceof Error ? error.message : String(error);
    super(
      errors.length === 0
        ? "Cannot announce: the torrent lists no trackers"
        : errors.length === 1
        ? describe(errors[0]!.error)
        : `Cannot announce to any of ${errors.length} trackers: ${
          errors.map(({ url, error }) => `${url}: ${describe(error)}`).join("; ")
        }`,
      { cause: errors[errors.length - 1]?.error },
    );
    this.name = "AllTrackersFailedError";
    this.errors = errors;
  }
}

/**
 * Announces to a multitracker list (BEP 12): tries the URLs in tier order until one answers,
 * promotes that one within its tier, and returns which tracker answered.
 *
 * @param tiers The tracker tiers (their order is updated on success).
 * @param request What to announce.
 * @param options Per-tracker timeouts, retries, abort signal.
 * @returns The answering tracker's URL and its response.
 * @throws {AllTrackersFailedError} When every tracker fails (a {@linkcode TrackerError}).
 *
 * @example No trackers at all
 * ```ts
 * import assert from "node:assert/strict";
 * import { announceToTiers, AllTrackersFailedError } from "./client.ts";
 * import { TrackerTiers } from "./tiers.ts";
 *
 * const request = {
 *   infoHash: new Uint8Array(20), peerId: new Uint8Array(20),
 *   port: 6881, uploaded: 0, downloaded: 0, left: 0,
 * };
 * await assert.rejects(announceToTiers(new TrackerTiers([]), request), AllTrackersFailedError);
 * ```
 */
export async function announceToTiers(
  tiers: TrackerTiers,
  request: AnnounceRequest,
  options: AnnounceOptions = {},
): Promise<{ url: string; response: AnnounceResponse }> {
  const errors: { url: string; error: unknown }[] = [];
  for (const url of tiers.order()) {
    options.signal?.throwIfAborted();
    try {
      const response = await announce(url, request, options);
      tiers.reportSuccess(url);
      return { url, response };
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      // A bad request (wrong hash length, say) fails the same way everywhere: stop at once.
      if (error instanceof RangeError || (error instanceof TypeError && !isSchemeError(error))) {
        throw error;
      }
      errors.push({ url, error });
    }
  }
  throw new AllTrackersFailedError(errors);
}

function isSchemeError(error: TypeError): boolean {
  return error.message.startsWith("Unsupported tracker URL scheme") ||
    error.message.startsWith("Cannot parse tracker URL");
}
