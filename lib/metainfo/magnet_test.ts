import assert from "node:assert/strict";
import { formatMagnet, MagnetError, type MagnetLink, parseMagnet } from "./magnet.ts";

const HEX = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
// The same 20 bytes in RFC 4648 base32 (python3: base64.b32encode(bytes.fromhex(HEX))).
const BASE32 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK";

Deno.test("parseMagnet() reads hex and base32 info hashes in any case", async (t) => {
  for (const hash of [HEX, HEX.toUpperCase(), BASE32, BASE32.toLowerCase()]) {
    await t.step(hash, () => {
      assert.equal(parseMagnet(`magnet:?xt=urn:btih:${hash}`).infoHash.toHex(), HEX);
    });
  }
  await t.step("MAGNET: scheme and URN prefix in upper case", () => {
    assert.equal(parseMagnet(`MAGNET:?xt=URN:BTIH:${HEX}`).infoHash.toHex(), HEX);
  });
});

Deno.test("parseMagnet() reads all the known parameters", () => {
  const link = parseMagnet(
    "magnet:?xt=urn:btih:" + HEX +
      "&dn=Caf%C3%A9+%26+more" +
      "&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce" +
      "&tr.1=udp://127.0.0.1:6969" +
      "&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce" + // duplicate, dropped
      "&x.pe=127.0.0.1:6881&x.pe=%5B%3A%3A1%5D%3A6882" +
      "&xl=123456789" +
      "&ws=http%3A%2F%2F127.0.0.1%3A8080%2Ffile" +
      "&as=ignored&kt=ignored&foo&",
  );
  assert.deepEqual(
    link,
    {
      infoHash: Uint8Array.fromHex(HEX),
      displayName: "Café & more",
      trackers: ["http://127.0.0.1:6969/announce", "udp://127.0.0.1:6969"],
      peers: [{ host: "127.0.0.1", port: 6881 }, { host: "::1", port: 6882 }],
      exactLength: 123456789,
      webSeeds: ["http://127.0.0.1:8080/file"],
    } satisfies MagnetLink,
  );
});

Deno.test("parseMagnet() uses the first v1 hash among several xt", () => {
  const other = "ab".repeat(20);
  const link = parseMagnet(
    `magnet:?xt=urn:btmh:1220${"cd".repeat(32)}&xt.1=urn:btih:${HEX}&xt.2=urn:btih:${other}`,
  );
  assert.equal(link.infoHash.toHex(), HEX);
  assert.deepEqual(link.trackers, []);
  assert.equal("displayName" in link, false);
  assert.equal("exactLength" in link, false);
});

Deno.test("parseMagnet() rejects bad links with MagnetError", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["not a magnet URI", "http://127.0.0.1/x.torrent", /expected "magnet:\?", got "http:/],
    ["no query", "magnet:", /expected "magnet:\?"/],
    ["missing xt", "magnet:?dn=x&tr=udp://127.0.0.1:1", /missing xt/],
    ["xt of another kind", "magnet:?xt=urn:sha1:ABC", /no xt=urn:btih: info hash/],
    ["v2 only", `magnet:?xt=urn:btmh:1220${"cd".repeat(32)}`, /v2-only magnet links are not/],
    ["hash too short", `magnet:?xt=urn:btih:${HEX.slice(1)}`, /40 hex or 32 base32.*got 39/],
    ["hash too long", `magnet:?xt=urn:btih:${HEX}0`, /got 41/],
    ["empty hash", "magnet:?xt=urn:btih:", /got 0/],
    ["hex with a bad character", `magnet:?xt=urn:btih:${HEX.slice(1)}g`, /not hex/],
    ["base32 with a bad character", `magnet:?xt=urn:btih:${BASE32.slice(1)}1`, /not base32/],
    ["bad percent-encoding", `magnet:?xt=urn:btih:${HEX}&dn=%E9%ZZ`, /bad percent-encoding in dn/],
    ["bad xl", `magnet:?xt=urn:btih:${HEX}&xl=-5`, /xl must be a non-negative integer, got "-5"/],
    ["huge xl", `magnet:?xt=urn:btih:${HEX}&xl=99999999999999999`, /xl must be/],
    ["bad x.pe", `magnet:?xt=urn:btih:${HEX}&x.pe=nowhere`, /x.pe must be host:port/],
  ];
  for (const [name, uri, message] of cases) {
    await t.step(name, () => {
      assert.throws(
        () => parseMagnet(uri),
        (e: unknown) =>
          e instanceof MagnetError && e instanceof SyntaxError && e.name === "MagnetError" &&
          e.message.startsWith("Invalid magnet link: ") && message.test(e.message),
      );
    });
  }
  await t.step("longer than 64 KiB", () => {
    const uri = `magnet:?xt=urn:btih:${HEX}&dn=${"a".repeat(64 * 1024)}`;
    assert.throws(() => parseMagnet(uri), /longer than 65536 characters/);
  });
  await t.step("not a string", () => {
    assert.throws(() => parseMagnet(42 as unknown as string), TypeError);
  });
});

Deno.test("formatMagnet() output parses back to the same link", async (t) => {
  const full: MagnetLink = {
    infoHash: Uint8Array.fromHex(HEX),
    displayName: "a b&c=d/é",
    trackers: ["http://127.0.0.1:6969/announce?x=1&y=2", "udp://127.0.0.1:6969"],
    peers: [{ host: "127.0.0.1", port: 1 }, { host: "::1", port: 65535 }],
    exactLength: 0,
    webSeeds: ["http://127.0.0.1/a b"],
  };
  await t.step("every field", () => {
    assert.deepEqual(parseMagnet(formatMagnet(full)), full);
  });
  await t.step("minimal, exact text", () => {
    const minimal = { infoHash: full.infoHash, trackers: [], peers: [], webSeeds: [] };
    assert.equal(formatMagnet(minimal), `magnet:?xt=urn:btih:${HEX}`);
    assert.deepEqual(parseMagnet(formatMagnet(minimal)), minimal);
  });
  await t.step("dn and tr order and encoding", () => {
    assert.equal(
      formatMagnet({ ...full, peers: [], webSeeds: [], exactLength: undefined as never }).split(
        "&",
      ).slice(1, 3).join("&"),
      "dn=a%20b%26c%3Dd%2F%C3%A9&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce%3Fx%3D1%26y%3D2",
    );
  });
  await t.step("bad info hash", () => {
    assert.throws(
      () => formatMagnet({ ...full, infoHash: new Uint8Array(19) }),
      TypeError,
    );
  });
});
