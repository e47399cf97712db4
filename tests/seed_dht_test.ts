/**
 * A seeder announces itself into the DHT (BEP 5) and is found by a trackerless magnet link:
 * `seedTorrent` with a `DhtPeerSource`, and the `seed` command with `--dht-bootstrap`, both
 * against a DHT of 20 of our own nodes on 127.0.0.1. A private torrent (BEP 27) and
 * `--no-dht` are never announced.
 */
import assert from "node:assert/strict";
import { DhtPeerSource, downloadTorrent, resolveMagnet, seedTorrent } from "../lib/client/mod.ts";
import { DhtNode } from "../lib/dht/mod.ts";
import { createTorrent, formatMagnet, type Metainfo } from "../lib/metainfo/mod.ts";
import { torrentFileBytes } from "../lib/client/mod.ts";
import { runCli } from "./_helpers/run_cli.ts";
import { startSeedCommand } from "./_helpers/seed_command.ts";

const HOST = "127.0.0.1";

/** Bytes with NULs, spread over several 16 KiB pieces. */
function payload(length: number, seed: number): Uint8Array {
  const data = new Uint8Array(length);
  for (let i = 0; i < length; i++) data[i] = (i * 31 + seed + (i >> 10)) % 251;
  data[3] = 0;
  return data;
}

/** A DHT of `count` of our nodes on loopback, each one knowing the first and the previous. */
async function startDht(count = 20): Promise<DhtNode[] & AsyncDisposable> {
  const nodes: DhtNode[] = [];
  const horde = Object.assign(nodes, {
    async [Symbol.asyncDispose]() {
      await Promise.all(nodes.map((node) => node.close()));
    },
  });
  try {
    for (let i = 0; i < count; i++) {
      const bootstrap = nodes.length === 0 ? [] : [nodes[0]!.address, nodes.at(-1)!.address];
      nodes.push(
        await DhtNode.create({
          host: HOST,
          bootstrap,
          queryTimeoutMs: 500,
          maintenanceIntervalMs: false,
        }),
      );
    }
    await Promise.all(nodes.map((node) => node.bootstrap()));
  } catch (error) {
    await horde[Symbol.asyncDispose]();
    throw error;
  }
  return horde;
}

/** A DHT peer source joining through `node`, keeping no state file. */
function openSource(node: DhtNode): Promise<DhtPeerSource> {
  return DhtPeerSource.open({
    host: HOST,
    bootstrap: [node.address],
    statePath: false,
    queryTimeoutMs: 500,
  });
}

/** A single-file torrent (no trackers) of `data`, written to `dir`. */
async function makeTorrent(
  dir: string,
  name: string,
  data: Uint8Array,
  options: { private?: boolean } = {},
): Promise<Metainfo> {
  await Deno.writeFile(`${dir}/${name}`, data);
  const { metainfo } = await createTorrent({ name, data }, {
    pieceLength: 16384,
    ...(options.private ? { private: true } : {}),
  });
  return metainfo;
}

async function until(
  condition: () => Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "seed_dht_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("seedTorrent() announces into the DHT; a trackerless magnet finds it and downloads", async () => {
  await withTempDir(async (dir) => {
    await using nodes = await startDht();
    const data = payload(90_000, 1);
    const metainfo = await makeTorrent(dir, "public.bin", data);
    const secret = await makeTorrent(dir, "secret.bin", payload(20_000, 2), { private: true });

    await using seederDht = await openSource(nodes[4]!);
    const dhtErrors: unknown[] = [];
    const common = {
      hostname: HOST,
      port: 0,
      saveResume: false,
      dht: seederDht,
      onDhtError: (error: unknown) => dhtErrors.push(error),
    };
    await using seeder = await seedTorrent(metainfo, `${dir}/public.bin`, common);
    // Same DHT source: it would be announced alongside if private torrents were not skipped.
    await using privateSeeder = await seedTorrent(secret, `${dir}/secret.bin`, common);

    // Another node, knowing nothing of the seeder, finds it.
    await until(
      async () => (await nodes[15]!.getPeers(metainfo.infoHash)).length > 0,
      "the seeder is announced",
    );
    assert.deepEqual(await nodes[9]!.getPeers(metainfo.infoHash), [
      { host: HOST, port: seeder.port },
    ]);

    // A magnet link with neither trackers nor x.pe: metadata and data come from the seeder.
    await using leecherDht = await openSource(nodes[17]!);
    const link = formatMagnet({
      infoHash: metainfo.infoHash,
      trackers: [],
      peers: [],
      webSeeds: [],
    });
    const resolved = await resolveMagnet(link, {
      dht: leecherDht,
      useTrackers: false,
      timeoutMs: 10_000,
    });
    assert.deepEqual(resolved.infoBytes, metainfo.infoBytes);
    const result = await downloadTorrent(resolved, {
      out: `${dir}/downloaded.bin`,
      port: 0,
      hostname: HOST,
      useTrackers: false,
      peerSource: ({ port, signal }) =>
        leecherDht.peers(resolved.infoHash, { signal, announcePort: port, intervalMs: 1000 }),
    });
    assert.equal(result.complete, true);
    assert.deepEqual(await Deno.readFile(`${dir}/downloaded.bin`), data);
    assert.ok(seeder.stats().uploaded >= data.length, "the data came from the seeder");

    // BEP 27: the private torrent's seeder never told the DHT.
    assert.deepEqual(await nodes[9]!.getPeers(secret.infoHash), []);
    assert.deepEqual(await nodes[15]!.getPeers(secret.infoHash), []);
    assert.equal(privateSeeder.complete, true);
    assert.deepEqual(dhtErrors, []);
  });
});

