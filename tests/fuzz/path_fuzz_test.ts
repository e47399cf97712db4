// Property-based fuzz tests for lib/storage/path.ts: no component list from a hostile torrent
// resolves outside the download root, on POSIX or (for the sanitised names) on Windows.

import assert from "node:assert/strict";
import * as nodePath from "node:path";
import fc from "fast-check";
import { resolveInside, safePathComponents } from "../../lib/storage/path.ts";
import { assertProperty, expectOnly, thrownBy } from "./_config.ts";
import { TRICKY_STRINGS } from "./_arbitraries.ts";

const utf8 = new TextEncoder();

/** Components an attacker would try, plus random and very long text. */
const componentArb = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      ...TRICKY_STRINGS,
      "..",
      ".",
      "...",
      "/",
      "\\",
      "C:",
      "C:\\",
      "\\\\server\\share",
      "../..",
      "..\\..",
      "/etc/passwd",
      "..%2f",
      "\0",
      "a\0b",
      "\x01\x1f\x7f\x9f",
      "CON",
      "aux.txt",
      "nul ",
      "com1.tar.gz",
      ". ",
      " ..",
      "..foo",
      "~",
      "$HOME",
    ),
  },
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 12 }) },
  // Lone surrogates and control characters.
  {
    weight: 1,
    arbitrary: fc.string({
      unit: fc.constantFrom("\uD800", "\uDFFF", "\x00", "\x85", ".", "/", "\\"),
      maxLength: 8,
    }),
  },
  // Long names: ASCII, multi-byte and astral, with and without an extension.
  {
    weight: 1,
    arbitrary: fc.tuple(
      fc.constantFrom("a", "é", "😀", "中", ".", " "),
      fc.integer({ min: 100, max: 400 }),
      fc.constantFrom("", ".txt", ".tar.gz", "." + "x".repeat(40), "/.."),
    ).map(([unit, count, extension]) => unit.repeat(count) + extension),
  },
);

const componentsArb = fc.array(componentArb, { minLength: 1, maxLength: 6 });

const ROOTS = ["/data", "/tmp/dl dir", "/", "relative/dir", ".", "/srv/a/../b"];

/** True if `full` lies strictly inside `root` (resolved), by node:path's own rules. */
function isInside(root: string, full: string, path = nodePath): boolean {
  const relative = path.relative(path.resolve(root), full);
  return relative !== "" && relative !== ".." && !relative.startsWith(".." + path.sep) &&
    !path.isAbsolute(relative);
}

Deno.test("fuzz: resolveInside() never resolves outside the root", async (t) => {
  await assertProperty(
    t,
    fc.property(fc.constantFrom(...ROOTS), componentsArb, (root, components) => {
      let full: string | undefined;
      const error = thrownBy(() => {
        full = resolveInside(root, components);
      });
      expectOnly(error, [RangeError]);
      if (full !== undefined) {
        assert.ok(isInside(root, full), `${JSON.stringify(full)} is outside ${root}`);
        assert.equal(full, nodePath.resolve(root, ...safePathComponents(components)));
      }
    }),
    { runs: 20000 },
  );
});

Deno.test("fuzz: resolveInside() accepts every non-empty component list", async (t) => {
  await assertProperty(
    t,
    fc.property(fc.constantFrom(...ROOTS), componentsArb, (root, components) => {
      expectOnly(thrownBy(() => resolveInside(root, components)), []);
    }),
    { runs: 12000 },
  );
});

Deno.test("fuzz: safePathComponents() returns one safe name per component", async (t) => {
  await assertProperty(
    t,
    fc.property(componentsArb, (components) => {
      const safe = safePathComponents(components);
      assert.equal(safe.length, components.length);
      for (const name of safe) {
        assert.ok(name !== "" && name !== "." && name !== "..", JSON.stringify(name));
        // deno-lint-ignore no-control-regex
        assert.doesNotMatch(name, /[\u0000-\u001f\u007f-\u009f/\\<>:"|?*]/);
        assert.doesNotMatch(name, /[. ]$/, "trailing dot or space");
        assert.ok(name.isWellFormed(), "lone surrogate");
        assert.ok(utf8.encode(name).length <= 255, `${utf8.encode(name).length} bytes`);
        assert.doesNotMatch(name, /^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$/i);
      }
      // Sanitising is idempotent: safe names stay as they are.
      assert.deepEqual(safePathComponents(safe), safe);
    }),
    { runs: 12000 },
  );
});

Deno.test("fuzz: safePathComponents() output stays inside a Windows root too", async (t) => {
  await assertProperty(
    t,
    fc.property(componentsArb, (components) => {
      const safe = safePathComponents(components);
      const root = "C:\\downloads";
      const full = nodePath.win32.resolve(root, ...safe);
      assert.ok(isInside(root, full, nodePath.win32), `${full} escapes ${root}`);
      assert.ok(isInside("/data", nodePath.posix.resolve("/data", ...safe), nodePath.posix));
    }),
    { runs: 12000 },
  );
});
