/**
 * Progress output for a download: pure formatting of one status line, a JSON event for
 * `--json` output, and a small reporter that redraws the line on a terminal.
 *
 * @module
 */

/**
 * A snapshot of a download's progress: the minimal input to every function in this module.
 * Rates are bytes per second; byte counts are totals since the session started.
 */
export interface ProgressStats {
  /** Size of the torrent's content in bytes. */
  totalBytes: number;
  /** Bytes of pieces that passed their SHA-1 check (what we really have). */
  verifiedBytes: number;
  /** Current download rate in bytes per second. */
  downloadRate: number;
  /** Current upload rate in bytes per second. */
  uploadRate: number;
  /** Bytes uploaded in this session. */
  uploaded: number;
  /** Bytes downloaded in this session (payload, verified or not). */
  downloaded: number;
  /** Peers with an open connection. */
  peersConnected: number;
  /** Peers known from trackers, DHT or PEX, connected or not. */
  peersKnown: number;
  /** Pieces verified. */
  piecesDone: number;
  /** Pieces in the torrent. */
  pieceCount: number;
  /** Milliseconds since the download started. */
  elapsedMs: number;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] as const;

/**
 * Formats a byte count with binary units: whole bytes below 1 KiB, then two decimals
 * below 10 of a unit and one decimal above.
 *
 * @example Usage
 * ```ts
 * import { formatBytes } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatBytes(512), "512 B");
 * assert.equal(formatBytes(1536), "1.50 KiB");
 * assert.equal(formatBytes(430.1 * 1024 * 1024), "430.1 MiB");
 * assert.equal(formatBytes(2 ** 30), "1.00 GiB");
 * ```
 *
 * @param bytes A non-negative byte count; anything else prints as `?`.
 * @returns The formatted size.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "?";
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  let digits = value < 10 ? 2 : 1;
  let text = value.toFixed(digits);
  // 1023.96 KiB rounds to "1024.0": move up a unit instead.
  if (Number(text) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
    digits = 2;
    text = value.toFixed(digits);
  }
  return `${text} ${UNITS[unit]}`;
}

/**
 * Formats a transfer rate as {@linkcode formatBytes} per second.
 *
 * @example Usage
 * ```ts
 * import { formatRate } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatRate(612.3 * 1024 * 1024), "612.3 MiB/s");
 * assert.equal(formatRate(0), "0 B/s");
 * ```
 *
 * @param bytesPerSecond Rate in bytes per second.
 * @returns The formatted rate.
 */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/**
 * Formats a duration as `m:ss`, `h:mm:ss`, or `Nd hh:mm:ss` beyond a day. A duration that is
 * unknown (infinite, NaN or negative) prints as `--:--`.
 *
 * @example Usage
 * ```ts
 * import { formatDuration } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatDuration(1_000), "0:01");
 * assert.equal(formatDuration(60_500), "1:01");
 * assert.equal(formatDuration(3_723_000), "1:02:03");
 * assert.equal(formatDuration(Infinity), "--:--");
 * ```
 *
 * @param ms Duration in milliseconds; fractions of a second are rounded up.
 * @returns The formatted duration.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "--:--";
  const total = Math.ceil(ms / 1000);
  const seconds = total % 60;
  const minutes = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600) % 24;
  const days = Math.floor(total / 86400);
  const ss = String(seconds).padStart(2, "0");
  if (days > 0) {
    return `${days}d ${String(hours).padStart(2, "0")}:${String(minutes).padStart(2, "0")}:${ss}`;
  }
  if (hours > 0) return `${hours}:${String(minutes).padStart(2, "0")}:${ss}`;
  return `${minutes}:${ss}`;
}

/**
 * Fraction of the content verified, from 0 to 1. An empty torrent counts as complete.
 */
function fractionDone(stats: ProgressStats): number {
  if (stats.totalBytes <= 0) return 1;
  return Math.min(1, Math.max(0, stats.verifiedBytes / stats.totalBytes));
}

/**
 * Estimated milliseconds until complete, `0` when done, `Infinity` when stalled.
 */
