/**
 * A small real UDP tracker (BEP 15) for loopback tests, on `node:dgram`.
 *
 * It answers connect requests with a fresh connection id, checks that announces carry an id
 * it issued, records each announce and runs a swarm like the HTTP helper (IPv4 peers only over
 * udp4). `dropNext(n)` silently drops the next n packets to exercise client retries;
 * `setResponse` scripts an error reply (action 3) or silence.
 *
 * @example A lost packet is retransmitted
 * ```ts
 * import assert from "node:assert/strict";
 * import { startUdpTracker } from "./udp_tracker.ts";
 * import { announceUdp } from "../../lib/tracker/mod.ts";
 *
 * await using tracker = await startUdpTracker({ interval: 600 });
 * tracker.dropNext(1); // the client's first connect is lost
 * const response = await announceUdp(tracker.url, {
 *   infoHash: new Uint8Array(20), peerId: new Uint8Array(20),
 *   port: 6881, uploaded: 0, downloaded: 0, left: 0,
 * }, { retryBaseMs: 50 });
 * assert.equal(response.interval, 600);
 * assert.equal(tracker.dropped, 1);
 * ```
 *
 * @module
 */
import dgram from "node:dgram";
import type { PeerAddress } from "../../lib/peer/address.ts";
import { packPeers, Swarm } from "./http_tracker.ts";

const PROTOCOL_ID = 0x41727101980n;

/** One UDP announce as the tracker saw it. */
export interface SeenUdpAnnounce {
  connectionId: bigint;
  transactionId: number;
  infoHash: Uint8Array;
  peerId: Uint8Array;
  downloaded: bigint;
  left: bigint;
  uploaded: bigint;
  /** 0 none, 1 completed, 2 started, 3 stopped. */
  event: number;
  ip: number;
  key: number;
  numWant: number;
  port: number;
  /** The sender's address. */
  from: PeerAddress;
}

/** How the tracker answers one announce. */
export type UdpTrackerReply =
  /** Run the swarm (the default). */
  | { swarm: true }
  /** An error packet (action 3) with this message. */
  | { error: string }
  /** No answer at all. */
  | { ignore: true }
  /** These exact bytes. */
  | { raw: Uint8Array };

/** A running UDP tracker. */
export interface UdpTracker extends AsyncDisposable {
  /** The announce URL: `udp://127.0.0.1:PORT/announce`. */
  url: string;
  port: number;
  /** Every announce received (not dropped), in order. */
  announces: SeenUdpAnnounce[];
  /** How many connect requests were answered. */
  connects: number;
  /** How many packets were dropped so far. */
  dropped: number;
  /** Drops the next n packets, whatever they are. */
  dropNext(n: number): void;
  /** Sets the peers of an info hash. */
  setPeers(infoHash: Uint8Array, peers: PeerAddress[]): void;
  /** Scripts the announce reply: fixed, a function, or undefined for the swarm again. */
  setResponse(reply: UdpTrackerReply | ((a: SeenUdpAnnounce) => UdpTrackerReply) | undefined): void;
  /** Closes the socket. */
  close(): Promise<void>;
}

/** Options for {@linkcode startUdpTracker}. */
export interface UdpTrackerOptions {
  /** The interval to send (default 1800). */
  interval?: number;
  /** Drop this many packets at the start (default 0). */
  dropFirst?: number;
}

/**
 * Starts a UDP tracker on 127.0.0.1, on a free port.
 *
 * @param options Interval and initial drops.
 * @returns The running tracker; `await using` or `close()` it.
 */
