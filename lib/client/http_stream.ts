/**
 * Serving a torrent's file over HTTP with range requests, for a video player, while it
 * downloads.
 *
 * @module
 */

import type { FileStreamOptions } from "./file_stream.ts";

/** What {@linkcode serveFile} serves: a {@linkcode TorrentFileHandle} fits. */
export interface HttpFile {
  /** The file's path, for its name and content type. */
  readonly path: string;
  /** Size in bytes. */
  readonly length: number;
  /** The bytes `start..end` (end exclusive). */
  stream(options: FileStreamOptions): ReadableStream<Uint8Array>;
}

/** Options for {@linkcode serveFile}. */
export interface ServeFileOptions {
  /** Port to listen on (default 0: any free port). */
  port?: number;
  /** Interface to listen on (default `127.0.0.1`). */
  hostname?: string;
  /** Stops the server (as `close()`). */
  signal?: AbortSignal;
  /** Called for every request answered, with its status (e.g. to log it). */
  onRequest?: (request: Request, status: number) => void;
}

/** A running file server from {@linkcode serveFile}. */
export interface FileServer extends AsyncDisposable {
  /** The file's URL, e.g. `http://127.0.0.1:8000/movie.mp4`. */
  readonly url: string;
  /** The port listened on. */
  readonly port: number;
  /** Resolves once the server has stopped. */
  readonly finished: Promise<void>;
  /** Stops listening and ends open responses. */
  close(): Promise<void>;
}

const CONTENT_TYPES: Record<string, string> = {
  mp4: "video/mp4",
  m4v: "video/mp4",
  mkv: "video/x-matroska",
  webm: "video/webm",
  mov: "video/quicktime",
  avi: "video/x-msvideo",
  ts: "video/mp2t",
  mp3: "audio/mpeg",
  m4a: "audio/mp4",
  flac: "audio/flac",
  ogg: "audio/ogg",
  opus: "audio/ogg",
  wav: "audio/wav",
  txt: "text/plain; charset=utf-8",
  srt: "text/plain; charset=utf-8",
  vtt: "text/vtt",
  html: "text/html; charset=utf-8",
  json: "application/json",
  pdf: "application/pdf",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  png: "image/png",
  gif: "image/gif",
};

/**
 * Parses an HTTP `Range` header (RFC 9110 section 14) against a length: `bytes=a-b`, `bytes=a-`
 * or `bytes=-n`. Several ranges, or a unit other than `bytes`, give `undefined` (the whole
 * file is then sent, as the RFC allows).
 *
 * @param header The header's value.
 * @param length The file's length.
 * @returns The range as `[start, end)`, `undefined` to send everything, or `"unsatisfiable"`
 * (answer 416).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRange } from "./http_stream.ts";
 *
 * assert.deepEqual(parseRange("bytes=0-99", 1000), { start: 0, end: 100 });
 * assert.deepEqual(parseRange("bytes=900-", 1000), { start: 900, end: 1000 });
 * assert.deepEqual(parseRange("bytes=-100", 1000), { start: 900, end: 1000 });
 * assert.deepEqual(parseRange("bytes=500-5000", 1000), { start: 500, end: 1000 });
 * assert.equal(parseRange("bytes=1000-", 1000), "unsatisfiable");
 * assert.equal(parseRange("bytes=0-1,5-6", 1000), undefined);
 * ```
 */
export function parseRange(
  header: string,
  length: number,
): { start: number; end: number } | "unsatisfiable" | undefined {
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return undefined;
  const [, first = "", last = ""] = match;
  if (first === "" && last === "") return undefined;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || length === 0) return "unsatisfiable";
    return { start: Math.max(0, length - suffix), end: length };
  }
  const start = Number(first);
  const end = last === "" ? length : Math.min(length, Number(last) + 1);
  if (start >= length || end <= start) return "unsatisfiable";
  return { start, end };
}

/**
 * Serves one file over HTTP (with `Deno.serve`) at `/<file name>` (any path works): `GET` and
 * `HEAD`, `Range` requests answered with `206 Partial Content`, `Content-Range` and
 * `Accept-Ranges: bytes`, so that a video player can seek while the torrent downloads. Bytes
 * are streamed from the file as they are verified; a client that goes away cancels its stream.
 *
 * @param file The file (a {@linkcode TorrentFileHandle} fits).
 * @param options Port, interface, abort signal, request log.
 * @returns The running server.
 * @throws {Deno.errors.AddrInUse} If the port is taken.
 *
 * @example A range request
 * ```ts
 * import assert from "node:assert/strict";
 * import { serveFile } from "./http_stream.ts";
 *
 * const data = new TextEncoder().encode("0123456789");
 * await using server = serveFile({
 *   path: "digits.txt",
 *   length: data.length,
 *   stream: ({ start = 0, end = data.length }) => new Blob([data.slice(start, end)]).stream(),
 * });
 * const response = await fetch(server.url, { headers: { range: "bytes=2-5" } });
 * assert.equal(response.status, 206);
 * assert.equal(response.headers.get("content-range"), "bytes 2-5/10");
 * assert.equal(await response.text(), "2345");
 * ```
 */
export function serveFile(file: HttpFile, options: ServeFileOptions = {}): FileServer {
  const hostname = options.hostname ?? "127.0.0.1";
  const name = file.path.split("/").at(-1) ?? "file";
  const extension = /\.([^.]+)$/.exec(name)?.[1]?.toLowerCase() ?? "";
  const contentType = CONTENT_TYPES[extension] ?? "application/octet-stream";
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;

  const respond = (request: Request): Response => {
    const headers = new Headers({ "accept-ranges": "bytes", "content-type": contentType });
    if (request.method !== "GET" && request.method !== "HEAD") {
      headers.set("allow", "GET, HEAD");
      return new Response("Method not allowed\n", { status: 405, headers });
    }
    const rangeHeader = request.headers.get("range");
    const range = rangeHeader === null ? undefined : parseRange(rangeHeader, file.length);
    if (range === "unsatisfiable") {
      headers.set("content-range", `bytes */${file.length}`);
      return new Response(null, { status: 416, headers });
    }
    const { start, end } = range ?? { start: 0, end: file.length };
    headers.set("content-length", String(end - start));
    const status = range ? 206 : 200;
    if (range) headers.set("content-range", `bytes ${start}-${end - 1}/${file.length}`);
    if (request.method === "HEAD" || start === end) {
      return new Response(null, { status, headers });
    }
    // The response body is cancelled when the client goes away, which releases the window.
    return new Response(file.stream({ start, end, signal }), { status, headers });
  };

  const server = Deno.serve({
    hostname,
    port: options.port ?? 0,
    signal,
    onListen: () => {},
  }, (request) => {
    const response = respond(request);
    options.onRequest?.(request, response.status);
    return response;
  });
  const port = server.addr.port;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  const close = async () => {
    stop.abort(new DOMException("File server closed", "AbortError"));
    await server.finished;
  };
  return {
    url: `http://${host}:${port}/${encodeURIComponent(name)}`,
    port,
    finished: server.finished,
    close,
    [Symbol.asyncDispose]: close,
  };
}
