/**
 * Runs our `seed` command as a subprocess, as a user would, and waits for its ready line.
 *
 * @module
 */

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** What a stopped `seed` printed and returned. */
export interface SeedCommandExit {
  code: number;
  stdout: string;
  stderr: string;
}

/** A running `seed` subprocess; `await using` stops it with SIGINT. */
export interface SeedCommand extends AsyncDisposable {
  /** The port it listens on (from its ready line). */
  port: number;
  /** Its ready line: `Seeding <name> on port <P> (…).` */
  readyLine: string;
  /** Sends SIGINT once and collects the exit code and output. */
  stop(): Promise<SeedCommandExit>;
}

/**
 * Starts `cli.ts seed ARGS` (the DHT off unless the args give `--dht-bootstrap`) and resolves
 * once it printed its ready line on stderr.
 *
 * @param args The arguments after `seed`.
 * @param options Working directory.
 * @returns The running command.
 * @throws {Error} When it exits before it is ready (the message holds its stderr).
 */
export async function startSeedCommand(
  args: string[],
  options: { cwd?: string } = {},
): Promise<SeedCommand> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "seed", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", DENOTORRENT_DHT_BOOTSTRAP: "" },
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).spawn();
  const stdout = new Response(child.stdout).text();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  let ready: RegExpExecArray | null = null;
  while (ready === null) {
    const { value, done } = await reader.read();
    if (done) break;
    stderr += value;
    ready = /^Seeding .* on port (\d+) \(.*\)\.$/m.exec(stderr);
  }
  const rest = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return stderr;
      stderr += value;
    }
  })();
  if (ready === null) {
    const status = await child.status;
    await stdout;
    throw new Error(`seed exited with ${status.code} before it was ready:\n${await rest}`);
  }
  let stopped: Promise<SeedCommandExit> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      child.kill("SIGINT");
      const status = await child.status;
      return { code: status.code, stdout: await stdout, stderr: await rest };
    })();
  return {
    port: Number(ready[1]),
    readyLine: ready[0],
    stop,
    [Symbol.asyncDispose]: async () => void await stop(),
  };
}