export async function startUdpTracker(options: UdpTrackerOptions = {}): Promise<UdpTracker> {
  const interval = options.interval ?? 1800;
  const swarm = new Swarm();
  const issued = new Set<bigint>();
  let toDrop = options.dropFirst ?? 0;
  let responder: ((a: SeenUdpAnnounce) => UdpTrackerReply) | undefined;
  const socket = dgram.createSocket("udp4");

  const state: UdpTracker = {
    url: "",
    port: 0,
    announces: [],
    connects: 0,
    dropped: 0,
    dropNext(n) {
      toDrop = n;
    },
    setPeers: (infoHash, peers) => swarm.set(infoHash, peers),
    setResponse(next) {
      responder = next === undefined ? undefined : typeof next === "function" ? next : () => next;
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
    [Symbol.asyncDispose]: () => state.close(),
  };

  const send = (packet: Uint8Array, to: dgram.RemoteInfo) => {
    socket.send(packet, to.port, to.address, (error) => {
      if (error) console.error(`udp_tracker: cannot reply to ${to.address}:${to.port}:`, error);
    });
  };
  const errorPacket = (transactionId: number, message: string) => {
    const text = new TextEncoder().encode(message);
    const packet = new Uint8Array(8 + text.length);
    const view = new DataView(packet.buffer);
    view.setUint32(0, 3); // action: error
    view.setUint32(4, transactionId);
    packet.set(text, 8);
    return packet;
  };

  socket.on("message", (message: Uint8Array, from: dgram.RemoteInfo) => {
    if (toDrop > 0) {
      toDrop--;
      state.dropped++;
      return;
    }
    if (message.length < 16) return; // too short to be a request: real trackers ignore it
    const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
    const connectionId = view.getBigUint64(0);
    const action = view.getUint32(8);
    const transactionId = view.getUint32(12);
    if (action === 0) {
      if (connectionId !== PROTOCOL_ID) return;
      const id = crypto.getRandomValues(new BigUint64Array(1))[0]!;
      issued.add(id);
      state.connects++;
      const reply = new Uint8Array(16);
      const out = new DataView(reply.buffer);
      out.setUint32(0, 0); // action: connect
      out.setUint32(4, transactionId);
      out.setBigUint64(8, id);
      send(reply, from);
      return;
    }
    if (action !== 1) return send(errorPacket(transactionId, `unknown action ${action}`), from);
    if (message.length < 98) return send(errorPacket(transactionId, "announce too short"), from);
    if (!issued.has(connectionId)) {
      return send(errorPacket(transactionId, "bad connection id"), from);
    }
    const announce: SeenUdpAnnounce = {
      connectionId,
      transactionId,
      infoHash: Uint8Array.from(message.subarray(16, 36)), // plain copies, not Buffers
      peerId: Uint8Array.from(message.subarray(36, 56)),
      downloaded: view.getBigUint64(56),
      left: view.getBigUint64(64),
      uploaded: view.getBigUint64(72),
      event: view.getUint32(80),
      ip: view.getUint32(84),
      key: view.getUint32(88),
      numWant: view.getInt32(92),
      port: view.getUint16(96),
      from: { host: from.address, port: from.port },
    };
    state.announces.push(announce);
    const result = responder?.(announce) ?? { swarm: true as const };
    if ("ignore" in result) return;
    if ("error" in result) return send(errorPacket(transactionId, result.error), from);
    if ("raw" in result) return send(result.raw, from);
    const events = ["", "completed", "started", "stopped"];
    const others = swarm.announce(
      announce.infoHash,
      announce.peerId,
      { host: from.address, port: announce.port },
      events[announce.event] || undefined,
      announce.numWant < 0 ? 50 : announce.numWant,
    ).filter((p) => !p.host.includes(":"));
    const peers = packPeers(others, 4);
    const reply = new Uint8Array(20 + peers.length);
    const out = new DataView(reply.buffer);
    out.setUint32(0, 1); // action: announce
    out.setUint32(4, transactionId);
    out.setUint32(8, interval);
    out.setUint32(12, swarm.size(announce.infoHash)); // leechers
    out.setUint32(16, 0); // seeders
    reply.set(peers, 20);
    send(reply, from);
  });

  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      socket.off("error", reject);
      resolve();
    });
  });
  state.port = socket.address().port;
  state.url = `udp://127.0.0.1:${state.port}/announce`;
  return state;
}
