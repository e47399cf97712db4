import assert from "node:assert/strict";
import {
  decodeKrpc,
  encodeKrpc,
  KRPC_ERROR_CODES,
  KrpcDecodeError,
  type KrpcMessage,
} from "./krpc.ts";

const latin1 = new TextDecoder("latin1");

/** Concatenates latin1 text and raw byte arrays into one packet. */
function bytes(...parts: (string | number[] | Uint8Array)[]): Uint8Array {
  const chunks = parts.map((part) =>
    typeof part === "string" ? Uint8Array.from(part, (c) => c.charCodeAt(0)) : Uint8Array.from(part)
  );
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

const text = (s: string) => bytes(s);
const AA = text("aa");
const ID_A = text("abcdefghij0123456789");
const ID_M = text("mnopqrstuvwxyz123456");
const ID_0 = text("0123456789abcdefghij");

/** Runs `fn` and returns what it throws; fails when it does not throw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail("Expected an error");
}

/** Checks that `packet` decodes to `message` and that `message` encodes back to `packet`. */
function roundTrip(packet: Uint8Array, message: KrpcMessage): void {
  assert.deepEqual(decodeKrpc(packet), message);
  assert.equal(latin1.decode(encodeKrpc(message)), latin1.decode(packet));
}

Deno.test("decodeKrpc() and encodeKrpc() handle the BEP 5 examples", async (t) => {
  await t.step("ping query", () => {
    roundTrip(
      // a: { id }, q: "ping", t: "aa", y: "q"
      text("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"),
      { type: "query", method: "ping", transactionId: AA, id: ID_A },
    );
  });
  await t.step("ping response", () => {
    roundTrip(
      // r: { id }, t: "aa", y: "r"
      text("d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re"),
      { type: "response", transactionId: AA, id: ID_M },
    );
  });
  await t.step("error", () => {
    roundTrip(
      // e: [201, "A Generic Error Ocurred"], t: "aa", y: "e"
      text("d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"),
      { type: "error", transactionId: AA, code: 201, message: "A Generic Error Ocurred" },
    );
  });
  await t.step("find_node query", () => {
    roundTrip(
      // a: { id, target }, q: "find_node"
      text(
        "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
      ),
      { type: "query", method: "find_node", transactionId: AA, id: ID_A, target: ID_M },
    );
  });
  await t.step("find_node response with one compact node", () => {
    roundTrip(
      bytes(
        "d1:rd2:id20:0123456789abcdefghij",
        "5:nodes26:",
        "mnopqrstuvwxyz123456", // node id
        [192, 168, 1, 7], // IPv4 192.168.1.7
        [0x1a, 0xe1], // port 6881
        "e1:t2:aa1:y1:re",
      ),
      {
        type: "response",
        transactionId: AA,
        id: ID_0,
        nodes: [{ id: ID_M, host: "192.168.1.7", port: 6881 }],
      },
    );
  });
  await t.step("get_peers query", () => {
    roundTrip(
      // a: { id, info_hash }, q: "get_peers"
      text(
        "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
      ),
      { type: "query", method: "get_peers", transactionId: AA, id: ID_A, infoHash: ID_M },
    );
  });
  await t.step("get_peers response with values", () => {
    roundTrip(
      // r: { id, token: "aoeusnth", values: ["axje.u", "idhtnm"] } (6-byte compact peers)
      text(
        "d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
      ),
      {
        type: "response",
        transactionId: AA,
        id: ID_A,
        token: text("aoeusnth"),
        values: [{ host: "97.120.106.101", port: 11893 }, { host: "105.100.104.116", port: 28269 }],
      },
    );
  });
  await t.step("get_peers response with closest nodes", () => {
    roundTrip(
      bytes(
        "d1:rd2:id20:abcdefghij0123456789",
        "5:nodes52:",
        "mnopqrstuvwxyz123456", // node 1 id
        [10, 0, 0, 1, 0x00, 0x50], // 10.0.0.1:80
        "0123456789abcdefghij", // node 2 id
        [127, 0, 0, 1, 0xff, 0xff], // 127.0.0.1:65535
        "5:token8:aoeusnth",
        "e1:t2:aa1:y1:re",
      ),
      {
        type: "response",
        transactionId: AA,
        id: ID_A,
        nodes: [
          { id: ID_M, host: "10.0.0.1", port: 80 },
          { id: ID_0, host: "127.0.0.1", port: 65535 },
        ],
        token: text("aoeusnth"),
      },
    );
  });
  await t.step("announce_peer query with implied_port", () => {
    roundTrip(
      // a: { id, implied_port: 1, info_hash, port: 6881, token }, q: "announce_peer"
      text(
        "d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
      ),
      {
        type: "query",
        method: "announce_peer",
        transactionId: AA,
        id: ID_A,
        infoHash: ID_M,
        port: 6881,
        token: text("aoeusnth"),
        impliedPort: true,
      },
    );
  });
  await t.step("announce_peer query without implied_port", () => {
    roundTrip(
      text(
        "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
      ),
      {
        type: "query",
        method: "announce_peer",
        transactionId: AA,
        id: ID_A,
        infoHash: ID_M,
        port: 6881,
        token: text("aoeusnth"),
        impliedPort: false,
      },
    );
  });
});

Deno.test("decodeKrpc() reads IPv6 nodes6, values and ip, and the version and ro keys", () => {
  const packet = bytes(
    "d2:ip6:",
    [10, 0, 0, 9, 0x1a, 0xe1], // ip: 10.0.0.9:6881 (BEP 42)
    "1:rd2:id20:abcdefghij0123456789",
    "6:nodes638:",
    "mnopqrstuvwxyz123456", // node id
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // 2001:db8::1
    [0x1a, 0xe1], // port 6881
    "6:valuesl18:",
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // ::1
    [0xc8, 0xd5], // port 51413
    "ee1:t2:aa1:v4:DT",
    [0, 1], // version "DT" 0.1
    "1:y1:re",
  );
  const message = decodeKrpc(packet);
  assert.deepEqual(message, {
    type: "response",
    transactionId: AA,
    version: bytes("DT", [0, 1]),
    id: ID_A,
    nodes6: [{ id: ID_M, host: "2001:db8::1", port: 6881 }],
    values: [{ host: "::1", port: 51413 }],
    ip: { host: "10.0.0.9", port: 6881 },
  });
  assert.deepEqual(encodeKrpc(message), packet);

  const readOnly = text("d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t2:aa1:y1:qe");
  assert.deepEqual(decodeKrpc(readOnly), {
    type: "query",
    method: "ping",
    transactionId: AA,
    id: ID_A,
    readOnly: true,
  });
  assert.deepEqual(encodeKrpc(decodeKrpc(readOnly)), readOnly);
});

Deno.test("decodeKrpc() accepts unsorted keys and ignores unknown ones", () => {
  const message = decodeKrpc(
    text("d1:y1:q1:t2:aa1:q4:ping5:extrai9e1:ad6:wanted2:n42:id20:abcdefghij0123456789ee"),
  );
  assert.deepEqual(message, { type: "query", method: "ping", transactionId: AA, id: ID_A });
});

Deno.test("decodeKrpc() rejects malformed packets", async (t) => {
  const cases: [string, Uint8Array, { code: number; transactionId?: string; kind?: string }][] = [
    ["not bencode", text("hello"), { code: 203 }],
    ["truncated", text("d1:t2:aa1:y1:q"), { code: 203 }],
    ["not a dictionary", text("li1ee"), { code: 203 }],
    ["missing t", text("d1:q4:ping1:y1:qe"), { code: 203 }],
    ["t not a string", text("d1:ti7e1:y1:qe"), { code: 203 }],
    ["missing y", text("d1:t2:aae"), { code: 203, transactionId: "aa" }],
    ["unknown y", text("d1:t2:aa1:y1:xe"), { code: 203, transactionId: "aa", kind: "x" }],
    ["query without a", text("d1:q4:ping1:t2:aa1:y1:qe"), {
      code: 203,
      transactionId: "aa",
      kind: "q",
    }],
    ["query without q", text("d1:ad2:id20:abcdefghij0123456789e1:t2:aa1:y1:qe"), {
      code: 203,
      transactionId: "aa",
      kind: "q",
    }],
    ["id of 19 bytes", text("d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe"), {
      code: 203,
      transactionId: "aa",
      kind: "q",
    }],
    ["id not a string", text("d1:ad2:idi1ee1:q4:ping1:t2:aa1:y1:qe"), {
      code: 203,
      transactionId: "aa",
      kind: "q",
    }],
    ["target missing", text("d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe"), {
      code: 203,
      transactionId: "aa",
      kind: "q",
    }],
    ["unknown method", text("d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:aa1:y1:qe"), {
      code: 204,
      transactionId: "aa",
      kind: "q",
    }],
    [
      "announce port 0 without implied_port",
      text(
        "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti0e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
      ),
      { code: 203, transactionId: "aa", kind: "q" },
    ],
    [
      "announce port 70000",
      text(
        "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
      ),
      { code: 203, transactionId: "aa", kind: "q" },
    ],
    [
      "announce without token",
      text(
        "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881ee1:q13:announce_peer1:t2:aa1:y1:qe",
      ),
      { code: 203, transactionId: "aa", kind: "q" },
    ],
    ["response without r", text("d1:t2:aa1:y1:re"), { code: 203, transactionId: "aa", kind: "r" }],
    [
      "nodes of 25 bytes",
      bytes("d1:rd2:id20:abcdefghij01234567895:nodes25:", new Array(25).fill(1), "e1:t2:aa1:y1:re"),
      {
        code: 203,
        transactionId: "aa",
        kind: "r",
      },
    ],
    [
      "nodes6 of 26 bytes",
      bytes(
        "d1:rd2:id20:abcdefghij01234567896:nodes626:",
        new Array(26).fill(1),
        "e1:t2:aa1:y1:re",
      ),
      {
        code: 203,
        transactionId: "aa",
        kind: "r",
      },
    ],
    [
      "values item of 5 bytes",
      text("d1:rd2:id20:abcdefghij01234567896:valuesl5:abcdeee1:t2:aa1:y1:re"),
      {
        code: 203,
        transactionId: "aa",
        kind: "r",
      },
    ],
    ["values not a list", text("d1:rd2:id20:abcdefghij01234567896:values6:abcdefe1:t2:aa1:y1:re"), {
      code: 203,
      transactionId: "aa",
      kind: "r",
    }],
    ["token not a string", text("d1:rd2:id20:abcdefghij01234567895:tokeni1ee1:t2:aa1:y1:re"), {
      code: 203,
      transactionId: "aa",
      kind: "r",
    }],
    ["e not a list", text("d1:e5:oops!1:t2:aa1:y1:ee"), {
      code: 203,
      transactionId: "aa",
      kind: "e",
    }],
    ["e code not an integer", text("d1:el3:2014:oopse1:t2:aa1:y1:ee"), {
      code: 203,
      transactionId: "aa",
      kind: "e",
    }],
  ];
  for (const [name, packet, expected] of cases) {
    await t.step(name, () => {
      const caught = thrown(() => decodeKrpc(packet));
      assert.ok(caught instanceof KrpcDecodeError);
      assert.ok(caught instanceof SyntaxError);
      assert.match(caught.message, /^Cannot decode KRPC packet: /);
      assert.equal(caught.code, expected.code);
      assert.equal(
        caught.transactionId && latin1.decode(caught.transactionId),
        expected.transactionId,
      );
      assert.equal(caught.kind, expected.kind);
    });
  }
});

Deno.test("encodeKrpc() rejects ids that are not 20 bytes and ports out of range", () => {
  assert.throws(
    () => encodeKrpc({ type: "query", method: "ping", transactionId: AA, id: new Uint8Array(19) }),
    TypeError,
  );
  assert.throws(
    () =>
      encodeKrpc({
        type: "query",
        method: "announce_peer",
        transactionId: AA,
        id: ID_A,
        infoHash: ID_M,
        port: 0,
        token: AA,
        impliedPort: false,
      }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeKrpc({
        type: "response",
        transactionId: AA,
        id: ID_A,
        nodes: [{ id: ID_M, host: "example.org", port: 1 }],
      }),
    TypeError,
  );
  assert.equal(KRPC_ERROR_CODES.methodUnknown, 204);
});
