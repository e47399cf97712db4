/**
 * A small real HTTP tracker (BEP 3, BEP 23 compact peers, BEP 7 peers6) for loopback tests.
 *
 * By default it runs a swarm: each announce is recorded under its info hash (the peer's address
 * is the connection's remote IP, or the `ip` parameter, plus `port`), `event=stopped` removes the
 * peer, and the response lists every other peer, compact or dictionary form as the client asked.
 * `setResponse` scripts faults: a failure reason, an HTTP status, garbage, a redirect, a redirect
 * loop or a hang.
 *
 * @example Two peers find each other, then a scripted failure
 * ```ts
 * import assert from "node:assert/strict";
 * import { startHttpTracker } from "./http_tracker.ts";
 * import { announceHttp, TrackerFailureError } from "../../lib/tracker/mod.ts";
 *
 * await using tracker = await startHttpTracker();
 * const request = (id: number, port: number) => ({
 *   infoHash: new Uint8Array(20).fill(1), peerId: new Uint8Array(20).fill(id),
 *   port, uploaded: 0, downloaded: 0, left: 0,
 * });
 * await announceHttp(tracker.url, request(1, 6881));
 * const response = await announceHttp(tracker.url, request(2, 6882));
 * assert.deepEqual(response.peers, [{ host: "127.0.0.1", port: 6881 }]);
 * assert.equal(tracker.announces.length, 2);
 *
 * tracker.setResponse({ failure: "go away" });
 * await assert.rejects(announceHttp(tracker.url, request(3, 1)), TrackerFailureError);
 * ```
 *
 * @module
 */
import { encode } from "../../lib/bencode/mod.ts";
import type { PeerAddress } from "../../lib/peer/address.ts";

/** One announce as the tracker saw it. */
export interface SeenAnnounce {
  /** The request path, e.g. "/announce". */
  path: string;
  /** The raw query string (without "?"). */
  query: string;
  infoHash: Uint8Array;
  peerId: Uint8Array;
  port: number;
  uploaded: number;
  downloaded: number;
  left: number;
  /** True when `compact=1` was sent. */
  compact: boolean;
  event?: string;
  numWant?: number;
  key?: string;
  trackerId?: string;
  /** The `ip` parameter if sent, else the sender's address. */
  ip: string;
}

/** How the tracker answers one announce. */
export type HttpTrackerReply =
  /** Run the swarm (the default behaviour). */
  | { swarm: true }
  /** `d14:failure reason...e` with status 200. */
  | { failure: string }
  /** This HTTP status with a short text body. */
  | { status: number }
  /** Bytes that are not bencode (or the given body) with status 200. */
  | { garbage: true }
  | { body: Uint8Array | string }
  /** A 302 to this URL (relative or absolute); the original query is appended if it has none. */
  | { redirect: string }
  /** A 302 to the very same URL, forever. */
  | { redirectLoop: true }
  /** Never answer (until the client gives up or the tracker closes). */
  | { hang: true }
  /** Any response you build. */
  | Response;

/** Decides the reply to an announce. */
export type HttpTrackerResponder = (
  announce: SeenAnnounce,
  request: Request,
) => HttpTrackerReply | Promise<HttpTrackerReply>;

/** A running HTTP tracker. */
export interface HttpTracker extends AsyncDisposable {
  /** The announce URL: `http://127.0.0.1:PORT/announce`. */
  url: string;
  /** The port. */
  port: number;
  /** Every parsed announce, in arrival order (also those answered with a fault). */
  announces: SeenAnnounce[];
  /** Sets the peers of an info hash (replacing announced ones), e.g. to test peers6. */
  setPeers(infoHash: Uint8Array, peers: PeerAddress[]): void;
  /** The peers currently known for an info hash. */
  peers(infoHash: Uint8Array): PeerAddress[];
  /** Scripts the reply: a fixed reply, a function, or undefined for the swarm again. */
  setResponse(reply: HttpTrackerReply | HttpTrackerResponder | undefined): void;
  /** Stops the server, releasing hung requests. */
  close(): Promise<void>;
}

/** Options for {@linkcode startHttpTracker}. */
export interface HttpTrackerOptions {
  /** The `interval` to send (default 1800). */
  interval?: number;
  /** Answer the swarm with at most this many peers when the client sends no numwant (default 50). */
  defaultNumWant?: number;
}

/** Peers per info hash, keyed by peer id (or address for peers set by hand). */
export class Swarm {
  #torrents = new Map<string, Map<string, PeerAddress & { peerId?: Uint8Array }>>();