function etaMs(stats: ProgressStats): number {
  const left = Math.max(0, stats.totalBytes - stats.verifiedBytes);
  if (left === 0) return 0;
  if (!(stats.downloadRate > 0)) return Infinity;
  return (left / stats.downloadRate) * 1000;
}

/** Formats the percentage with one decimal, never showing 100.0% before the end. */
function formatPercent(stats: ProgressStats): string {
  const fraction = fractionDone(stats);
  // Floor, not round: 99.96% must not print as 100.0% while a piece is still missing.
  const tenths = fraction >= 1 && stats.verifiedBytes >= stats.totalBytes
    ? 1000
    : Math.min(999, Math.floor(fraction * 1000));
  return `${(tenths / 10).toFixed(1)}%`;
}

/** Options for {@linkcode formatProgressLine}. */
export interface FormatProgressLineOptions {
  /**
   * Maximum line width in columns (e.g. the terminal's width). Less important fields are
   * dropped first (upload rate, ETA, peers, rate), then the line is cut. Default: no limit.
   */
  width?: number;
}

/**
 * Formats one status line, e.g.
 * `42.0%  430.1 MiB / 1.00 GiB  612.3 MiB/s  peers 3/7  ETA 0:01`. The upload rate is shown
 * (as `up 1.00 MiB/s`) only while uploading.
 *
 * @example Usage
 * ```ts
 * import { formatProgressLine } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * const MiB = 1024 * 1024;
 * const stats = {
 *   totalBytes: 1024 * MiB,
 *   verifiedBytes: 430.1 * MiB,
 *   downloadRate: 612.3 * MiB,
 *   uploadRate: 0,
 *   uploaded: 0,
 *   downloaded: 430.1 * MiB,
 *   peersConnected: 3,
 *   peersKnown: 7,
 *   piecesDone: 1720,
 *   pieceCount: 4096,
 *   elapsedMs: 700,
 * };
 * assert.equal(
 *   formatProgressLine(stats),
 *   "42.0%  430.1 MiB / 1.00 GiB  612.3 MiB/s  peers 3/7  ETA 0:01",
 * );
 * assert.equal(formatProgressLine(stats, { width: 30 }), "42.0%  430.1 MiB / 1.00 GiB");
 * ```
 *
 * @param stats The progress snapshot.
 * @param options Maximum width.
 * @returns The line, without a newline.
 */
export function formatProgressLine(
  stats: ProgressStats,
  options: FormatProgressLineOptions = {},
): string {
  // [text, priority]: lower priority is dropped first when the line is too wide.
  const fields: [string, number][] = [
    [formatPercent(stats), 6],
    [`${formatBytes(stats.verifiedBytes)} / ${formatBytes(stats.totalBytes)}`, 5],
    [formatRate(stats.downloadRate), 4],
  ];
  if (stats.uploadRate > 0) fields.push([`up ${formatRate(stats.uploadRate)}`, 1]);
  fields.push([`peers ${stats.peersConnected}/${stats.peersKnown}`, 3]);
  fields.push([`ETA ${formatDuration(etaMs(stats))}`, 2]);
  const width = options.width;
  let line = fields.map((f) => f[0]).join("  ");
  if (width === undefined || !Number.isFinite(width)) return line;
  const limit = Math.max(0, Math.floor(width));
  while (line.length > limit && fields.length > 1) {
    let lowest = 0;
    for (let i = 1; i < fields.length; i++) {
      if (fields[i]![1] < fields[lowest]![1]) lowest = i;
    }
    fields.splice(lowest, 1);
    line = fields.map((f) => f[0]).join("  ");
  }
  return line.length > limit ? line.slice(0, limit) : line;
}

