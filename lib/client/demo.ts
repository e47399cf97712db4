import { join } from "node:path";
import { createTorrentFromPath, type Metainfo } from "../metainfo/mod.ts";
import { FsStorage } from "../storage/mod.ts";
import { type ServedTorrent, serveTorrent } from "../torrent/mod.ts";
import { downloadPiece } from "./download_piece.ts";
import { type DownloadProgress, downloadTorrent } from "./download.ts";

/** Options for {@linkcode runDemo}. */
export interface DemoOptions {
  /** Payload size in bytes (default 64 MiB), split over a few files and an empty one. */
  size?: number;
  /** Serving peers on loopback (default 3); each holds the whole payload. */
  seeders?: number;
  /** Working directory (default: a fresh temporary one, removed afterwards). */
  dir?: string;
  /** Receives one line of narration at a time. */
  onLine?: (line: string) => void;
  /** Receives download progress about once a second. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Aborts the demo. */
  signal?: AbortSignal;
}

/** What {@linkcode runDemo} measured. */
export interface DemoResult {
  /** The torrent that was made and downloaded. */
  metainfo: Metainfo;
  /** Seconds the full download took. */
  seconds: number;
  /** Payload bytes per second of the full download. */
  bytesPerSecond: number;
  /** True when the downloaded files equal the originals byte for byte. */
  identical: boolean;
}

/**
 * The showcase, with no internet needed: writes a multi-file payload, makes a torrent of it,
 * seeds it from several of our own serving peers on 127.0.0.1, downloads one piece and then the
 * whole torrent from them, and checks the copy byte for byte.
 *
 * @param options Payload size, number of seeders, narration callbacks.
 * @returns The torrent, the time and speed of the download, and whether the copy is identical.
 *
 * @example A small demo
 * ```ts
 * import assert from "node:assert/strict";
 * import { runDemo } from "./demo.ts";
 *
 * const result = await runDemo({ size: 1_000_000, seeders: 2 });
 * assert.equal(result.identical, true);
 * ```
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const size = options.size ?? 64 * 1024 * 1024;
  const seederCount = options.seeders ?? 3;
  const say = options.onLine ?? (() => {});
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "denotorrent-demo-" });
  const signal = options.signal;
  try {
    const source = join(dir, "seed", "demo-payload");
    const files = await writePayload(source, size);
    say(`Wrote ${files} files (${formatMiB(size)}) to ${source}`);

    const { metainfo } = await createTorrentFromPath(source, {
      ...(signal ? { signal } : {}),
    });
    say(
      `Made a torrent: ${metainfo.pieceCount} pieces of ${metainfo.pieceLength / 1024} KiB, ` +
        `info hash ${metainfo.infoHash.toHex()}`,
    );

    const seeders: { storage: FsStorage; served: ServedTorrent }[] = [];
    try {
      for (let i = 0; i < seederCount; i++) {
        const storage = await FsStorage.open({ root: source, files: metainfo.files });
        const served = await serveTorrent({ metainfo, storage, hostname: "127.0.0.1" });
        seeders.push({ storage, served });
      }
      const peers = seeders.map(({ served }) => ({ host: "127.0.0.1", port: served.port }));
      say(`Seeding from ${peers.length} peers on ${peers.map((p) => `${p.host}:${p.port}`)}`);

      const last = metainfo.pieceCount - 1;
      const piece = await downloadPiece(metainfo, last, { peers, ...(signal ? { signal } : {}) });
      say(`download_piece: piece ${last} (${piece.length} bytes) verified`);

      const out = join(dir, "download", metainfo.name);
      const started = performance.now();
      const result = await downloadTorrent(metainfo, {
        out,
        peers,
        useTrackers: false,
        port: 0,
        hostname: "127.0.0.1",
        ...(signal ? { signal } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
      const seconds = (performance.now() - started) / 1000;
      const identical = result.complete && await sameTree(source, out, metainfo);
      say(
        `Downloaded ${formatMiB(size)} in ${seconds.toFixed(2)} s ` +
          `(${formatMiB(size / seconds)}/s) to ${out}: ` +
          (identical ? "byte-identical" : "DIFFERENT from the source"),
      );
      return { metainfo, seconds, bytesPerSecond: size / seconds, identical };
    } finally {
      for (const { storage, served } of seeders) {
        await served.close();
        await storage.close();
      }
    }
  } finally {
    if (options.dir === undefined) await Deno.remove(dir, { recursive: true });
  }
}

/** Writes pseudo-random files: a few large ones, a small one, an empty one. */
async function writePayload(root: string, size: number): Promise<number> {
  const sizes = [Math.floor(size * 0.6), Math.floor(size * 0.3)];
  sizes.push(size - sizes[0]! - sizes[1]! - 1000, 1000, 0);
  const names = ["video.bin", "extras/audio.bin", "extras/notes.bin", "readme.txt", "empty.dat"];
  const chunk = new Uint8Array(1024 * 1024);
  for (let i = 0; i < names.length; i++) {
    const path = join(root, names[i]!);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    using file = await Deno.open(path, { write: true, create: true, truncate: true });
    let left = sizes[i]!;
    while (left > 0) {
      const part = chunk.subarray(0, Math.min(left, chunk.length));
      for (let at = 0; at < part.length; at += 65536) {
        crypto.getRandomValues(part.subarray(at, Math.min(at + 65536, part.length)));
      }
      let written = 0;
      while (written < part.length) written += await file.write(part.subarray(written));
      left -= part.length;
    }
  }
  return names.length;
}

async function sameTree(a: string, b: string, metainfo: Metainfo): Promise<boolean> {
  for (const file of metainfo.files) {
    const left = await Deno.readFile(join(a, ...file.path));
    const right = await Deno.readFile(join(b, ...file.path));
    if (left.length !== right.length) return false;
    for (let i = 0; i < left.length; i++) if (left[i] !== right[i]) return false;
  }
  return true;
}

function formatMiB(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