Deno.test("seedTorrent() reports a DHT where no node answers, and keeps seeding", async () => {
  await withTempDir(async (dir) => {
    const metainfo = await makeTorrent(dir, "lonely.bin", payload(20_000, 3));
    // A bootstrap address where nothing listens: no node will ever answer.
    const silent = await DhtNode.create({ host: HOST, maintenanceIntervalMs: false });
    const address = silent.address;
    await silent.close();
    await using dht = await DhtPeerSource.open({
      host: HOST,
      bootstrap: [address],
      statePath: false,
      queryTimeoutMs: 200,
    });
    const failed = Promise.withResolvers<unknown>();
    await using seeder = await seedTorrent(metainfo, `${dir}/lonely.bin`, {
      hostname: HOST,
      port: 0,
      saveResume: false,
      dht,
      onDhtError: failed.resolve,
    });
    const error = await failed.promise;
    assert.match(String(error), /no node answered/);
    assert.equal(seeder.torrent.stats().piecesHave, metainfo.pieceCount, "still seeding");
    // Closing ends the wait before the next attempt (5 minutes by default) at once.
    const started = Date.now();
    await seeder.close();
    assert.ok(Date.now() - started < 2_000);
  });
});

Deno.test("seed --dht-bootstrap announces; magnet download finds it; --no-dht does not", async () => {
  await withTempDir(async (dir) => {
    await using nodes = await startDht();
    const bootstrap = `${HOST}:${nodes[2]!.address.port}`;
    const data = payload(60_000, 4);
    const metainfo = await makeTorrent(dir, "cli.bin", data);
    await Deno.writeFile(`${dir}/cli.torrent`, torrentFileBytes(metainfo));
    const quiet = await makeTorrent(dir, "quiet.bin", payload(20_000, 5));
    await Deno.writeFile(`${dir}/quiet.torrent`, torrentFileBytes(quiet));

    const statePath = `${dir}/seed-dht.json`;
    const [announced, hidden] = await Promise.all([
      startSeedCommand([
        "--port",
        "0",
        "--dht-bootstrap",
        bootstrap,
        "--dht-state",
        statePath,
        `${dir}/cli.torrent`,
        `${dir}/cli.bin`,
      ]),
      startSeedCommand([
        "--port",
        "0",
        "--no-dht",
        "--dht-bootstrap",
        bootstrap,
        `${dir}/quiet.torrent`,
        `${dir}/quiet.bin`,
      ]),
    ]);
    let stoppedA: { code: number; stderr: string } | undefined;
    let stoppedB: { code: number; stderr: string } | undefined;
    try {
      await until(
        async () => (await nodes[11]!.getPeers(metainfo.infoHash)).length > 0,
        "the seed command is announced",
      );
      assert.deepEqual(await nodes[11]!.getPeers(metainfo.infoHash), [
        { host: HOST, port: announced.port },
      ]);

      const link = formatMagnet({
        infoHash: metainfo.infoHash,
        trackers: [],
        peers: [],
        webSeeds: [],
      });
      const result = await runCli([
        "download",
        "--dht-bootstrap",
        `${HOST}:${nodes[13]!.address.port}`,
        "--dht-state",
        `${dir}/download-dht.json`,
        "--port",
        "0",
        "-o",
        `${dir}/out.bin`,
        link,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await Deno.readFile(`${dir}/out.bin`), data);
    } finally {
      [stoppedA, stoppedB] = await Promise.all([announced.stop(), hidden.stop()]);
    }
    assert.equal(stoppedA.code, 0, stoppedA.stderr);
    assert.match(
      stoppedA.stderr,
      new RegExp(`^Announcing port ${announced.port} to the DHT\\.$`, "m"),
    );
    // --dht-state: the seeder's routing table was saved on exit.
    const state = JSON.parse(await Deno.readTextFile(statePath));
    assert.ok(state.nodes.length > 0, JSON.stringify(state));

    assert.equal(stoppedB.code, 0, stoppedB.stderr);
    assert.doesNotMatch(stoppedB.stderr, /DHT/);
    assert.deepEqual(await nodes[11]!.getPeers(quiet.infoHash), []);
  });
});