/** A JSON-serialisable progress record, one per line of `--json` output. */
export interface ProgressEvent {
  /** `"progress"` while running, `"done"` for the final record. */
  type: "progress" | "done";
  /** Percentage verified, 0 to 100, with at most two decimals. */
  percent: number;
  /** Bytes verified. */
  verifiedBytes: number;
  /** Size of the content. */
  totalBytes: number;
  /** Download rate in whole bytes per second. */
  downloadRate: number;
  /** Upload rate in whole bytes per second. */
  uploadRate: number;
  /** Bytes uploaded this session. */
  uploaded: number;
  /** Bytes downloaded this session. */
  downloaded: number;
  /** Connected peers. */
  peersConnected: number;
  /** Known peers. */
  peersKnown: number;
  /** Pieces verified. */
  piecesDone: number;
  /** Pieces in the torrent. */
  pieceCount: number;
  /** Milliseconds since start, whole. */
  elapsedMs: number;
  /** Estimated milliseconds left, whole; `null` when stalled (unknown). */
  etaMs: number | null;
}

/**
 * Builds a JSON-serialisable progress record for `--json` (JSON Lines) output.
 *
 * @example Usage
 * ```ts
 * import { progressEvent } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * const event = progressEvent({
 *   totalBytes: 1000,
 *   verifiedBytes: 250,
 * downloadRate: 75.4,
 *   uploadRate: 0,
 *   uploaded: 0,
 *   downloaded: 300,
 *   peersConnected: 1,
 *   peersKnown: 2,
 *   piecesDone: 1,
 *   pieceCount: 4,
 *   elapsedMs: 1234.5,
 * });
 * assert.equal(event.percent, 25);
 * assert.equal(event.downloadRate, 75);
 * assert.equal(event.etaMs, 9947); // 750 bytes left at 75.4 B/s
 * assert.equal(JSON.parse(JSON.stringify(event)).type, "progress");
 * ```
 *
 * @param stats The progress snapshot.
 * @param type `"progress"` (default) or `"done"`.
 * @returns The record.
 */
export function progressEvent(
  stats: ProgressStats,
  type: "progress" | "done" = "progress",
): ProgressEvent {
  const eta = etaMs(stats);
  return {
    type,
    percent: Math.floor(fractionDone(stats) * 10_000) / 100,
    verifiedBytes: stats.verifiedBytes,
    totalBytes: stats.totalBytes,
    downloadRate: Math.round(stats.downloadRate),
    uploadRate: Math.round(stats.uploadRate),
    uploaded: stats.uploaded,
    downloaded: stats.downloaded,
    peersConnected: stats.peersConnected,
    peersKnown: stats.peersKnown,
    piecesDone: stats.piecesDone,
    pieceCount: stats.pieceCount,
    elapsedMs: Math.round(stats.elapsedMs),
    etaMs: Number.isFinite(eta) ? Math.ceil(eta) : null,
  };
}

/** Where a {@linkcode ProgressReporter} writes: `Deno.stderr` fits. */
export interface ProgressWriter {
  /** Writes some bytes synchronously, returning how many were written. */
  writeSync(bytes: Uint8Array): number;
}

/** Options for {@linkcode ProgressReporter}. */
export interface ProgressReporterOptions {
  /** Whether the writer is a terminal (`Deno.stderr.isTerminal()`): redraw one line in place. */
  isTerminal: boolean;
  /** Write one JSON record per line instead of text. Default `false`. */
  json?: boolean;
  /** Minimum milliseconds between redraws on a terminal. Default 200 (5 per second). */
  intervalMs?: number;
  /** Minimum milliseconds between JSON records. Default 1000. */
  jsonIntervalMs?: number;
  /** Line width, or a function returning it (e.g. from `Deno.consoleSize()`). Default 80. */
  width?: number | (() => number);
  /** Clock in milliseconds, injectable for tests. Default `performance.now`. */
  now?: () => number;
}

const CLEAR_LINE = "\r\x1b[2K";

