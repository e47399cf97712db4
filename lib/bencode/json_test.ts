import assert from "node:assert/strict";
import { decode } from "./decode.ts";
import { toJson } from "./json.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("toJson() prints the build-your-own-BitTorrent forms", () => {
  assert.equal(toJson(decode(text("5:hello"))), '"hello"');
  assert.equal(toJson(decode(text("i4294967300e"))), "4294967300");
  assert.equal(toJson(decode(text("i-52e"))), "-52");
  assert.equal(toJson(decode(text("l5:helloi52ee"))), '["hello",52]');
  assert.equal(toJson(decode(text("d3:foo3:bar5:helloi52ee"))), '{"foo":"bar","hello":52}');
  assert.equal(toJson(decode(text("lli4eei5ee"))), "[[4],5]");
});

Deno.test("toJson() renders raw bytes and $-keys losslessly", () => {
  assert.equal(toJson(decode(new Uint8Array([0x32, 0x3a, 0xff, 0xfe]))), '{"$hex":"fffe"}');
  assert.equal(toJson(decode(text("d4:$hexi1ee"))), '{"$$hex":1}');
  assert.equal(toJson(decode(text("i99999999999999999999e"))), "99999999999999999999");
  assert.equal(toJson(decode(text('3:a"\n'))), '"a\\"\\n"');
});
