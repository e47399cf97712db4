import assert from "node:assert/strict";
import { HandshakeError } from "./errors.ts";
import {
  decodeHandshake,
  encodeHandshake,
  generatePeerId,
  HANDSHAKE_LENGTH,
  reservedBits,
  supportsDht,
  supportsExtensionProtocol,
  supportsFastExtension,
} from "./handshake.ts";

function hex(...fields: string[]): Uint8Array {
  const text = fields.join("");
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

const INFO_HASH = hex("0123456789abcdef0123456789abcdef01234567");
const PEER_ID = new TextEncoder().encode("-DT0100-000000000001");

/** A handshake announcing the extension protocol only. */
const FIXTURE = hex(
  "13", // protocol string length 19
  "426974546f7272656e742070726f746f636f6c", // "BitTorrent protocol"
  "0000000000100000", // reserved: byte 5 = 0x10 (BEP 10)
  "0123456789abcdef0123456789abcdef01234567", // info hash
  "2d4454303130302d303030303030303030303031", // peer id "-DT0100-000000000001"
);

Deno.test("encodeHandshake() produces the BEP 3 layout with the extension bit by default", () => {
  const bytes = encodeHandshake({ infoHash: INFO_HASH, peerId: PEER_ID });
  assert.equal(bytes.length, HANDSHAKE_LENGTH);
  assert.deepEqual(bytes, FIXTURE);
});

Deno.test("encodeHandshake() writes the given reserved bytes", () => {
  const reserved = reservedBits({ fast: true, dht: true });
  const bytes = encodeHandshake({ infoHash: INFO_HASH, peerId: PEER_ID, reserved });
  assert.deepEqual(bytes.subarray(20, 28), hex("0000000000000005")); // byte 7 = 0x04 | 0x01
});

Deno.test("encodeHandshake() rejects wrong field sizes", async (t) => {
  await t.step("short info hash", () => {
    assert.throws(
      () => encodeHandshake({ infoHash: new Uint8Array(19), peerId: PEER_ID }),
      {
        name: "TypeError",
        message: "Cannot encode handshake: info hash is 19 bytes, expected 20 bytes",
      },
    );
  });
  await t.step("long peer id", () => {
    assert.throws(
      () => encodeHandshake({ infoHash: INFO_HASH, peerId: new Uint8Array(21) }),
      TypeError,
    );
  });
  await t.step("short reserved", () => {
    assert.throws(
      () => encodeHandshake({ infoHash: INFO_HASH, peerId: PEER_ID, reserved: new Uint8Array(7) }),
      TypeError,
    );
  });
});

Deno.test("decodeHandshake() decodes the fixture", () => {
  const handshake = decodeHandshake(FIXTURE);
  assert.deepEqual(handshake.reserved, hex("0000000000100000"));
  assert.deepEqual(handshake.infoHash, INFO_HASH);
  assert.deepEqual(handshake.peerId, PEER_ID);
  assert.equal(supportsExtensionProtocol(handshake.reserved), true);
  assert.equal(supportsFastExtension(handshake.reserved), false);
  assert.equal(supportsDht(handshake.reserved), false);
});

Deno.test("decodeHandshake() returns copies, so the input buffer can be reused", () => {
  const input = FIXTURE.slice();
  const handshake = decodeHandshake(input);
  input.fill(0);
  assert.deepEqual(handshake.infoHash, INFO_HASH);
  assert.deepEqual(handshake.peerId, PEER_ID);
});

Deno.test("decodeHandshake() round-trips encodeHandshake()", () => {
  const reserved = hex("ffffffffffffffff");
  const peerId = generatePeerId();
  const handshake = decodeHandshake(encodeHandshake({ infoHash: INFO_HASH, peerId, reserved }));
  assert.deepEqual(handshake, { reserved, infoHash: INFO_HASH, peerId });
});

Deno.test("decodeHandshake() rejects malformed handshakes", async (t) => {
  await t.step("wrong protocol string length byte", () => {
    const bytes = FIXTURE.slice();
    bytes[0] = 18;
    assert.throws(() => decodeHandshake(bytes), HandshakeError);
  });
  await t.step("wrong protocol string", () => {
    const bytes = FIXTURE.slice();
    bytes[1] = 0x62; // "bitTorrent protocol"
    assert.throws(() => decodeHandshake(bytes), {
      name: "HandshakeError",
      message:
        'Cannot decode handshake: protocol string is "bitTorrent protocol", expected "BitTorrent protocol"',
    });
  });
  await t.step("an HTTP request instead", () => {
    const bytes = new Uint8Array(68);
    bytes.set(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n"));
    assert.throws(() => decodeHandshake(bytes), HandshakeError);
  });
  await t.step("too short", () => {
    assert.throws(() => decodeHandshake(FIXTURE.subarray(0, 67)), {
      name: "HandshakeError",
      message: "Cannot decode handshake: length is 67 bytes, expected 68",
    });
  });
  await t.step("too long", () => {
    const bytes = new Uint8Array(69);
    bytes.set(FIXTURE);
    assert.throws(() => decodeHandshake(bytes), HandshakeError);
  });
});

Deno.test("reservedBits() sets the BEP 10, BEP 6 and BEP 5 bits", async (t) => {
  await t.step("none", () => assert.deepEqual(reservedBits(), hex("0000000000000000")));
  await t.step("extension protocol", () => {
    assert.deepEqual(reservedBits({ extensionProtocol: true }), hex("0000000000100000"));
  });
  await t.step(
    "fast",
    () => assert.deepEqual(reservedBits({ fast: true }), hex("0000000000000004")),
  );
  await t.step("dht", () => assert.deepEqual(reservedBits({ dht: true }), hex("0000000000000001")));
  await t.step("detection ignores other bits", () => {
    const other = hex("ffffffffffef00fa"); // every bit except the three
    assert.equal(supportsExtensionProtocol(other), false);
    assert.equal(supportsFastExtension(other), false);
    assert.equal(supportsDht(other), false);
  });
});

Deno.test("generatePeerId() makes 20 bytes: the prefix then random alphanumerics", () => {
  const first = generatePeerId();
  const second = generatePeerId();
  assert.equal(first.length, 20);
  assert.match(new TextDecoder().decode(first), /^-DT0100-[0-9A-Za-z]{12}$/);
  assert.notDeepEqual(first, second);
  assert.match(new TextDecoder().decode(generatePeerId("-XX1234-")), /^-XX1234-[0-9A-Za-z]{12}$/);
  assert.match(new TextDecoder().decode(generatePeerId("")), /^[0-9A-Za-z]{20}$/);
});

Deno.test("generatePeerId() rejects bad prefixes", () => {
  assert.throws(() => generatePeerId("x".repeat(21)), RangeError);
  assert.throws(() => generatePeerId("-DT\u00e90100-"), TypeError);
});
