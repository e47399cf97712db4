import assert from "node:assert/strict";
import { PeerProtocolError } from "./errors.ts";
import {
  decodeExtensionHandshake,
  encodeExtensionHandshake,
  EXTENSION_HANDSHAKE_ID,
  ExtensionRegistry,
} from "./extension.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("encodeExtensionHandshake() writes sorted bencode", () => {
  const payload = encodeExtensionHandshake({
    m: { ut_pex: 2, ut_metadata: 1 },
    v: "dt 0.1",
    p: 6881,
    reqq: 250,
    metadataSize: 31235,
    yourIp: new Uint8Array([127, 0, 0, 1]),
  });
  assert.equal(
    text(payload),
    "d" +
      "1:md11:ut_metadatai1e6:ut_pexi2ee" + // m: name -> our id, keys sorted
      "13:metadata_sizei31235e" + // metadata_size (BEP 9)
      "1:pi6881e" + // p: our listen port
      "4:reqqi250e" + // reqq: request queue depth
      "1:v6:dt 0.1" + // v: client name
      "6:yourip4:\x7f\x00\x00\x01" + // yourip: 127.0.0.1 as 4 bytes
      "e",
  );
});

Deno.test("encodeExtensionHandshake() checks its fields", async (t) => {
  await t.step("id out of range", () => {
    assert.throws(() => encodeExtensionHandshake({ m: { ut_pex: 256 } }), RangeError);
    assert.throws(() => encodeExtensionHandshake({ m: { ut_pex: -1 } }), RangeError);
    assert.throws(() => encodeExtensionHandshake({ m: { ut_pex: 1.5 } }), RangeError);
  });
  await t.step("empty name", () => {
    assert.throws(() => encodeExtensionHandshake({ m: { "": 1 } }), TypeError);
  });
  await t.step("port out of range", () => {
    assert.throws(() => encodeExtensionHandshake({ m: {}, p: 65536 }), RangeError);
  });
  await t.step("negative metadata size", () => {
    assert.throws(() => encodeExtensionHandshake({ m: {}, metadataSize: -1 }), RangeError);
  });
  await t.step("address lengths", () => {
    assert.throws(() => encodeExtensionHandshake({ m: {}, yourIp: new Uint8Array(5) }), TypeError);
    assert.throws(() => encodeExtensionHandshake({ m: {}, ipv4: new Uint8Array(16) }), TypeError);
    assert.throws(() => encodeExtensionHandshake({ m: {}, ipv6: new Uint8Array(4) }), TypeError);
  });
});

Deno.test("decodeExtensionHandshake() reads every known field", () => {
  const payload = bytes(
    "d" +
      "4:ipv44:\x0a\x00\x00\x01" + // ipv4: 10.0.0.1
      "4:ipv616:" + "\x00".repeat(15) + "\x01" + // ipv6: ::1
      "1:md11:ut_metadatai3e6:ut_pexi0ee" + // m: ut_metadata=3, ut_pex disabled
      "13:metadata_sizei16384e" + // metadata_size
      "1:pi51413e" + // p
      "4:reqqi500e" + // reqq
      "1:v13:Transmission " + // v (with a trailing space)
      "6:yourip4:\x7f\x00\x00\x01" + // yourip: 127.0.0.1
      "e",
  );
  assert.deepEqual(decodeExtensionHandshake(payload), {
    m: { ut_metadata: 3, ut_pex: 0 },
    v: "Transmission ",
    p: 51413,
    reqq: 500,
    metadataSize: 16384,
    yourIp: new Uint8Array([127, 0, 0, 1]),
    ipv4: new Uint8Array([10, 0, 0, 1]),
    ipv6: Uint8Array.fromHex("00000000000000000000000000000001"),
  });
});

