/**
 * The library's Client over loopback swarms: add, pause, resume, remove, seed, magnets,
 * events, and close() releasing everything (sanitizers on).
 */
import assert from "node:assert/strict";
import {
  Client,
  createTorrent,
  currentBootId,
  formatMagnet,
  loadResumeData,
  MemoryStorage,
  resumePathFor,
  type TorrentHandleEvent,
} from "../mod.ts";
import { deterministicBytes } from "./_helpers/fixtures.ts";
import { openFdCount, SlowSeeder } from "./_helpers/hostile_peer.ts";

const LOOPBACK = { port: 0, hostname: "127.0.0.1", useTrackers: false } as const;

async function fixture(size = 400_000, name = "data.bin") {
  const data = deterministicBytes(size, size);
  const { metainfo, torrent } = await createTorrent({ name, data }, { pieceLength: 16384 });
  return { data, metainfo, torrent };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

Deno.test("Client.add() accepts torrent bytes, a Metainfo and rejects anything else", async (t) => {
  const { metainfo, torrent, data } = await fixture(50_000);
  await using client = new Client(LOOPBACK);
  await t.step("bytes", async () => {
    const storage = new MemoryStorage(data.length);
    await storage.write(0, data);
    const handle = await client.add(torrent, { storage });
    assert.equal(handle.infoHashHex, metainfo.infoHash.toHex());
    assert.equal(handle.name, "data.bin");
    assert.deepEqual(handle.files.map((f) => [f.path, f.offset, f.length]), [[
      "data.bin",
      0,
      50_000,
    ]]);
    assert.equal(handle.state, "seeding");
    assert.equal(client.get(handle.infoHashHex), handle);
    await handle.remove();
    assert.equal(client.get(handle.infoHash), undefined);
    assert.equal(client.torrents.length, 0);
  });
  await t.step("bad input", async () => {
    await assert.rejects(client.add("/some/file.torrent"), TypeError);
    await assert.rejects(client.add(new TextEncoder().encode("de")), /Invalid torrent/);
    await assert.rejects(
      client.add(metainfo, { storage: new MemoryStorage(10) }),
      RangeError,
    );
  });
});

Deno.test("TorrentHandle pause(), resume() and remove({ deleteFiles }) over a slow seeder", async () => {
  const { metainfo, data } = await fixture(600_000);
  await using seeder = new SlowSeeder({ geometry: metainfo, data, bytesPerSecond: 1_500_000 });
  const dir = await Deno.makeTempDir();
  try {
    await using client = new Client(LOOPBACK);
    const handle = await client.add(metainfo, { dir, peers: [seeder.address] });
    assert.equal(handle.path, `${dir}/data.bin`);
    const states: string[] = [];
    const following = (async () => {
      for await (const event of handle.events()) {
        if (event.type === "state") states.push(event.state);
      }
    })();
    // Some pieces, not all.
    while (handle.stats().piecesHave < 5) await new Promise((r) => setTimeout(r, 10));
    await handle.pause();
    assert.equal(handle.state, "paused");
    const paused = handle.stats();
    assert.equal(paused.peersConnected, 0);
    assert.ok(paused.progress > 0 && paused.progress < 1, `progress ${paused.progress}`);
    // The resume file records the verified pieces.
    assert.ok(await exists(`${dir}/.data.bin.dtresume`));
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(handle.stats().piecesHave, paused.piecesHave, "no progress while paused");

    await handle.resume();
    assert.equal(handle.state, "downloading");
    await handle.done;
    assert.equal(handle.state, "seeding");
    assert.equal(handle.progress, 1);
    assert.deepEqual(await Deno.readFile(`${dir}/data.bin`), data);

    await handle.remove({ deleteFiles: true });
    await following;
    assert.deepEqual(states, ["downloading", "paused", "downloading", "seeding", "stopped"]);
    assert.equal(await exists(`${dir}/data.bin`), false);
    assert.equal(await exists(`${dir}/.data.bin.dtresume`), false);
    await assert.rejects(handle.resume(), /was removed/);
    await assert.rejects(handle.done.then(() => Promise.reject(new Error("was done"))), /was done/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TorrentHandle.remove() before completion rejects done and keeps files by default", async () => {
  const { metainfo } = await fixture(100_000);
  const dir = await Deno.makeTempDir();
  try {
    await using client = new Client(LOOPBACK);
    const handle = await client.add(metainfo, { dir });
    await handle.remove();
    await assert.rejects(handle.done, /removed/);
    assert.ok(await exists(`${dir}/data.bin`));
    // Added again: it starts from the resume file.
    const again = await client.add(metainfo, { dir, paused: true });
    assert.equal(again.state, "paused");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Client resumes a partial download from disk and seeds complete data", async () => {
  const { metainfo, data } = await fixture(200_000);
  const dir = await Deno.makeTempDir();
  try {
    // Half the data present, the rest zeros: only the matching pieces count.
    const partial = data.slice();
    partial.fill(0, 100_000);
    await Deno.writeFile(`${dir}/data.bin`, partial);
    await using seeder = new SlowSeeder({ geometry: metainfo, data });
    await using client = new Client(LOOPBACK);
    const handle = await client.add(metainfo, { dir, peers: [seeder.address] });
    const verifiedAtStart = handle.stats().piecesHave;
    assert.equal(verifiedAtStart, Math.floor(100_000 / 16384));
    await handle.done;
    assert.deepEqual(await Deno.readFile(`${dir}/data.bin`), data);
    assert.ok(seeder.bytesServed <= data.length - verifiedAtStart * 16384);

    // A second client seeds the completed file to a third.
    await using other = new Client(LOOPBACK);
    await assert.rejects(other.seed(metainfo, `${dir}/missing.bin`), /missing/);
    const seeding = await other.seed(metainfo, `${dir}/data.bin`);
    assert.equal(seeding.state, "seeding");
    await using third = new Client(LOOPBACK);
    const storage = new MemoryStorage(data.length);
    const copy = await third.add(metainfo, {
      storage,
      peers: [{ host: "127.0.0.1", port: other.port }],
    });
    await copy.done;
    assert.deepEqual(storage.bytes, data);
    assert.ok(seeding.stats().uploaded >= data.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Client resume files record the boot unless fsync is set", async () => {
  const { metainfo, data } = await fixture(100_000);
  const dir = await Deno.makeTempDir();
  try {
    await using seeder = new SlowSeeder({ geometry: metainfo, data });
    for (const fsync of [false, true]) {
      const path = `${dir}/copy-${fsync}.bin`;
      {
        await using client = new Client({ ...LOOPBACK, fsync });
        const handle = await client.add(metainfo, { path, peers: [seeder.address] });
        await handle.done;
      }
      assert.deepEqual(await Deno.readFile(path), data);
      const resume = await loadResumeData(resumePathFor(path));
      assert.equal(resume?.bootId, fsync ? undefined : currentBootId());
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Client.add() of a magnet link fetches the metadata from a peer", async () => {
  const { metainfo, data } = await fixture(80_000, "from-magnet.bin");
  await using seeder = new Client(LOOPBACK);
  const source = new MemoryStorage(data.length);
  await source.write(0, data);
  await seeder.add(metainfo, { storage: source });
  const link = formatMagnet({
    infoHash: metainfo.infoHash,
    trackers: [],
    webSeeds: [],
    peers: [{ host: "127.0.0.1", port: seeder.port }],
  });
  await using client = new Client(LOOPBACK);
  const storage = new MemoryStorage(data.length);
  const handle = await client.add(link, { storage, metadataTimeoutMs: 5000 });
  assert.equal(handle.name, "from-magnet.bin");
  assert.deepEqual(handle.metainfo.infoBytes, metainfo.infoBytes);
  await handle.done;
  assert.deepEqual(storage.bytes, data);
});

Deno.test("TorrentHandle.events() yields typed progress, piece, peer and done events", async () => {
  const { metainfo, data } = await fixture(300_000);
  await using seeder = new SlowSeeder({ geometry: metainfo, data, bytesPerSecond: 1_000_000 });
  await using client = new Client({ ...LOOPBACK, tickMs: 50 });
  const handle = await client.add(metainfo, {
    storage: new MemoryStorage(data.length),
    peers: [seeder.address],
  });
  const seen: TorrentHandleEvent[] = [];
  for await (const event of handle.events()) {
    seen.push(event);
    if (event.type === "done") break;
  }
  assert.deepEqual(seen[0], { type: "state", state: "downloading" });
  const pieces = seen.filter((e) => e.type === "piece").map((e) => e.type === "piece" && e.index);
  assert.equal(new Set(pieces).size, metainfo.pieceCount);
  const progress = seen.filter((e) => e.type === "progress");
  assert.ok(progress.length >= 2, `${progress.length} progress events`);
  const fractions = progress.map((e) => e.type === "progress" ? e.stats.progress : -1);
  assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b));
  assert.ok(seen.some((e) => e.type === "peer-connected"));
  assert.ok(seen.some((e) => e.type === "state" && e.state === "seeding"));

  // An aborted iteration ends; the torrent carries on.
  const controller = new AbortController();
  const iteration = (async () => {
    let count = 0;
    for await (const _ of handle.events({ signal: controller.signal })) count++;
    return count;
  })();
  await new Promise((r) => setTimeout(r, 20));
  controller.abort();
  assert.ok(await iteration >= 1);
});

Deno.test("Client.close() releases every socket, timer, file, stream and iteration", async () => {
  const fdsBefore = openFdCount();
  const { metainfo, data } = await fixture(500_000);
  const second = await fixture(100_000, "other.bin");
  await using seeder = new SlowSeeder({ geometry: metainfo, data, bytesPerSecond: 300_000 });
  const dir = await Deno.makeTempDir();
  try {
    const client = new Client(LOOPBACK);
    const handle = await client.add(metainfo, { dir, peers: [seeder.address] });
    await client.add(second.metainfo, { dir, paused: true });
    const stream = handle.files[0]!.stream({ start: 400_000 });
    // Rejects during close(): checked (and handled) from the start.
    const reading = assert.rejects(new Response(stream).arrayBuffer(), /removed/);
    const events = (async () => {
      const types: string[] = [];
      for await (const event of handle.events()) types.push(event.type);
      return types;
    })();
    while (handle.stats().peersConnected === 0) await new Promise((r) => setTimeout(r, 5));
    await client.close();
    assert.equal(client.closed, true);
    assert.equal(handle.state, "stopped");
    await reading;
    assert.equal((await events).at(-1), "state");
    await assert.rejects(handle.done, /removed/);
    await assert.rejects(client.add(metainfo, { dir }), /client is closed/);
    // Idempotent.
    await client.close();
    // Every descriptor is back (the seeder's side closes when ours does).
    await seeder.close();
    assert.equal(openFdCount(), fdsBefore);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Client closes when its signal aborts, and close() aborts an add in progress", async () => {
  const controller = new AbortController();
  const client = new Client({ ...LOOPBACK, signal: controller.signal });
  const { metainfo } = await fixture(20_000);
  // A magnet link with no peers to ask: the add waits until the close aborts it.
  const link = formatMagnet({ infoHash: metainfo.infoHash, trackers: [], webSeeds: [], peers: [] });
  const adding = client.add(link);
  controller.abort();
  await assert.rejects(adding);
  // The abort listener closes asynchronously; close() joins it.
  await client.close();
  assert.equal(client.closed, true);
});
