/**
 * Seeding a torrent from storage with one call.
 *
 * @module
 */

import type { Bitfield } from "../piece/mod.ts";
import type { Storage } from "../storage/mod.ts";
import { verifyStorage } from "./verify_storage.ts";
import { PeerListener } from "./listener.ts";
import { Torrent, type TorrentEvent, type TorrentInfo } from "./torrent.ts";

/** Options for {@linkcode serveTorrent}. */
export interface ServeTorrentOptions {
  /** The torrent's metainfo. */
  metainfo: TorrentInfo;
  /** The data; the caller keeps ownership and closes it. */
  storage: Storage;
  /** Port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to bind; defaults to `"0.0.0.0"`. */
  hostname?: string;
  /** Our 20-byte peer id; generated when omitted. */
  peerId?: Uint8Array;
  /**
   * Pieces known to be present. When omitted every piece is hashed first,
   * and only pieces that match are served.
   */
  have?: Bitfield;
  /** Upload slots; defaults to 4. */
  uploadSlots?: number;
  /** Most peer connections; defaults to 50. */
  maxConnections?: number;
  /** Receives engine events. */
  onEvent?: (event: TorrentEvent) => void;
  /** Aborts the initial check, and later stops serving (torrent and listener). */
  signal?: AbortSignal;
}

/** A running seeder from {@linkcode serveTorrent}. */
export interface ServedTorrent extends AsyncDisposable {
  /** The listening port. */
  readonly port: number;
  /** The engine serving the torrent. */
  readonly torrent: Torrent;
  /** The listener accepting peers. */
  readonly listener: PeerListener;
  /** Stops serving: closes the torrent's sessions and the listener. */
  close(): Promise<void>;
}

/**
 * Seeds a torrent (BEP 3): checks which pieces the storage holds, listens
 * on a port, answers handshakes, sends its bitfield, unchokes interested
 * peers (up to the upload slots) and serves their requests from storage.
 * Requests out of range, larger than 16 KiB or for missing pieces are
 * ignored (rejected when the peer speaks the fast extension, BEP 6).
 *
 * @param options Metainfo, storage, port and limits.
 * @returns The running seeder.
 * @throws {Deno.errors.AddrInUse} If the port is taken.
 *
 * @example Usage
 * ```ts
 * import { serveTorrent } from "./serve.ts";
 * import { Torrent } from "./torrent.ts";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { MemoryStorage } from "../storage/mod.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new Uint8Array(50_000).map((_, i) => i % 251);
 * const { metainfo } = await createTorrent({ name: "x", data }, { pieceLength: 16384 });
 * const source = new MemoryStorage(data.length);
 * await source.write(0, data);
 * await using server = await serveTorrent({ metainfo, storage: source, hostname: "127.0.0.1" });
 *
 * const storage = new MemoryStorage(data.length);
 * await using client = new Torrent({ metainfo, storage });
 * client.start();
 * client.addPeers([{ host: "127.0.0.1", port: server.port }]);
 * await client.done;
 * assert.deepEqual(storage.bytes, data);
 * ```
 */
export async function serveTorrent(options: ServeTorrentOptions): Promise<ServedTorrent> {
  const { metainfo, storage, signal } = options;
  const have = options.have ??
    await verifyStorage(metainfo, storage, signal ? { signal } : {});
  const listener = PeerListener.listen({
    port: options.port ?? 0,
    hostname: options.hostname ?? "0.0.0.0",
    ...(options.peerId ? { peerId: options.peerId } : {}),
  });
  const torrent = new Torrent({
    metainfo,
    storage,
    have,
    listener,
    ...(options.uploadSlots === undefined ? {} : { uploadSlots: options.uploadSlots }),
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    ...(signal ? { signal } : {}),
  });
  torrent.start();
  const close = async () => {
    signal?.removeEventListener("abort", onAbort);
    await torrent.close();
    await listener.close();
  };
  const onAbort = () => {
    // Nobody awaits an abort: a failure to close goes to the global error handler.
    close().catch(reportError);
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  return {
    port: listener.port,
    torrent,
    listener,
    close,
    [Symbol.asyncDispose]: close,
  };
}
