/**
 * The Mainline DHT (BEP 5): a KRPC codec, a k-bucket routing table, an iterative lookup state
 * machine, write tokens and a peer store, and {@linkcode DhtNode}, which runs them on a UDP
 * socket to find and announce peers without a tracker.
 *
 * @example Find peers announced by another node
 * ```ts
 * import assert from "node:assert/strict";
 * import { DhtNode } from "./mod.ts";
 *
 * await using seeder = await DhtNode.create({ host: "127.0.0.1" });
 * await using leecher = await DhtNode.create({ host: "127.0.0.1", bootstrap: [seeder.address] });
 * const infoHash = new Uint8Array(20).fill(7);
 * await leecher.bootstrap();
 * await seeder.announcePeer(infoHash, 51413);
 * assert.deepEqual(await leecher.getPeers(infoHash), [{ host: "127.0.0.1", port: 51413 }]);
 * ```
 *
 * @module
 */
export type { PeerAddress } from "../peer/address.ts";
export * from "./krpc.ts";
export * from "./lookup.ts";
export * from "./node.ts";
export * from "./node_id.ts";
export * from "./peer_store.ts";
export * from "./rate_limiter.ts";
export * from "./routing_table.ts";
export * from "./state_file.ts";
export * from "./tokens.ts";