Deno.test("decodeExtensionHandshake() is lenient", async (t) => {
  await t.step("unsorted and unknown keys, trailing bytes", () => {
    const payload = bytes("d1:v1:x1:md6:ut_pexi1ee11:upload_onlyi1e1:ai1eeJUNK");
    assert.deepEqual(decodeExtensionHandshake(payload), { m: { ut_pex: 1 }, v: "x" });
  });
  await t.step("missing m", () => {
    assert.deepEqual(decodeExtensionHandshake(bytes("d1:pi1ee")), { m: {}, p: 1 });
  });
  await t.step("bad m entries are dropped", () => {
    const payload = bytes("d1:md1:ai256e1:bi-1e1:c1:x1:dli1ee1:ei7eee");
    assert.deepEqual(decodeExtensionHandshake(payload), { m: { e: 7 } });
  });
  await t.step("known fields of the wrong type are ignored", () => {
    const payload = bytes(
      "d" +
        "4:ipv41:x" + // ipv4 of 1 byte
        "4:ipv64:abcd" + // ipv6 of 4 bytes
        "1:md" + "e" + // empty m
        "13:metadata_sizei-5e" + // negative size
        "1:pi0e" + // port 0
        "4:reqq3:abc" + // reqq as a string
        "1:vi5e" + // v as an integer
        "6:yourip5:abcde" + // yourip of 5 bytes
        "e",
    );
    assert.deepEqual(decodeExtensionHandshake(payload), { m: {} });
  });
  await t.step("a big metadata_size decodes as given", () => {
    const payload = bytes("d1:mde13:metadata_sizei99999999999ee");
    assert.equal(decodeExtensionHandshake(payload).metadataSize, 99999999999);
  });
  await t.step("a __proto__ name stays data", () => {
    const m = decodeExtensionHandshake(bytes("d1:md9:__proto__i4eee")).m;
    assert.equal(Object.getOwnPropertyDescriptor(m, "__proto__")?.value, 4);
    assert.equal(Object.getPrototypeOf(m), Object.prototype);
  });
});

Deno.test("decodeExtensionHandshake() rejects garbage", async (t) => {
  for (
    const [name, input] of [
      ["empty", ""],
      ["not bencode", "hello"],
      ["a list", "li1ee"],
      ["an integer", "i3e"],
      ["truncated", "d1:md11:ut_metadatai1e"],
      ["m is a list", "d1:mli1eee"],
      ["m is a string", "d1:m3:abce"],
    ] as const
  ) {
    await t.step(name, () => {
      assert.throws(() => decodeExtensionHandshake(bytes(input)), PeerProtocolError);
    });
  }
});

Deno.test("encodeExtensionHandshake() and decodeExtensionHandshake() round-trip", () => {
  const handshake = {
    m: { ut_metadata: 1, ut_pex: 2, lt_donthave: 7 },
    v: "denotorrent 0.1.0",
    p: 6881,
    reqq: 250,
    metadataSize: 123456,
    yourIp: Uint8Array.fromHex("20010db8000000000000000000000001"),
    ipv4: new Uint8Array([192, 168, 1, 2]),
  };
  assert.deepEqual(decodeExtensionHandshake(encodeExtensionHandshake(handshake)), handshake);
});

Deno.test("ExtensionRegistry routes by our id and sends with theirs", () => {
  const registry = new ExtensionRegistry();
  assert.deepEqual(registry.localHandshake().m, { ut_metadata: 1, ut_pex: 2 });
  assert.equal(registry.localName(1), "ut_metadata");
  assert.equal(registry.localName(2), "ut_pex");
  assert.equal(registry.localName(EXTENSION_HANDSHAKE_ID), undefined);
  assert.equal(registry.localName(3), undefined);
  assert.equal(registry.localId("ut_pex"), 2);
  assert.equal(registry.remoteHandshake?.m, undefined);

  assert.equal(registry.supports("ut_metadata"), false);
  assert.throws(() => registry.extendedMessage("ut_metadata", new Uint8Array()), TypeError);

  registry.receiveHandshake({ m: { ut_metadata: 9, ut_pex: 4, unknown_ext: 5 }, reqq: 10 });
  assert.equal(registry.remoteId("ut_metadata"), 9);
  assert.equal(registry.remoteHandshake?.reqq, 10);
  assert.deepEqual(registry.extendedMessage("ut_pex", new Uint8Array([0x64, 0x65])), {
    type: "extended",
    id: 4,
    payload: new Uint8Array([0x64, 0x65]),
  });

  // A later handshake updates: 0 disables, unmentioned names stay.
  registry.receiveHandshake({ m: { ut_pex: 0, ut_metadata: 11 } });
  assert.equal(registry.supports("ut_pex"), false);
  assert.equal(registry.remoteId("ut_metadata"), 11);
  assert.equal(registry.remoteId("unknown_ext"), 5);
});

Deno.test("ExtensionRegistry checks our ids", () => {
  assert.throws(() => new ExtensionRegistry({ a: 0 }), RangeError);
  assert.throws(() => new ExtensionRegistry({ a: 256 }), RangeError);
  assert.throws(() => new ExtensionRegistry({ a: 1, b: 1 }), TypeError);
  assert.throws(() => new ExtensionRegistry({ "": 1 }), TypeError);
});