  /** Records an announce and returns the other peers (up to numWant). */
  announce(
    infoHash: Uint8Array,
    peerId: Uint8Array,
    address: PeerAddress,
    event: string | undefined,
    numWant: number,
  ): (PeerAddress & { peerId?: Uint8Array })[] {
    const torrent = this.#torrent(infoHash);
    const self = peerId.toHex();
    if (event === "stopped") torrent.delete(self);
    else torrent.set(self, { ...address, peerId });
    const others = [...torrent.entries()].filter(([key]) => key !== self).map(([, peer]) => peer);
    return others.slice(0, Math.max(0, numWant));
  }

  /** Replaces the peers of an info hash. */
  set(infoHash: Uint8Array, peers: PeerAddress[]): void {
    const torrent = this.#torrent(infoHash);
    torrent.clear();
    for (const peer of peers) torrent.set(`${peer.host}|${peer.port}`, { ...peer });
  }

  /** The peers of an info hash. */
  list(infoHash: Uint8Array): PeerAddress[] {
    return [...this.#torrent(infoHash).values()].map(({ host, port }) => ({ host, port }));
  }

  /** Seeders (left=0 is not tracked here) and leechers are not distinguished: all count as incomplete. */
  size(infoHash: Uint8Array): number {
    return this.#torrent(infoHash).size;
  }

  #torrent(infoHash: Uint8Array) {
    const key = infoHash.toHex();
    let torrent = this.#torrents.get(key);
    if (!torrent) this.#torrents.set(key, torrent = new Map());
    return torrent;
  }
}

/**
 * Packs addresses as compact peers: 6 bytes for IPv4, 18 for IPv6 (address, big-endian port).
 * Written independently of the library codec so tests cross-check it.
 */
export function packPeers(peers: PeerAddress[], family: 4 | 6): Uint8Array {
  const size = family === 4 ? 6 : 18;
  const out = new Uint8Array(peers.length * size);
  peers.forEach((peer, i) => {
    const at = i * size;
    const address = family === 4 ? ipv4Bytes(peer.host) : ipv6Bytes(peer.host);
    out.set(address, at);
    out[at + size - 2] = peer.port >> 8;
    out[at + size - 1] = peer.port & 0xff;
  });
  return out;
}

function ipv4Bytes(host: string): Uint8Array {
  return Uint8Array.from(host.split(".").map(Number));
}

function ipv6Bytes(host: string): Uint8Array {
  const [head = "", tail] = host.split("::");
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = [
    ...headGroups,
    ...Array(tail === undefined ? 0 : missing).fill("0"),
    ...tailGroups,
  ];
  const out = new Uint8Array(16);
  groups.forEach((group, i) => {
    const value = parseInt(group, 16);
    out[i * 2] = value >> 8;
    out[i * 2 + 1] = value & 0xff;
  });
  return out;
}

/** Decodes a percent-encoded query value to raw bytes ("+" is a space, as in forms). */
export function percentDecodeBytes(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char === "%" && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (char === "+") {
      out.push(0x20);
    } else {
      out.push(...new TextEncoder().encode(char));
    }
  }
  return Uint8Array.from(out);
}

/** Parses an announce query; throws a TypeError naming the missing or bad parameter. */
export function parseAnnounceQuery(query: string, path: string, remoteIp: string): SeenAnnounce {
  const params = new Map<string, string>();
  for (const part of query.split("&")) {
    if (!part) continue;
    const at = part.indexOf("=");
    params.set(at < 0 ? part : part.slice(0, at), at < 0 ? "" : part.slice(at + 1));
  }
  const bytes = (name: string) => {
    const value = params.get(name);
    if (value === undefined) throw new TypeError(`missing ${name}`);
    const decoded = percentDecodeBytes(value);
    if (decoded.length !== 20) throw new TypeError(`invalid ${name}: ${decoded.length} bytes`);
    return decoded;
  };
  const integer = (name: string) => {
    const value = params.get(name);
    if (value === undefined || !/^-?\d+$/.test(value)) throw new TypeError(`invalid ${name}`);
    return Number(value);
  };
  const text = (name: string) => {
    const value = params.get(name);
    return value === undefined ? undefined : new TextDecoder().decode(percentDecodeBytes(value));
  };
  const announce: SeenAnnounce = {
    path,
    query,
    infoHash: bytes("info_hash"),
    peerId: bytes("peer_id"),
    port: integer("port"),
    uploaded: integer("uploaded"),
    downloaded: integer("downloaded"),
    left: integer("left"),
    compact: params.get("compact") === "1",
    ip: text("ip") ?? remoteIp,
  };
  const event = text("event");
  if (event !== undefined && event !== "") announce.event = event;
  if (params.has("numwant")) announce.numWant = integer("numwant");
  const key = text("key");
  if (key !== undefined) announce.key = key;
  const trackerId = text("trackerid");
  if (trackerId !== undefined) announce.trackerId = trackerId;
  return announce;
}

