import assert from "node:assert/strict";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** What a CLI run printed and returned. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as a subprocess, as a user would, and collects its output. */
export async function runCli(
  args: string[],
  options: { cwd?: string; signal?: AbortSignal; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // No test reaches the public DHT routers: the DHT is off unless a test passes
    // --dht-bootstrap with loopback nodes.
    env: { NO_COLOR: "1", DENOTORRENT_DHT_BOOTSTRAP: "", ...options.env },
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Asserts a run failed with `code` and exactly one `error:` line matching `pattern`, no stack. */
export function assertOneLineError(result: CliResult, code: number, pattern: RegExp): void {
  assert.equal(result.code, code, result.stderr);
  const errorLines = result.stderr.trimEnd().split("\n").filter((line) =>
    line.startsWith("error: ")
  );
  assert.equal(errorLines.length, 1, result.stderr);
  assert.match(errorLines[0]!, pattern);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
}
