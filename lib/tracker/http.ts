import { type AnnounceRequest, type AnnounceResponse, TrackerError } from "./announce.ts";
import { buildAnnounceUrl, parseAnnounceResponse } from "./http_codec.ts";

/** Options for {@linkcode announceHttp}. */
export interface AnnounceHttpOptions {
  /** Aborts the announce; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Gives up after this many milliseconds (default 15000). */
  timeoutMs?: number;
  /** Largest response body accepted, in bytes (default 4 MiB). */
  maxBodyBytes?: number;
}

const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * Announces to an HTTP or HTTPS tracker (BEP 3) and parses its answer. Redirects are
 * followed; a redirect loop, a timeout, a non-2xx status, an oversized or unparsable body all
 * become a {@linkcode TrackerError}.
 *
 * @param url The tracker's announce URL (`http://` or `https://`).
 * @param request What to announce.
 * @param options Timeout, abort signal and body size cap.
 * @returns The tracker's response.
 * @throws {TrackerFailureError} When the tracker refuses with a `failure reason`.
 * @throws {TrackerError} On transport or format failures.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { announceHttp } from "./http.ts";
 *
 * await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () =>
 *   new Response("d8:intervali900e5:peers0:e"));
 * const response = await announceHttp(`http://127.0.0.1:${server.addr.port}/announce`, {
 *   infoHash: new Uint8Array(20),
 *   peerId: new Uint8Array(20),
 *   port: 6881,
 *   uploaded: 0,
 *   downloaded: 0,
 *   left: 0,
 * });
 * assert.deepEqual(response, { interval: 900, peers: [] });
 * ```
 */
export async function announceHttp(
  url: string,
  request: AnnounceRequest,
  options: AnnounceHttpOptions = {},
): Promise<AnnounceResponse> {
  const fullUrl = buildAnnounceUrl(url, request);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const fail = (detail: string, cause?: unknown) =>
    new TrackerError(
      `Cannot announce to "${url}": ${detail}`,
      cause === undefined ? undefined : { cause },
    );
  const body = await (async () => {
    let response: Response;
    try {
      response = await fetch(fullUrl, { signal, redirect: "follow" });
    } catch (cause) {
      throw translateFetchError(cause, options.signal, timeout, timeoutMs, fail);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw fail(
        `HTTP status ${response.status}${response.statusText ? " " + response.statusText : ""}`,
      );
    }
    try {
      return await readCapped(response, options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
    } catch (cause) {
      if (cause instanceof TrackerError) throw fail(cause.message, cause);
      throw translateFetchError(cause, options.signal, timeout, timeoutMs, fail);
    }
  })();
  try {
    return parseAnnounceResponse(body);
  } catch (cause) {
    if (cause instanceof TrackerError) throw fail(cause.message, cause);
    throw cause;
  }
}

function translateFetchError(
  cause: unknown,
  callerSignal: AbortSignal | undefined,
  timeout: AbortSignal,
  timeoutMs: number,
  fail: (detail: string, cause?: unknown) => TrackerError,
): unknown {
  // The caller's own abort is not a tracker failure: surface their reason unchanged.
  if (callerSignal?.aborted) return callerSignal.reason;
  if (timeout.aborted) return fail(`timed out after ${timeoutMs} ms`, cause);
  let detail = (cause as Error)?.message ?? String(cause);
  // fetch() says only "fetch failed"; the reason (DNS, refused, reset) is in its cause, after
  // the "error sending request for url (...): client error (Connect): " preamble.
  const inner = (cause as Error)?.cause;
  if (inner instanceof Error) detail += `: ${inner.message.replace(/^.*\): /, "")}`;
  return fail(detail, cause);
}

async function readCapped(response: Response, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw new TrackerError(`response body of ${declared} bytes exceeds the ${maxBytes}-byte limit`);
  }
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      await reader.cancel();
      throw new TrackerError(`response body exceeds the ${maxBytes}-byte limit`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
