/**
 * Turning untrusted metainfo path components into safe on-disk paths.
 *
 * @module
 */

import * as nodePath from "node:path";

const MAX_COMPONENT_BYTES = 255;
const RESERVED = /^(con|prn|aux|nul|com[1-9]|lpt[1-9])$/i;
// Path separators, NUL, C0/C1 control characters and characters Windows forbids in names.
// deno-lint-ignore no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f/\\<>:"|?*]/g;

const encoder = new TextEncoder();

/**
 * Sanitises one path component: never empty, `.` or `..`, no separators, NUL or control
 * characters, no trailing dots or spaces, no Windows reserved device names, and at most
 * 255 bytes of UTF-8 (keeping the extension where possible).
 *
 * @param component The raw component from the metainfo.
 * @returns A safe component.
 */
function safeComponent(component: string): string {
  // Lone surrogates cannot be written as UTF-8: replace them too.
  let name = component.toWellFormed().replace(UNSAFE, "_");
  name = name.replace(/[. ]+$/, "");
  if (name === "") name = "_";
  const stem = name.split(".", 1)[0]!;
  if (RESERVED.test(stem.trimEnd())) name = stem + "_" + name.slice(stem.length);
  return truncateUtf8(name, MAX_COMPONENT_BYTES);
}

/** Truncates to `max` UTF-8 bytes on a code point boundary, keeping a short extension. */
function truncateUtf8(name: string, max: number): string {
  if (encoder.encode(name).length <= max) return name;
  const dot = name.lastIndexOf(".");
  let extension = dot > 0 ? name.slice(dot) : "";
  if (encoder.encode(extension).length > 32) extension = "";
  const stem = extension ? name.slice(0, dot) : name;
  const budget = max - encoder.encode(extension).length;
  let out = "";
  let used = 0;
  for (const ch of stem) {
    const size = encoder.encode(ch).length;
    if (used + size > budget) break;
    out += ch;
    used += size;
  }
  out = out.replace(/[. ]+$/, "");
  if (out === "") out = "_";
  return out + extension;
}

/**
 * Sanitises metainfo path components (BEP 3 `path` list) for writing to disk. Each
 * component loses separators, NUL and control characters (replaced with `_`) and trailing
 * dots and spaces; `""`, `.` and `..` become `_`; Windows reserved names (`CON`, `aux.txt`)
 * get a `_` suffix on the stem; components longer than 255 UTF-8 bytes are truncated,
 * keeping the extension.
 *
 * @example Usage
 * ```ts
 * import { safePathComponents } from "./path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(safePathComponents(["..", "etc/passwd", "CON", "aux.txt"]), [
 *   "_",
 *   "etc_passwd",
 *   "CON_",
 *   "aux_.txt",
 * ]);
 * ```
 *
 * @param components Raw path components.
 * @returns Safe components, one per input.
 * @throws {TypeError} If `components` is empty or holds a non-string.
 */
export function safePathComponents(components: readonly string[]): string[] {
  if (components.length === 0) {
    throw new TypeError("Cannot sanitise path: no components");
  }
  return components.map((c, i) => {
    if (typeof c !== "string") {
      throw new TypeError(`Cannot sanitise path: component ${i} is not a string`);
    }
    return safeComponent(c);
  });
}

/**
 * Joins sanitised components under `root` and checks the result stays inside it.
 *
 * @example Usage
 * ```ts
 * import { resolveInside } from "./path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(resolveInside("/data", ["..", "x"]), "/data/_/x");
 * assert.equal(resolveInside("/data", ["..foo"]), "/data/..foo");
 * ```
 *
 * @param root Output directory.
 * @param components Raw path components (sanitised here).
 * @returns An absolute path strictly inside `root`.
 * @throws {RangeError} If the path would escape `root`.
 */
export function resolveInside(root: string, components: readonly string[]): string {
  const base = nodePath.resolve(root);
  const full = nodePath.resolve(base, ...safePathComponents(components));
  const relative = nodePath.relative(base, full);
  // A name like "..foo" is inside the root: only a whole ".." component climbs out.
  if (
    relative === "" || relative === ".." || relative.startsWith(`..${nodePath.sep}`) ||
    nodePath.isAbsolute(relative)
  ) {
    throw new RangeError(`Cannot resolve path: "${full}" escapes "${base}"`);
  }
  return full;
}
