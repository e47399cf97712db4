/**
 * Positional write methods for whole 256 KiB pieces, as used by `FsStorage`.
 *
 * Run: `deno bench -A tests/bench/storage_bench.ts`
 *
 * @module
 */

import * as fs from "node:fs";
import { FsStorage } from "../../lib/storage/fs_storage.ts";

const PIECE = 256 * 1024;
const PIECES = 64; // 16 MiB file
const dir = Deno.makeTempDirSync({ prefix: "storage_bench_" });
const file = `${dir}/data.bin`;
fs.writeFileSync(file, new Uint8Array(0));
fs.truncateSync(file, PIECE * PIECES);
const fd = fs.openSync(file, "r+");
const piece = new Uint8Array(PIECE).fill(0xab);
const handle = await fs.promises.open(file, "r+");
const denoFile = await Deno.open(file, { write: true });
const storage = await FsStorage.open({
  root: `${dir}/storage`,
  files: [{ path: ["data.bin"], length: PIECE * PIECES }],
});
let cursor = 0;
function nextPosition(): number {
  cursor = (cursor + 37) % PIECES; // scattered, like a rarest-first download
  return cursor * PIECE;
}

function writeCallback(position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.write(fd, piece, 0, PIECE, position, (error) => error ? reject(error) : resolve());
  });
}

Deno.bench(
  "node:fs writeSync(fd, buf, 0, len, pos)",
  { group: "pwrite 256 KiB", baseline: true },
  () => {
    fs.writeSync(fd, piece, 0, PIECE, nextPosition());
  },
);

Deno.bench("node:fs write(fd, ..., cb) promisified", { group: "pwrite 256 KiB" }, async () => {
  await writeCallback(nextPosition());
});

Deno.bench("node:fs promises FileHandle.write", { group: "pwrite 256 KiB" }, async () => {
  await handle.write(piece, 0, PIECE, nextPosition());
});

Deno.bench("Deno.FsFile seek + write", { group: "pwrite 256 KiB" }, async () => {
  await denoFile.seek(nextPosition(), Deno.SeekMode.Start);
  let written = 0;
  while (written < PIECE) written += await denoFile.write(piece.subarray(written));
});

Deno.bench("FsStorage.write (chosen method)", { group: "pwrite 256 KiB" }, async () => {
  await storage.write(nextPosition(), piece);
});

globalThis.addEventListener("unload", () => {
  fs.closeSync(fd);
  denoFile.close();
  void handle.close();
  void storage.close();
  Deno.removeSync(dir, { recursive: true });
});
