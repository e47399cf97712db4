/**
 * Whole-process measurements of a child process on Linux, from /proc: wall time, peak RSS
 * (`VmHWM`, polled until the process is gone) and CPU time (user + system, exact: the
 * difference in this process's `cutime + cstime`, which the kernel adds when the child is
 * reaped).
 *
 * @module
 */

/** What {@linkcode watchChild} measured. */
export interface ChildUsage {
  /** The child's pid (0 if it was never seen). */
  pid: number;
  /** Seconds from the start of the watch to the child's exit. */
  wallSeconds: number;
  /** Peak resident set (`VmHWM`) in bytes, from the last reading before the exit. */
  peakRssBytes: number;
  /** User + system CPU seconds of the child. */
  cpuSeconds: number;
}

const TICKS_PER_SECOND = 100;

/** `utime + stime` and `cutime + cstime` of a pid from `/proc/PID/stat`, in clock ticks. */
function cpuTicks(pid: number | "self"): { own: number; children: number } | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    own: Number(fields[11]) + Number(fields[12]),
    children: Number(fields[13]) + Number(fields[14]),
  };
}

/**
 * User + system CPU seconds used so far by a running process.
 *
 * @param pid The process.
 * @returns The seconds, or `NaN` once the process has exited and been reaped.
 */
export function cpuSeconds(pid: number): number {
  const ticks = cpuTicks(pid);
  return ticks === undefined ? NaN : ticks.own / TICKS_PER_SECOND;
}

/**
 * Parses a size such as `512MiB`, `4GiB`, `1.5g` or `1024` (bytes), in binary units.
 *
 * @param text The size.
 * @returns Bytes.
 * @throws {TypeError} If the text is not a size.
 */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(|b|k|kib|m|mib|g|gib)$/i.exec(text.trim());
  if (!match) throw new TypeError(`Cannot parse size "${text}": use e.g. 512MiB or 4GiB`);
  const unit = match[2]!.toLowerCase();
  const scale = unit.startsWith("g")
    ? 1024 ** 3
    : unit.startsWith("m")
    ? 1024 ** 2
    : unit.startsWith("k")
    ? 1024
    : 1;
  return Math.round(Number(match[1]) * scale);
}

function parentPid(pid: number): number | undefined {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[1]);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

function peakRss(pid: number): number | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const match = /^VmHWM:\s+(\d+) kB/m.exec(text);
  // A zombie has no memory lines any more.
  return match ? Number(match[1]) * 1024 : undefined;
}

/** Pids of this process's children, from /proc. */
export function childPids(): Set<number> {
  const pids = new Set<number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    if (parentPid(pid) === Deno.pid) pids.add(pid);
  }
  return pids;
}

/**
 * Measures one child process of ours: the one given by `pid`, or the first new child (not in
 * `before`) that appears while `running` is pending. Polls every `intervalMs` (default 10).
 *
 * @param running Settles when the child has exited (its exit status was collected).
 * @param options `pid` of the child, or `before`: the children that existed already.
 * @returns The measurements once `running` settles.
 */
export async function watchChild(
  running: Promise<unknown>,
  options: { pid?: number; before?: Set<number>; intervalMs?: number },
): Promise<ChildUsage> {
  const started = performance.now();
  const reapedBefore = cpuTicks("self")!.children;
  let pid = options.pid ?? 0;
  let rss = 0;
  let polledTicks = 0;
  let settled = false;
  let ended = 0;
  const settle = () => {
    settled = true;
    ended = performance.now();
  };
  // The caller awaits `running` itself and sees its rejection.
  running.then(settle, settle);
  const interval = options.intervalMs ?? 10;
  while (!settled) {
    if (pid === 0 && options.before) {
      for (const candidate of childPids()) {
        if (!options.before.has(candidate)) {
          pid = candidate;
          break;
        }
      }
    }
    if (pid !== 0) {
      const hwm = peakRss(pid);
      if (hwm !== undefined && hwm > rss) rss = hwm;
      const ticks = cpuTicks(pid);
      if (ticks && ticks.own > polledTicks) polledTicks = ticks.own;
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
  await Promise.allSettled([running]);
  const reaped = cpuTicks("self")!.children - reapedBefore;
  return {
    pid,
    wallSeconds: (ended - started) / 1000,
    peakRssBytes: rss,
    // The reaped figure is exact; the polled one is a floor if something else was reaped too.
    cpuSeconds: Math.max(reaped, polledTicks) / TICKS_PER_SECOND,
  };
}
