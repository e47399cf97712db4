import { decode, encode } from "../bencode/mod.ts";
import { type MagnetLink, type Metainfo, parseMagnet, parseMetainfo } from "../metainfo/mod.ts";
import { formatPeerAddress, type PeerAddress } from "../peer/address.ts";
import { generatePeerId } from "../peer/handshake.ts";
import type { ExtensionHandshake } from "../peer/extension.ts";
import {
  extensionHandshake,
  fetchMetadata,
  MetadataFetchError,
  type MetadataPeerFailure,
} from "../peer/metadata_exchange.ts";
import { type DhtPeerSource, magnetPeers } from "./peer_sources.ts";

/** Default time allowed for {@linkcode resolveMagnet} and {@linkcode magnetHandshake}: 60 s. */
export const DEFAULT_RESOLVE_MAGNET_TIMEOUT_MS = 60_000;

/** Metadata fetches run at once, each over its own batch of newly found peers. */
const MAX_PARALLEL_FETCHES = 4;

/** Options shared by {@linkcode resolveMagnet} and {@linkcode magnetHandshake}. */
export interface MagnetPeerOptions {
  /** More peers to ask, besides the link's `x.pe` hints. */
  peers?: readonly PeerAddress[];
  /** Announce to the link's `tr` trackers (default true). */
  useTrackers?: boolean;
  /** A DHT to search for peers (default none). */
  dht?: DhtPeerSource;
  /** Our 20-byte peer id (default: a fresh random one). */
  peerId?: Uint8Array;
  /** The TCP port we tell trackers (default 6881). */
  port?: number;
  /** Time allowed for the whole call, in ms (default 60000). */
  timeoutMs?: number;
  /** Time per peer for connecting and both handshakes, in ms (default 10000). */
  handshakeTimeoutMs?: number;
  /** Per-tracker time limit, in ms (default 15000). */
  trackerTimeoutMs?: number;
  /** Told of every peer found, once each (e.g. to reuse them for the download). */
  onPeers?: (peers: PeerAddress[]) => void;
  /** Told when a peer source fails (`tracker <url>`, `DHT`); the search goes on. */
  onSourceError?: (source: string, error: unknown) => void;
  /** Aborts; the call then rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** Options for {@linkcode resolveMagnet}. */
export interface ResolveMagnetOptions extends MagnetPeerOptions {
  /** Largest metadata accepted, in bytes (default 16 MiB). */
  maxMetadataSize?: number;
  /** Time a peer has to answer one metadata request, in ms (default 10000). */
  requestTimeoutMs?: number;
}

/**
 * Turns a magnet link (BEP 9) into a torrent: finds peers from the `x.pe` hints, the `tr`
 * trackers and the DHT all at once, fetches the info dictionary from them with `ut_metadata`
 * (several peers at a time; a peer whose pieces do not hash to the info hash is dropped), and
 * parses a torrent made of the verified info bytes plus the link's trackers (each its own tier)
 * and web seeds. The result's `infoBytes` are the peers' bytes, unchanged.
 *
 * @param link The magnet URI or a parsed link.
 * @param options Peers, DHT, trackers, timeouts and abort signal.
 * @returns The torrent's metainfo.
 * @throws {MagnetError} When the link cannot be parsed.
 * @throws {MetadataFetchError} When no peer was found or none served matching metadata in
 * time; the message says which, and `failures` says why each peer failed.
 * @throws {MetainfoError} When the verified info dictionary is not a valid v1 torrent.
 *
 * @example From a peer that serves the metadata
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent, formatMagnet } from "../metainfo/mod.ts";
 * import { PeerConnection } from "../peer/connection.ts";
 * import { encodeExtensionHandshake } from "../peer/extension.ts";
 * import { encodeMetadataMessage } from "../peer/ut_metadata.ts";
 * import { resolveMagnet } from "./magnet.ts";
 *
 * const { metainfo } = await createTorrent({ name: "a.txt", data: new Uint8Array(100) });
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * // A peer that answers the request for metadata piece 0 (its ut_metadata id is 3).
 * const peer = listener.accept().then(async (conn) => {
 *   await using peer = await PeerConnection.accept(conn, {
 *     peerId: new Uint8Array(20).fill(1),
 *     lookup: () => true,
 *   });
 *   const size = metainfo.infoBytes.length;
 *   const payload = encodeExtensionHandshake({ m: { ut_metadata: 3 }, metadataSize: size });
 *   await peer.send({ type: "extended", id: 0, payload });
 *   for await (const message of peer.messages) {
 *     if (message.type !== "extended" || message.id !== 3) continue;
 *     const data = { type: "data", piece: 0, totalSize: size, data: metainfo.infoBytes } as const;
 *     await peer.send({ type: "extended", id: 1, payload: encodeMetadataMessage(data) });
 *   }
 * });
 * const link = formatMagnet({
 *   infoHash: metainfo.infoHash,
 *   trackers: [],
 *   webSeeds: [],
 *   peers: [{ host: "127.0.0.1", port: listener.addr.port }],
 * });
 * const resolved = await resolveMagnet(link);
 * assert.equal(resolved.name, "a.txt");
 * assert.deepEqual(resolved.infoBytes, metainfo.infoBytes);
 * await peer;
 * ```
 */
export async function resolveMagnet(
  link: string | MagnetLink,
  options: ResolveMagnetOptions = {},
): Promise<Metainfo> {
  const magnet = typeof link === "string" ? parseMagnet(link) : link;
  const info = await fetchMagnetMetadata(magnet, options);
  return parseMetainfo(
    buildTorrentFile(info, { trackers: magnet.trackers, webSeeds: magnet.webSeeds }),
  );
}

/**
 * Fetches the raw info dictionary of a magnet link, verified against its info hash; the work
 * behind {@linkcode resolveMagnet}.
 *
 * @param magnet The parsed magnet link.
 * @param options Peers, DHT, trackers, timeouts and abort signal.
 * @returns The info dictionary's bytes exactly as the peers sent them.
 * @throws {MetadataFetchError} When no peer served matching metadata in time.
 *
 * @example Nobody to ask
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetadataFetchError, parseMagnet } from "../../mod.ts";
 * import { fetchMagnetMetadata } from "./magnet.ts";
 *
 * const link = parseMagnet(`magnet:?xt=urn:btih:${"ab".repeat(20)}`);
 * await assert.rejects(fetchMagnetMetadata(link), MetadataFetchError);
 * ```
 */
export async function fetchMagnetMetadata(
  magnet: MagnetLink,
  options: ResolveMagnetOptions = {},
): Promise<Uint8Array> {
  const hex = magnet.infoHash.toHex();
  const timeoutMs = options.timeoutMs ?? DEFAULT_RESOLVE_MAGNET_TIMEOUT_MS;
  const deadline = performance.now() + timeoutMs;
  const stop = new AbortController();
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([
    stop.signal,
    timeout,
    ...(options.signal ? [options.signal] : []),
  ]);
  const peerId = options.peerId ?? generatePeerId();
  const failures: MetadataPeerFailure[] = [];
  const sourceErrors: string[] = [];
  const result = Promise.withResolvers<Uint8Array>();
  const fetches = new Set<Promise<void>>();
  let pending: PeerAddress[] = [];
  let found = 0;
  let searching = true;
  let settled = false;

  const finishIfStuck = () => {
    if (settled || searching || fetches.size > 0 || pending.length > 0) return;
    settled = true;
    result.reject(
      new MetadataFetchError(
        found === 0
          ? `Cannot fetch metadata for ${hex}: no peers found${describeSources(sourceErrors)}`
          : `Cannot fetch metadata for ${hex}: none of ${found} peers served it: ${
            describeFailures(failures)
          }`,
        failures,
      ),
    );
  };
  const startFetches = () => {
    while (!settled && fetches.size < MAX_PARALLEL_FETCHES && pending.length > 0) {
      const batch = pending;
      pending = [];
      const fetch: Promise<void> = fetchMetadata(batch, magnet.infoHash, {
        peerId,
        signal,
        timeoutMs: Math.max(1, deadline - performance.now()),
        ...pick(options, "maxMetadataSize", "handshakeTimeoutMs", "requestTimeoutMs"),
      }).then(
        (info) => {
          if (settled) return;
          settled = true;
          result.resolve(info);
        },
        (error) => {
          if (error instanceof MetadataFetchError) failures.push(...error.failures);
          else if (!signal.aborted) {
            failures.push(...batch.map((address) => ({ address, reason: error })));
          }
        },
      ).finally(() => {
        fetches.delete(fetch);
        startFetches();
        finishIfStuck();
      });
      fetches.add(fetch);
    }
  };

  const search = (async () => {
    try {
      for await (
        const batch of magnetPeers(magnet, {
          signal,
          peerId,
          repeatDht: true,
          ...pick(options, "peers", "useTrackers", "dht", "port", "trackerTimeoutMs"),
          onSourceError: (source, error) => {
            sourceErrors.push(`${source}: ${error instanceof Error ? error.message : error}`);
            options.onSourceError?.(source, error);
          },
        })
      ) {
        found += batch.length;
        options.onPeers?.(batch);
        pending.push(...batch);
        startFetches();
      }
    } finally {
      searching = false;
      finishIfStuck();
    }
  })();
  const onAbort = () => {
    if (settled) return;
    settled = true;
    if (options.signal?.aborted) {
      result.reject(options.signal.reason);
      return;
    }
    result.reject(
      new MetadataFetchError(
        `Cannot fetch metadata for ${hex}: timed out after ${timeoutMs} ms (${found} peers found${
          failures.length > 0 ? `: ${describeFailures(failures)}` : ""
        })`,
        failures,
      ),
    );
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await result.promise;
  } finally {
    signal.removeEventListener("abort", onAbort);
    stop.abort(new DOMException("Metadata fetch finished", "AbortError"));
    await search.catch((error) => {
      // The search only ends by abort here; anything else is a bug worth surfacing.
      if (!signal.aborted) throw error;
    });
    while (fetches.size > 0) await Promise.allSettled([...fetches]);
  }
}

/** What {@linkcode magnetHandshake} learnt from the first peer that answered. */
export interface MagnetHandshakeResult {
  /** The peer. */
  address: PeerAddress;
  /** Its 20-byte peer id. */
  peerId: Uint8Array;
  /** Its 8 reserved handshake bytes. */
  reserved: Uint8Array;
  /** Its BEP 10 extension handshake. */
  handshake: ExtensionHandshake;
  /** The message id it wants for `ut_metadata` (BEP 9). */
  metadataExtensionId: number;
}

/**
 * Finds a peer for a magnet link (from `x.pe`, the trackers or the DHT), shakes hands with the
 * extension bit set (reserved bytes `00 00 00 00 00 10 00 00`), sends our BEP 10 extension
 * handshake as the first message and returns the peer's, from the first peer that supports
 * `ut_metadata`. Up to four peers are tried at a time.
 *
 * @param link The magnet URI or a parsed link.
 * @param options Peers, DHT, trackers, timeouts and abort signal.
 * @returns The peer, its id and its extension handshake.
 * @throws {MagnetError} When the link cannot be parsed.
 * @throws {MetadataFetchError} When no peer completed the handshake with `ut_metadata`.
 *
 * @example Nobody to ask
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetadataFetchError } from "../peer/mod.ts";
 * import { magnetHandshake } from "./magnet.ts";
 *
 * await assert.rejects(magnetHandshake(`magnet:?xt=urn:btih:${"ab".repeat(20)}`), MetadataFetchError);
 * ```
 */
export async function magnetHandshake(
  link: string | MagnetLink,
  options: MagnetPeerOptions = {},
): Promise<MagnetHandshakeResult> {
  const magnet = typeof link === "string" ? parseMagnet(link) : link;
  const hex = magnet.infoHash.toHex();
  const timeoutMs = options.timeoutMs ?? DEFAULT_RESOLVE_MAGNET_TIMEOUT_MS;
  const stop = new AbortController();
  const signal = AbortSignal.any([
    stop.signal,
    AbortSignal.timeout(timeoutMs),
    ...(options.signal ? [options.signal] : []),
  ]);
  const peerId = options.peerId ?? generatePeerId();
  const failures: MetadataPeerFailure[] = [];
  const sourceErrors: string[] = [];
  const attempts = new Set<Promise<MagnetHandshakeResult | undefined>>();
  let found = 0;
  const attempt = async (address: PeerAddress) => {
    try {
      const answer = await extensionHandshake(address, magnet.infoHash, {
        peerId,
        signal,
        ...(options.handshakeTimeoutMs !== undefined
          ? { timeoutMs: options.handshakeTimeoutMs }
          : {}),
      });
      const id = answer.handshake.m.ut_metadata;
      if (id === undefined || id === 0) {
        failures.push({
          address,
          reason: new Error(`Peer ${formatPeerAddress(address)} does not support ut_metadata`),
        });
        return undefined;
      }
      return { address, ...answer, metadataExtensionId: id };
    } catch (error) {
      if (!signal.aborted) failures.push({ address, reason: error });
      return undefined;
    }
  };
  const waitOne = async () => {
    const tagged = [...attempts].map((promise) => promise.then((value) => ({ promise, value })));
    const { promise, value } = await Promise.race(tagged);
    attempts.delete(promise);
    return value;
  };
  try {
    for await (
      const batch of magnetPeers(magnet, {
        signal,
        peerId,
        ...pick(options, "peers", "useTrackers", "dht", "port", "trackerTimeoutMs"),
        onSourceError: (source, error) => {
          sourceErrors.push(`${source}: ${error instanceof Error ? error.message : error}`);
          options.onSourceError?.(source, error);
        },
      })
    ) {
      found += batch.length;
      options.onPeers?.(batch);
      for (const address of batch) {
        while (attempts.size >= 4) {
          const value = await waitOne();
          if (value) return value;
        }
        attempts.add(attempt(address));
      }
    }
    while (attempts.size > 0) {
      const value = await waitOne();
      if (value) return value;
    }
    if (options.signal?.aborted) throw options.signal.reason;
    throw new MetadataFetchError(
      found === 0
        ? `Cannot shake hands for ${hex}: no peers found${describeSources(sourceErrors)}`
        : signal.aborted
        ? `Cannot shake hands for ${hex}: timed out after ${timeoutMs} ms`
        : `Cannot shake hands for ${hex}: none of ${found} peers completed the extension handshake: ${
          describeFailures(failures)
        }`,
      failures,
    );
  } finally {
    stop.abort(new DOMException("Handshake finished", "AbortError"));
    await Promise.allSettled(attempts);
  }
}

/** Options for {@linkcode buildTorrentFile}. */
export interface BuildTorrentFileOptions {
  /** Tracker URLs, each its own tier (as in a magnet link); the first becomes `announce`. */
  trackers?: readonly string[];
  /** Tracker tiers (BEP 12); used instead of `trackers` when given. */
  announceList?: readonly (readonly string[])[];
  /** Web seed URLs (BEP 19 `url-list`). */
  webSeeds?: readonly string[];
  /** The `created by` field. */
  createdBy?: string;
}

/**
 * Builds the bytes of a `.torrent` file around an info dictionary, keeping the info bytes
 * exactly as given (so the info hash stays the same even if they are not in canonical form):
 * `d8:announce...13:announce-list...4:info<info bytes>8:url-list...e`.
 *
 * @param info The raw bencoded info dictionary (e.g. fetched with `ut_metadata`).
 * @param options Trackers or tiers, web seeds, `created by`.
 * @returns The torrent file's bytes.
 * @throws {TypeError} When `info` is not a bencoded dictionary.
 *
 * @example Trackers around raw info bytes
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildTorrentFile } from "./magnet.ts";
 *
 * const info = new TextEncoder().encode("d4:name1:ae");
 * const bytes = buildTorrentFile(info, { trackers: ["http://t/a"] });
 * assert.equal(new TextDecoder().decode(bytes), "d8:announce10:http://t/a4:infod4:name1:aee");
 * ```
 */
export function buildTorrentFile(
  info: Uint8Array,
  options: BuildTorrentFileOptions = {},
): Uint8Array {
  let value;
  try {
    value = decode(info, { allowUnsortedKeys: true });
  } catch (cause) {
    throw new TypeError("Cannot build torrent file: info is not bencode", { cause });
  }
  if (
    typeof value !== "object" || value === null || Array.isArray(value) ||
    value instanceof Uint8Array
  ) {
    throw new TypeError("Cannot build torrent file: info is not a bencoded dictionary");
  }
  const tiers = (options.announceList ?? (options.trackers ?? []).map((url) => [url]))
    .map((tier) => [...tier])
    .filter((tier) => tier.length > 0);
  // Keys in byte order: announce, announce-list, created by, info, url-list.
  const before: Record<string, unknown> = {};
  const first = tiers[0]?.[0];
  if (first !== undefined) before.announce = first;
  if (tiers.length > 1 || (tiers[0]?.length ?? 0) > 1) before["announce-list"] = tiers;
  if (options.createdBy !== undefined) before["created by"] = options.createdBy;
  const head = encode(before as Parameters<typeof encode>[0]);
  const tail = options.webSeeds && options.webSeeds.length > 0
    ? encode({ "url-list": [...options.webSeeds] })
    : encode({});
  const infoKey = new TextEncoder().encode("4:info");
  // head and tail are "d...e": drop head's "e" and tail's "d".
  const out = new Uint8Array(head.length - 1 + infoKey.length + info.length + tail.length - 1);
  let offset = 0;
  out.set(head.subarray(0, head.length - 1), offset);
  offset += head.length - 1;
  out.set(infoKey, offset);
  offset += infoKey.length;
  out.set(info, offset);
  offset += info.length;
  out.set(tail.subarray(1), offset);
  return out;
}

/**
 * The bytes of a `.torrent` file for a torrent, e.g. one resolved from a magnet link (for
 * `--save-torrent`): its exact info bytes, its tracker tiers and web seeds.
 *
 * @param metainfo The torrent.
 * @returns The torrent file's bytes; parsing them gives the same info hash.
 *
 * @example Round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent, parseMetainfo } from "../metainfo/mod.ts";
 * import { torrentFileBytes } from "./magnet.ts";
 *
 * const { metainfo } = await createTorrent({ name: "a", data: new Uint8Array(5) }, {
 *   announce: "http://127.0.0.1:1/announce",
 * });
 * const again = parseMetainfo(torrentFileBytes(metainfo));
 * assert.deepEqual(again.infoHash, metainfo.infoHash);
 * assert.deepEqual(again.announceList, metainfo.announceList);
 * ```
 */
export function torrentFileBytes(metainfo: Metainfo): Uint8Array {
  return buildTorrentFile(metainfo.infoBytes, {
    announceList: metainfo.announceList,
    webSeeds: metainfo.urlList,
  });
}

function describeFailures(failures: readonly MetadataPeerFailure[]): string {
  const shown = failures.slice(0, 3).map(({ address, reason }) =>
    `${formatPeerAddress(address)} (${reason instanceof Error ? reason.message : reason})`
  );
  if (failures.length > 3) shown.push(`and ${failures.length - 3} more`);
  return shown.length > 0 ? shown.join(", ") : "no answer";
}

function describeSources(errors: readonly string[]): string {
  return errors.length > 0 ? ` (${errors.slice(0, 3).join("; ")})` : "";
}

function pick<T extends object, K extends keyof T>(
  source: T,
  ...keys: K[]
): { [P in K]?: Exclude<T[P], undefined> } {
  const out: { [P in K]?: Exclude<T[P], undefined> } = {};
  for (const key of keys) {
    if (source[key] !== undefined) out[key] = source[key] as Exclude<T[K], undefined>;
  }
  return out;
}
