import assert from "node:assert/strict";
import { resolveInside, safePathComponents } from "./path.ts";

const encoder = new TextEncoder();

Deno.test("safePathComponents() neutralises hostile components", async (t) => {
  const cases: [string, string][] = [
    ["..", "_"],
    [".", "_"],
    ["", "_"],
    ["/etc/passwd", "_etc_passwd"],
    ["C:\\x", "C__x"],
    ["a\u0000b", "a_b"],
    ["tab\there\n", "tab_here_"],
    ["CON", "CON_"],
    ["con", "con_"],
    ["aux.txt", "aux_.txt"],
    ["LPT9.tar.gz", "LPT9_.tar.gz"],
    ["COM0", "COM0"],
    ["console", "console"],
    ["name. . ", "name"],
    ["...", "_"],
    [".hidden", ".hidden"],
    ["ok file.txt", "ok file.txt"],
    ["\ud800lone", "\ufffdlone"],
  ];
  for (const [input, expected] of cases) {
    await t.step(JSON.stringify(input), () => {
      assert.deepEqual(safePathComponents([input]), [expected]);
    });
  }
});

Deno.test("safePathComponents() truncates to 255 UTF-8 bytes keeping the extension", () => {
  const [long] = safePathComponents(["x".repeat(300) + ".mkv"]);
  assert.equal(encoder.encode(long).length, 255);
  assert.ok(long!.endsWith(".mkv"));
  // Multi-byte characters are never split.
  const [wide] = safePathComponents(["é".repeat(200) + ".txt"]);
  assert.ok(encoder.encode(wide).length <= 255);
  assert.ok(wide!.endsWith("é.txt"));
  assert.ok(!wide!.includes("\ufffd"));
  const [emoji] = safePathComponents(["😀".repeat(100)]);
  assert.equal(encoder.encode(emoji).length, 252);
  // A huge "extension" is not preserved at the cost of the whole name.
  const [noExt] = safePathComponents(["a." + "b".repeat(300)]);
  assert.equal(encoder.encode(noExt).length, 255);
  assert.ok(noExt!.startsWith("a."));
});

Deno.test("safePathComponents() rejects bad input", () => {
  assert.throws(() => safePathComponents([]), TypeError);
  assert.throws(() => safePathComponents([1 as unknown as string]), TypeError);
});

Deno.test("resolveInside() keeps every path under the root", () => {
  const root = "/tmp/root";
  assert.equal(resolveInside(root, ["a", "b.txt"]), "/tmp/root/a/b.txt");
  assert.equal(resolveInside(root, ["..", "..", "etc", "passwd"]), "/tmp/root/_/_/etc/passwd");
  assert.equal(resolveInside(root, ["/etc/passwd"]), "/tmp/root/_etc_passwd");
  assert.equal(resolveInside("/tmp/root/", ["x"]), "/tmp/root/x");
  assert.equal(resolveInside("relative", ["x"]), `${Deno.cwd()}/relative/x`);
});
