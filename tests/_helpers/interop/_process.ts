/**
 * A child process owned by a test: stdout read line by line, a bounded tail of its output kept
 * for error messages, and a `stop()` that always leaves no open resources behind (Deno's test
 * sanitizers check for leaked child processes and pipes).
 *
 * @module
 */

/** Options for {@linkcode ManagedProcess}. */
export interface ManagedProcessOptions {
  /** Arguments after the command. */
  args: string[];
  /** Working directory. */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Called for each output line (without the line break; `\r` also ends a line). */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
  /** Keep stdin open as a pipe (for commands); otherwise stdin is null. */
  stdin?: boolean;
  /** Label used in error messages; defaults to the command. */
  label?: string;
  /** Start it in a session of its own (see {@linkcode inOwnSession}). */
  ownSession?: boolean;
}

/**
 * The command line that runs `command` in a new session (`setsid`, which keeps the pid: a
 * child of ours is no process group leader, so setsid(1) does not fork). Linux's autogroup
 * scheduler gives each session its own group and shares the CPU between groups, not threads:
 * a benchmark uses it to give the client it measures the same share of the machine against
 * the seeders, however many threads either runs.
 *
 * @example Usage
 * ```ts
 * import { inOwnSession } from "./_process.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(inOwnSession("aria2c", ["-V"]), ["setsid", ["aria2c", "-V"]]);
 * ```
 *
 * @param command The program.
 * @param args Its arguments.
 * @returns The program and arguments to spawn instead.
 */
export function inOwnSession(command: string, args: string[]): [string, string[]] {
  return ["setsid", [command, ...args]];
}

/** How the process ended. */
export interface ProcessExit {
  code: number;
  signal: Deno.Signal | null;
  /** True when `stop()` asked it to end. */
  stopped: boolean;
}

const TAIL_LINES = 40;

/** Marks a promise as handled so a rejection nobody awaits does not fail the test run. */
export function markHandled(promise: Promise<unknown>): void {
  promise.then(undefined, ignoreRejection);
}

function ignoreRejection(_error: unknown): void {
  // Anyone who awaits the promise still sees the rejection; this only stops the
  // "uncaught (in promise)" error for promises such as `finished` of a seeder.
}

/** Resolves after `ms` milliseconds; the timer is cleared when `signal` aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Races `promise` against a timeout, clearing the timer either way.
 *
 * @param message The error message, or a function called when the timeout fires (so it can
 *   include output that arrived meanwhile).
 * @throws {Error} With `message` when the timeout wins
 */
export async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  message: string | (() => string),
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(typeof message === "string" ? message : message())),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A spawned child with line-based stdout, an output tail, and a leak-free `stop()`. */
export class ManagedProcess {
  readonly label: string;
  readonly pid: number;
  /** Resolves when the process has ended and both pipes are drained. */
  readonly exited: Promise<ProcessExit>;
  #child: Deno.ChildProcess;
  #tail: string[] = [];
  #done = false;
  #stopping = false;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #encoder = new TextEncoder();

  constructor(command: string, options: ManagedProcessOptions) {
    this.label = options.label ?? command;
    const [program, args] = options.ownSession
      ? inOwnSession(command, options.args)
      : [command, options.args];
    const spawnOptions: Deno.CommandOptions = {
      args,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    };
    if (options.cwd !== undefined) spawnOptions.cwd = options.cwd;
    if (options.env !== undefined) spawnOptions.env = options.env;
    const child = new Deno.Command(program, spawnOptions).spawn();
    this.#child = child;
    this.pid = child.pid;
    if (options.stdin) this.#stdin = child.stdin.getWriter();
    const onLine = options.onLine;
    const stdoutDone = this.#readLines(child.stdout, (line) => {
      this.#remember(line);
      onLine?.(line, "stdout");
    });
    const stderrDone = this.#readLines(child.stderr, (line) => {
      this.#remember(line);
      onLine?.(line, "stderr");
    });
    this.exited = (async () => {
      const status = await child.status;
      await Promise.all([stdoutDone, stderrDone]);
      this.#done = true;
      if (this.#stdin) await this.#closeStdin();
      return { code: status.code, signal: status.signal, stopped: this.#stopping };
    })();
  }

  /** True once the process has ended. */
  get done(): boolean {
    return this.#done;
  }

  /** The last lines of stdout and stderr, for error messages. */
  get tail(): string {
    return this.#tail.join("\n");
  }

  /** Writes one line to stdin (requires `stdin: true`). */
  async writeLine(line: string): Promise<void> {
    if (!this.#stdin) throw new TypeError(`Cannot write to ${this.label}: stdin is not piped`);
    await this.#stdin.write(this.#encoder.encode(line + "\n"));
  }

  /** Sends a signal if the process is still running. */
  signal(signal: Deno.Signal): void {
    if (this.#done) return;
    try {
      this.#child.kill(signal);
    } catch (error) {
      // Deno throws TypeError when it has already reaped the child (it ended between the
      // `#done` check and the kill); anything else is real.
      if (!(error instanceof TypeError)) throw error;
    }
  }

  /**
   * Ends the process: closes stdin (a graceful quit for scripts that watch it), then SIGTERM
   * after `graceMs`, then SIGKILL after another `graceMs`. Resolves once it has exited.
   */
  async stop(options: { graceMs?: number; signal?: Deno.Signal } = {}): Promise<ProcessExit> {
    const graceMs = options.graceMs ?? 2000;
    this.#stopping = true;
    const hadStdin = this.#stdin !== undefined;
    if (hadStdin) await this.#closeStdin();
    if (!hadStdin || options.signal) this.signal(options.signal ?? "SIGTERM");
    const controller = new AbortController();
    const escalate = (async () => {
      await delay(graceMs, controller.signal);
      this.signal("SIGTERM");
      await delay(graceMs, controller.signal);
      this.signal("SIGKILL");
    })();
    markHandled(escalate);
    try {
      return await this.exited;
    } finally {
      controller.abort();
    }
  }

  async #closeStdin(): Promise<void> {
    const writer = this.#stdin;
    if (!writer) return;
    this.#stdin = undefined;
    try {
      await writer.close();
    } catch (error) {
      // EPIPE when the child has already gone: the pipe is closed either way.
      if (!(error instanceof Deno.errors.BrokenPipe) && !(error instanceof TypeError)) throw error;
    }
  }

  #remember(line: string): void {
    this.#tail.push(line);
    if (this.#tail.length > TAIL_LINES) this.#tail.shift();
  }

  async #readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
    let pending = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      pending += text;
      const parts = pending.split(/\r\n|\r|\n/);
      pending = parts.pop() ?? "";
      for (const line of parts) if (line !== "") onLine(line);
    }
    if (pending !== "") onLine(pending);
  }
}