function bencodeResponse(value: Parameters<typeof encode>[0]): Response {
  // encode() returns a Uint8Array over a plain ArrayBuffer.
  return new Response(encode(value) as Uint8Array<ArrayBuffer>);
}

/**
 * Starts an HTTP tracker on 127.0.0.1, on a free port.
 *
 * @param options Interval and default peer count.
 * @returns The running tracker; `await using` or `close()` it.
 */
export function startHttpTracker(options: HttpTrackerOptions = {}): Promise<HttpTracker> {
  const interval = options.interval ?? 1800;
  const defaultNumWant = options.defaultNumWant ?? 50;
  const swarm = new Swarm();
  const announces: SeenAnnounce[] = [];
  const closing = Promise.withResolvers<void>();
  let responder: HttpTrackerResponder | undefined;

  const runSwarm = (announce: SeenAnnounce): Response => {
    const others = swarm.announce(
      announce.infoHash,
      announce.peerId,
      { host: announce.ip, port: announce.port },
      announce.event,
      announce.numWant === undefined || announce.numWant < 0 ? defaultNumWant : announce.numWant,
    );
    const dict: Record<string, unknown> = {
      interval,
      complete: 0,
      incomplete: swarm.size(announce.infoHash),
    };
    if (announce.compact) {
      dict.peers = packPeers(others.filter((p) => !p.host.includes(":")), 4);
      const v6 = others.filter((p) => p.host.includes(":"));
      if (v6.length > 0) dict.peers6 = packPeers(v6, 6);
    } else {
      dict.peers = others.map((p) => ({
        ip: p.host,
        port: p.port,
        ...(p.peerId ? { "peer id": p.peerId } : {}),
      }));
    }
    return bencodeResponse(dict as Parameters<typeof encode>[0]);
  };

  const reply = async (
    result: HttpTrackerReply,
    announce: SeenAnnounce,
    request: Request,
  ): Promise<Response> => {
    if (result instanceof Response) return result;
    if ("swarm" in result) return runSwarm(announce);
    if ("failure" in result) return bencodeResponse({ "failure reason": result.failure });
    if ("status" in result) {
      return new Response(`status ${result.status}`, { status: result.status });
    }
    if ("garbage" in result) return new Response("<html><body>Not a tracker</body></html>");
    if ("body" in result) {
      return new Response(
        typeof result.body === "string" ? result.body : result.body as Uint8Array<ArrayBuffer>,
      );
    }
    if ("redirect" in result) {
      const target = new URL(result.redirect, request.url);
      if (!target.search) target.search = announce.query;
      return new Response(null, { status: 302, headers: { location: target.href } });
    }
    if ("redirectLoop" in result) {
      return new Response(null, { status: 302, headers: { location: request.url } });
    }
    // hang: wait for the client to go away or the tracker to close, then answer nobody.
    const gone = Promise.withResolvers<void>();
    request.signal.addEventListener("abort", () => gone.resolve(), { once: true });
    await Promise.race([gone.promise, closing.promise]);
    return new Response("too late", { status: 503 });
  };

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request, info) => {
      const url = new URL(request.url);
      let announce: SeenAnnounce;
      try {
        announce = parseAnnounceQuery(url.search.slice(1), url.pathname, info.remoteAddr.hostname);
      } catch (error) {
        // A real tracker answers a malformed announce with a failure reason, not a crash.
        return bencodeResponse({ "failure reason": `bad announce: ${(error as Error).message}` });
      }
      announces.push(announce);
      const result = responder ? await responder(announce, request) : { swarm: true as const };
      return reply(result, announce, request);
    },
  );
  const port = server.addr.port;
  const close = async () => {
    closing.resolve();
    await server.shutdown();
  };
  return Promise.resolve({
    url: `http://127.0.0.1:${port}/announce`,
    port,
    announces,
    setPeers: (infoHash, peers) => swarm.set(infoHash, peers),
    peers: (infoHash) => swarm.list(infoHash),
    setResponse(next) {
      responder = next === undefined ? undefined : typeof next === "function" ? next : () => next;
    },
    close,
    [Symbol.asyncDispose]: close,
  });
}
