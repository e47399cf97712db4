import assert from "node:assert/strict";
import {
  formatBytes,
  formatDuration,
  formatProgressLine,
  formatRate,
  progressEvent,
  ProgressReporter,
  type ProgressStats,
} from "./progress.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

function stats(overrides: Partial<ProgressStats> = {}): ProgressStats {
  return {
    totalBytes: GiB,
    verifiedBytes: 430.1 * MiB,
    downloadRate: 612.3 * MiB,
    uploadRate: 0,
    uploaded: 0,
    downloaded: 431 * MiB,
    peersConnected: 3,
    peersKnown: 7,
    piecesDone: 1720,
    pieceCount: 4096,
    elapsedMs: 700,
    ...overrides,
  };
}

/** A writer that records what was written, as text. */
function recorder(): { text: () => string; writes: string[]; writeSync(b: Uint8Array): number } {
  const writes: string[] = [];
  const decoder = new TextDecoder();
  return {
    writes,
    text: () => writes.join(""),
    writeSync(bytes: Uint8Array): number {
      // Accept at most 7 bytes per call, to exercise the partial-write loop.
      const n = Math.min(7, bytes.length);
      writes.push(decoder.decode(bytes.subarray(0, n)));
      return n;
    },
  };
}

Deno.test("formatBytes() picks binary units and precision", async (t) => {
  await t.step("bytes", () => {
    assert.equal(formatBytes(0), "0 B");
    assert.equal(formatBytes(1023), "1023 B");
  });
  await t.step("two decimals below 10, one above", () => {
    assert.equal(formatBytes(1024), "1.00 KiB");
    assert.equal(formatBytes(9.5 * KiB), "9.50 KiB");
    assert.equal(formatBytes(10 * KiB), "10.0 KiB");
    assert.equal(formatBytes(430.1 * MiB), "430.1 MiB");
    assert.equal(formatBytes(GiB), "1.00 GiB");
    assert.equal(formatBytes(3 * 1024 * GiB), "3.00 TiB");
  });
  await t.step("rounding up to 1024 moves to the next unit", () => {
    assert.equal(formatBytes(1023.99 * KiB), "1.00 MiB");
  });
  await t.step("invalid input", () => {
    assert.equal(formatBytes(-1), "?");
    assert.equal(formatBytes(NaN), "?");
  });
});

Deno.test("formatRate() appends /s", () => {
  assert.equal(formatRate(612.3 * MiB), "612.3 MiB/s");
  assert.equal(formatRate(100), "100 B/s");
});

Deno.test("formatDuration() formats m:ss, h:mm:ss and days", () => {
  assert.equal(formatDuration(0), "0:00");
  assert.equal(formatDuration(1), "0:01");
  assert.equal(formatDuration(59_000), "0:59");
  assert.equal(formatDuration(600_000), "10:00");
  assert.equal(formatDuration(3_600_000), "1:00:00");
  assert.equal(formatDuration(90_061_000), "1d 01:01:01");
  assert.equal(formatDuration(-5), "--:--");
  assert.equal(formatDuration(NaN), "--:--");
});

Deno.test("formatProgressLine() shows the documented fields", async (t) => {
  await t.step("typical line", () => {
    assert.equal(
      formatProgressLine(stats()),
      "42.0%  430.1 MiB / 1.00 GiB  612.3 MiB/s  peers 3/7  ETA 0:01",
    );
  });
  await t.step("upload rate appears only while uploading", () => {
    assert.equal(
      formatProgressLine(stats({ uploadRate: MiB })),
      "42.0%  430.1 MiB / 1.00 GiB  612.3 MiB/s  up 1.00 MiB/s  peers 3/7  ETA 0:01",
    );
  });
  await t.step("stalled download has an unknown ETA", () => {
    assert.match(formatProgressLine(stats({ downloadRate: 0 })), /ETA --:--$/);
  });
  await t.step("never shows 100.0% while bytes are missing", () => {
    const line = formatProgressLine(stats({ verifiedBytes: GiB - 1 }));
    assert.match(line, /^99\.9%/);
    assert.match(formatProgressLine(stats({ verifiedBytes: GiB })), /^100\.0%.*ETA 0:00$/);
  });
  await t.step("empty torrent is complete", () => {
    assert.match(formatProgressLine(stats({ totalBytes: 0, verifiedBytes: 0 })), /^100\.0%/);
  });
  await t.step("narrow widths drop fields, least important first", () => {
    const s = stats({ uploadRate: MiB });
    assert.equal(
      formatProgressLine(s, { width: 62 }),
      "42.0%  430.1 MiB / 1.00 GiB  612.3 MiB/s  peers 3/7  ETA 0:01",
    );
    assert.equal(
      formatProgressLine(s, { width: 52 }),
      "42.0%  430.1 MiB / 1.00 GiB  612.3 MiB/s  peers 3/7",
    );
    assert.equal(formatProgressLine(s, { width: 41 }), "42.0%  430.1 MiB / 1.00 GiB  612.3 MiB/s");
    assert.equal(formatProgressLine(s, { width: 3 }), "42.");
    for (let width = 0; width < 90; width++) {
      assert.ok(formatProgressLine(s, { width }).length <= width);
    }
  });
});

