/**
 * Streaming a torrent's files while they download, over loopback: order, priority, bounded
 * memory, and the `stream` command's HTTP range requests.
 */
import assert from "node:assert/strict";
import { Client, createTorrent, MemoryStorage, type Storage } from "../mod.ts";
import { deterministicBytes } from "./_helpers/fixtures.ts";
import { SlowSeeder } from "./_helpers/hostile_peer.ts";

const LOOPBACK = { port: 0, hostname: "127.0.0.1", useTrackers: false } as const;

/** Three files; the last one starts inside a piece (file boundaries are not piece-aligned). */
async function threeFiles() {
  const sizes = [300_000, 150_001, 200_000];
  const datas = sizes.map((size, i) => deterministicBytes(size, i + 1));
  const files = datas.map((data, i) => ({ path: [`part${i}.bin`], data }));
  const { metainfo, torrent } = await createTorrent({ name: "set", files }, { pieceLength: 16384 });
  const whole = new Uint8Array(metainfo.totalLength);
  for (const file of metainfo.files) whole.set(datas[sizes.indexOf(file.length)]!, file.offset);
  return { metainfo, torrent, whole };
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A storage that counts what is read from it. */
class CountingStorage implements Storage {
  readonly inner: MemoryStorage;
  bytesRead = 0;
  reads = 0;
  constructor(length: number) {
    this.inner = new MemoryStorage(length);
  }
  get totalLength(): number {
    return this.inner.totalLength;
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    return this.inner.write(offset, data);
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    this.reads++;
    this.bytesRead += length;
    return this.inner.read(offset, length);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

Deno.test("file.stream() of the last file yields before the download completes and equals the source", async () => {
  const { metainfo, whole } = await threeFiles();
  // ~650 KB at 800 KB/s: the whole torrent takes most of a second.
  await using seeder = new SlowSeeder({ geometry: metainfo, data: whole, bytesPerSecond: 800_000 });
  await using client = new Client(LOOPBACK);
  const torrent = await client.add(metainfo, {
    storage: new MemoryStorage(metainfo.totalLength),
    peers: [seeder.address],
  });
  const last = torrent.files.at(-1)!;
  assert.equal(last.path, "part2.bin");
  const reader = last.stream().getReader();
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let progressAtFirstChunk = -1;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (progressAtFirstChunk < 0) progressAtFirstChunk = torrent.progress;
    chunks.push(value);
  }
  const progressAtEnd = torrent.progress;
  const streamed = new Uint8Array(await new Blob(chunks).arrayBuffer());
  assert.deepEqual(streamed, whole.subarray(last.offset));
  // The first bytes came after a small part of the torrent, the whole file before its end.
  assert.ok(progressAtFirstChunk < 0.25, `progress at first chunk: ${progressAtFirstChunk}`);
  assert.ok(progressAtEnd < 0.75, `progress when the file was read: ${progressAtEnd}`);
  // The seeder was asked for the last file's pieces first.
  const firstLastPiece = Math.floor(last.offset / metainfo.pieceLength);
  assert.ok(seeder.requestedPieces.slice(0, 5).every((index) => index >= firstLastPiece));
  await torrent.done;
  assert.deepEqual(
    new Uint8Array(await torrent.files[0]!.arrayBuffer()),
    whole.subarray(0, 300_000),
  );
});

Deno.test("file.stream() serves a sub-range and several streams at once", async () => {
  const { metainfo, whole } = await threeFiles();
  await using seeder = new SlowSeeder({
    geometry: metainfo,
    data: whole,
    bytesPerSecond: 4_000_000,
  });
  await using client = new Client(LOOPBACK);
  const torrent = await client.add(metainfo, {
    storage: new MemoryStorage(metainfo.totalLength),
    peers: [seeder.address],
  });
  const [a, b, c] = torrent.files;
  const results = await Promise.all([
    readAll(a!.stream({ start: 100_000, end: 100_001 })),
    readAll(b!.stream({ start: 16_000, end: 70_000 })),
    readAll(c!.stream({ start: 199_990 })),
    readAll(c!.stream({ start: 5, end: 5 })),
  ]);
  assert.deepEqual(results[0], whole.subarray(100_000, 100_001));
  assert.deepEqual(results[1], whole.subarray(b!.offset + 16_000, b!.offset + 70_000));
  assert.deepEqual(results[2], whole.subarray(c!.offset + 199_990));
  assert.equal(results[3]!.length, 0);
  assert.throws(() => c!.stream({ start: 10, end: 200_001 }), RangeError);
  assert.throws(() => c!.stream({ start: -1 }), RangeError);
});

Deno.test("file.stream() with a slow reader reads no more than about two chunks ahead", async () => {
  // 2 MiB in 64 KiB pieces: the download completes while the reader sleeps.
  const data = deterministicBytes(2 * 1024 * 1024, 7);
  const { metainfo } = await createTorrent({ name: "big.bin", data }, { pieceLength: 65536 });
  await using seeder = new SlowSeeder({ geometry: metainfo, data });
  await using client = new Client(LOOPBACK);
  const storage = new CountingStorage(data.length);
  const torrent = await client.add(metainfo, { storage, peers: [seeder.address] });
  storage.bytesRead = 0; // Forget the hash check of the empty storage at add.
  const reader = torrent.files[0]!.stream().getReader();
  const first = await reader.read();
  assert.equal(first.value?.length, 65536);
  await torrent.done;
  // Give the stream every chance to run ahead: it must not.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const heldAhead = storage.bytesRead - first.value!.length;
  assert.ok(heldAhead <= 2 * 65536, `read ahead of the reader: ${heldAhead} bytes`);
  const rest: Uint8Array<ArrayBuffer>[] = [first.value!];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    rest.push(value);
    // Each read is followed by at most one more chunk read from storage.
    const consumed = rest.reduce((sum, chunk) => sum + chunk.length, 0);
    assert.ok(storage.bytesRead - consumed <= 2 * 65536);
  }
  assert.deepEqual(new Uint8Array(await new Blob(rest).arrayBuffer()), data);
});

Deno.test("file.stream() with a slow reader keeps the process's memory bounded", async () => {
  // 24 MiB downloaded to disk while the reader takes a chunk every 20 ms: memory must not grow
  // with what the reader has not read yet.
  const size = 24 * 1024 * 1024;
  const data = deterministicBytes(size, 11);
  const { metainfo } = await createTorrent({ name: "movie.bin", data }, { pieceLength: 262144 });
  await using seeder = new SlowSeeder({ geometry: metainfo, data });
  const dir = await Deno.makeTempDir();
  try {
    await using client = new Client(LOOPBACK);
    const torrent = await client.add(metainfo, { dir, peers: [seeder.address] });
    const baseline = memory();
    let peak = baseline;
    let buffered = 0;
    const reader = torrent.files[0]!.stream().getReader();
    let read = 0;
    let checked = 0;
    while (read < size) {
      const { done, value } = await reader.read();
      if (done) break;
      assert.deepEqual(value, data.subarray(read, read + value.length));
      read += value.length;
      peak = Math.max(peak, memory());
      buffered = Math.max(buffered, torrent.stats().bufferedBytes);
      if (++checked < 8) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await torrent.done;
    assert.equal(read, size);
    const growth = peak - baseline;
    console.log(
      `slow reader of 24 MiB: heap+external grew ${(growth / 2 ** 20).toFixed(1)} MiB ` +
        `(no forced GC), engine buffered at most ${(buffered / 2 ** 20).toFixed(1)} MiB`,
    );
    // The data waits on disk, not in memory: the engine's buffer stays under its 32 MiB cap
    // and the heap does not grow with what the reader has not read yet (the exact bound on
    // the stream's own read-ahead is the test above).
    assert.ok(buffered <= 32 * 2 ** 20, `engine buffered ${buffered} bytes`);
    assert.ok(growth < 2 * size, `memory grew by ${growth} bytes`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function memory(): number {
  const usage = Deno.memoryUsage();
  return usage.heapUsed + usage.external;
}

Deno.test("file.stream() errors when the torrent is removed, and on abort", async () => {
  const { metainfo } = await threeFiles();
  await using client = new Client(LOOPBACK);
  // No peers: the stream waits for ever unless stopped.
  const torrent = await client.add(metainfo, { storage: new MemoryStorage(metainfo.totalLength) });
  const controller = new AbortController();
  const aborted = readAll(torrent.files[0]!.stream({ signal: controller.signal }));
  const waiting = readAll(torrent.files[1]!.stream());
  controller.abort(new Error("Seek elsewhere"));
  await assert.rejects(aborted, /Seek elsewhere/);
  await torrent.remove();
  await assert.rejects(waiting, /the torrent was removed/);
});

Deno.test("stream command serves a file with range requests (206, Content-Range, HEAD)", async () => {
  const { metainfo, torrent, whole } = await threeFiles();
  await using seeder = new SlowSeeder({
    geometry: metainfo,
    data: whole,
    bytesPerSecond: 2_000_000,
  });
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/set.torrent`, torrent);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../cli.ts", import.meta.url).pathname,
      "stream",
      "--file",
      "2",
      "--no-trackers",
      "--no-dht",
      "--peer-port",
      "0",
      "--peer",
      `127.0.0.1:${seeder.port}`,
      "-o",
      `${dir}/out`,
      `${dir}/set.torrent`,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", DENOTORRENT_DHT_BOOTSTRAP: "" },
  }).spawn();
  const stderr = new Response(child.stderr).text();
  try {
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let url = "";
    while (!url.includes("\n")) {
      const { done, value } = await lines.read();
      if (done) break;
      url += value;
    }
    lines.releaseLock();
    url = url.trim();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/part2\.bin$/);
    const file = metainfo.files[2]!;
    const source = whole.subarray(file.offset, file.offset + file.length);

    const ranged = await fetch(url, { headers: { range: "bytes=150000-150999" } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), `bytes 150000-150999/${file.length}`);
    assert.equal(ranged.headers.get("accept-ranges"), "bytes");
    assert.equal(ranged.headers.get("content-length"), "1000");
    assert.deepEqual(new Uint8Array(await ranged.arrayBuffer()), source.subarray(150_000, 151_000));

    const suffix = await fetch(url, { headers: { range: "bytes=-10" } });
    assert.equal(suffix.status, 206);
    assert.deepEqual(new Uint8Array(await suffix.arrayBuffer()), source.subarray(-10));

    const head = await fetch(url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(file.length));
    await head.body?.cancel();

    const outside = await fetch(url, { headers: { range: `bytes=${file.length}-` } });
    assert.equal(outside.status, 416);
    assert.equal(outside.headers.get("content-range"), `bytes */${file.length}`);
    await outside.body?.cancel();

    const full = await fetch(url);
    assert.equal(full.status, 200);
    assert.deepEqual(new Uint8Array(await full.arrayBuffer()), source);
  } finally {
    child.kill("SIGINT");
    const status = await child.status;
    const log = await stderr;
    assert.equal(status.code, 0, log);
    await child.stdout.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stream --stdout pipes the file", async () => {
  const { metainfo, torrent, whole } = await threeFiles();
  await using seeder = new SlowSeeder({ geometry: metainfo, data: whole });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/set.torrent`, torrent);
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../cli.ts", import.meta.url).pathname,
        "stream",
        "--stdout",
        "--file=1",
        "--no-trackers",
        "--peer-port=0",
        `--peer=127.0.0.1:${seeder.port}`,
        "-o",
        `${dir}/out`,
        `${dir}/set.torrent`,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", DENOTORRENT_DHT_BOOTSTRAP: "" },
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const file = metainfo.files[1]!;
    assert.deepEqual(output.stdout, whole.subarray(file.offset, file.offset + file.length));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
