import assert from "node:assert/strict";
import { assertOneLineError, runCli } from "./_helpers/run_cli.ts";

Deno.test("cli decode prints compact JSON", async (t) => {
  const cases: [string, string][] = [
    ["5:hello", '"hello"'],
    ["i4294967300e", "4294967300"],
    ["i-52e", "-52"],
    ["l5:helloi52ee", '["hello",52]'],
    ["d3:foo3:bar5:helloi52ee", '{"foo":"bar","hello":52}'],
    ["lli4eei5ee", "[[4],5]"],
    ["i123456789012345678901234567890e", "123456789012345678901234567890"],
  ];
  for (const [input, expected] of cases) {
    await t.step(input, async () => {
      const result = await runCli(["decode", input]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, expected + "\n");
    });
  }
});

Deno.test("cli decode rejects malformed bencode with one line and exit 1", async () => {
  assertOneLineError(await runCli(["decode", "i03e"]), 1, /leading zero at offset 0/);
});

Deno.test("cli usage errors exit 2 with a usage line", async (t) => {
  await t.step("unknown command", async () => {
    const result = await runCli(["frobnicate"]);
    assertOneLineError(result, 2, /unknown command "frobnicate"/);
    assert.match(result.stderr, /^Usage: /m);
  });
  await t.step("missing argument", async () => {
    assertOneLineError(await runCli(["decode"]), 2, /expected 1 argument, got 0/);
  });
  await t.step("unknown option", async () => {
    assertOneLineError(await runCli(["info", "--bogus", "x"]), 2, /bogus/);
  });
});

Deno.test("cli --help and --version go to stdout with exit 0", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  for (const command of ["decode", "info", "peers", "handshake", "download_piece"]) {
    assert.match(help.stdout, new RegExp(`\\b${command}\\b`));
  }
  const commandHelp = await runCli(["download_piece", "--help"]);
  assert.equal(commandHelp.code, 0);
  assert.match(commandHelp.stdout, /Usage: denotorrent download_piece -o <out>/);
  const version = await runCli(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^denotorrent \d+\.\d+\.\d+\n$/);
});
