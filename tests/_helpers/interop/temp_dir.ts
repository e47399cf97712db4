/**
 * Temporary directories that remove themselves with `await using`.
 *
 * @module
 */

/** A temporary directory; disposing removes it recursively. */
export interface TempDir extends AsyncDisposable {
  /** Absolute path. */
  readonly path: string;
  /** Joins `parts` under the directory. */
  join(...parts: string[]): string;
}

/**
 * Creates a temporary directory (mode 0755, so tools that drop privileges can read it).
 *
 * @param options `prefix` for the directory name.
 * @returns The directory handle.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { tempDir } from "./temp_dir.ts";
 * let path: string;
 * {
 *   await using dir = await tempDir({ prefix: "doc_" });
 *   path = dir.path;
 *   assert.ok(Deno.statSync(path).isDirectory);
 * }
 * assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
 * ```
 */
export async function tempDir(options: { prefix?: string } = {}): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix: options.prefix ?? "interop_" });
  await Deno.chmod(path, 0o755);
  return {
    path,
    join: (...parts: string[]) => [path, ...parts].join("/"),
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}