/**
 * Shows progress on a writer such as `Deno.stderr`. Call {@linkcode ProgressReporter.update}
 * as often as convenient (e.g. on every stats tick); it throttles output itself:
 * - on a terminal, it redraws one line in place (`\r` + clear line) at most every `intervalMs`;
 * - not on a terminal, it prints nothing periodic, only the final line from `finish()`;
 * - in JSON mode, it writes a {@linkcode ProgressEvent} per line at most every `jsonIntervalMs`,
 *   and a `"done"` record from `finish()`.
 *
 * @example Usage
 * ```ts
 * import { ProgressReporter } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * const chunks: string[] = [];
 * const writer = {
 *   writeSync(bytes: Uint8Array) {
 *     chunks.push(new TextDecoder().decode(bytes));
 *     return bytes.length;
 *   },
 * };
 * const stats = {
 *   totalBytes: 100, verifiedBytes: 100, downloadRate: 0, uploadRate: 0, uploaded: 0,
 *   downloaded: 100, peersConnected: 0, peersKnown: 1, piecesDone: 1, pieceCount: 1,
 *   elapsedMs: 5,
 * };
 * const reporter = new ProgressReporter(writer, { isTerminal: false });
 * reporter.update(stats);
 * assert.equal(chunks.length, 0);
 * reporter.finish(stats);
 * assert.equal(chunks.join(""), "100.0%  100 B / 100 B  0 B/s  peers 0/1  ETA 0:00\n");
 * ```
 */
export class ProgressReporter {
  readonly #writer: ProgressWriter;
  readonly #isTerminal: boolean;
  readonly #json: boolean;
  readonly #intervalMs: number;
  readonly #jsonIntervalMs: number;
  readonly #width: number | (() => number);
  readonly #now: () => number;
  readonly #encoder = new TextEncoder();
  #lastDraw = -Infinity;
  #lineShown = false;
  #finished = false;

  /**
   * Creates a reporter.
   *
   * @param writer Destination, e.g. `Deno.stderr`.
   * @param options Terminal and JSON modes, throttling, width, clock.
   */
  constructor(writer: ProgressWriter, options: ProgressReporterOptions) {
    this.#writer = writer;
    this.#isTerminal = options.isTerminal;
    this.#json = options.json ?? false;
    this.#intervalMs = options.intervalMs ?? 200;
    this.#jsonIntervalMs = options.jsonIntervalMs ?? 1000;
    this.#width = options.width ?? 80;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Offers a new snapshot; it is drawn only if the throttle interval has passed.
   *
   * @param stats The progress snapshot.
   * @returns `true` if something was written.
   */
  update(stats: ProgressStats): boolean {
    if (this.#finished) return false;
    if (!this.#json && !this.#isTerminal) return false;
    const now = this.#now();
    const interval = this.#json ? this.#jsonIntervalMs : this.#intervalMs;
    if (now - this.#lastDraw < interval) return false;
    this.#lastDraw = now;
    if (this.#json) {
      this.#write(JSON.stringify(progressEvent(stats)) + "\n");
    } else {
      // Leave the last column free: writing into it makes some terminals wrap.
      const line = formatProgressLine(stats, { width: this.#columns() - 1 });
      this.#write(CLEAR_LINE + line);
      this.#lineShown = true;
    }
    return true;
  }

  /**
   * Erases the progress line on a terminal, so a log message can be printed; the next
   * `update()` draws it again.
   */
  clear(): void {
    if (!this.#lineShown) return;
    this.#write(CLEAR_LINE);
    this.#lineShown = false;
    this.#lastDraw = -Infinity;
  }

  /**
   * Writes the final line (or `"done"` JSON record) followed by a newline. Later calls to
   * `update()` and `finish()` write nothing.
   *
   * @param stats The final snapshot.
   */
  finish(stats: ProgressStats): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#json) {
      this.#write(JSON.stringify(progressEvent(stats, "done")) + "\n");
      return;
    }
    const prefix = this.#lineShown ? CLEAR_LINE : "";
    const width = this.#isTerminal ? this.#columns() - 1 : Infinity;
    this.#write(prefix + formatProgressLine(stats, { width }) + "\n");
    this.#lineShown = false;
  }

  #columns(): number {
    const width = typeof this.#width === "function" ? this.#width() : this.#width;
    return Number.isFinite(width) && width > 1 ? width : 80;
  }

  #write(text: string): void {
    const bytes = this.#encoder.encode(text);
    let offset = 0;
    while (offset < bytes.length) offset += this.#writer.writeSync(bytes.subarray(offset));
  }
}