Deno.test("progressEvent() is JSON-serialisable with rounded numbers", () => {
  const event = progressEvent(stats({ verifiedBytes: GiB / 3, downloadRate: 1.6, elapsedMs: 9.7 }));
  assert.equal(event.type, "progress");
  assert.equal(event.percent, 33.33);
  assert.equal(event.downloadRate, 2);
  assert.equal(event.elapsedMs, 10);
  assert.equal(event.peersKnown, 7);
  assert.ok(event.etaMs !== null && event.etaMs > 0);
  assert.deepEqual(JSON.parse(JSON.stringify(event)), event);
  assert.equal(progressEvent(stats({ downloadRate: 0 })).etaMs, null);
  assert.equal(progressEvent(stats(), "done").type, "done");
});

Deno.test("ProgressReporter redraws a terminal line at most once per interval", () => {
  const out = recorder();
  let now = 0;
  const reporter = new ProgressReporter(out, {
    isTerminal: true,
    intervalMs: 200,
    width: 40,
    now: () => now,
  });
  assert.equal(reporter.update(stats()), true);
  now = 100;
  assert.equal(reporter.update(stats()), false);
  now = 200;
  assert.equal(reporter.update(stats({ verifiedBytes: GiB / 2 })), true);
  reporter.finish(stats({ verifiedBytes: GiB }));
  assert.equal(reporter.update(stats()), false);
  reporter.finish(stats());
  assert.equal(
    out.text(),
    "\r\x1b[2K42.0%  430.1 MiB / 1.00 GiB" +
      "\r\x1b[2K50.0%  512.0 MiB / 1.00 GiB" +
      "\r\x1b[2K100.0%  1.00 GiB / 1.00 GiB\n",
  );
});

Deno.test("ProgressReporter.clear() erases the line and allows an immediate redraw", () => {
  const out = recorder();
  const reporter = new ProgressReporter(out, { isTerminal: true, width: 30, now: () => 0 });
  reporter.clear();
  assert.equal(out.text(), "");
  reporter.update(stats());
  reporter.clear();
  assert.equal(reporter.update(stats()), true);
  assert.equal(
    out.text(),
    "\r\x1b[2K42.0%  430.1 MiB / 1.00 GiB".repeat(1) + "\r\x1b[2K" +
      "\r\x1b[2K42.0%  430.1 MiB / 1.00 GiB",
  );
});

Deno.test("ProgressReporter prints only the final line when not a terminal", () => {
  const out = recorder();
  let now = 0;
  const reporter = new ProgressReporter(out, { isTerminal: false, now: () => now });
  for (; now < 5000; now += 100) reporter.update(stats());
  assert.equal(out.text(), "");
  reporter.finish(stats());
  assert.equal(out.text(), "42.0%  430.1 MiB / 1.00 GiB  612.3 MiB/s  peers 3/7  ETA 0:01\n");
});

Deno.test("ProgressReporter writes JSON lines in json mode", () => {
  const out = recorder();
  let now = 0;
  const reporter = new ProgressReporter(out, {
    isTerminal: true,
    json: true,
    jsonIntervalMs: 1000,
    now: () => now,
  });
  for (; now < 2500; now += 100) reporter.update(stats());
  reporter.finish(stats({ verifiedBytes: GiB }));
  const lines = out.text().split("\n");
  assert.equal(lines.pop(), "");
  const events = lines.map((line) => JSON.parse(line));
  assert.deepEqual(events.map((e) => e.type), ["progress", "progress", "progress", "done"]);
  assert.equal(events[3].percent, 100);
  assert.ok(!out.text().includes("\x1b"));
});
