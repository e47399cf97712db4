import { formatMagnet, type Metainfo } from "../metainfo/mod.ts";
import {
  createTorrentFromPath,
  type CreateTorrentFromPathOptions,
} from "../metainfo/create_from_path.ts";

/** Options for {@linkcode createTorrentFile}. */
export interface CreateTorrentFileOptions extends CreateTorrentFromPathOptions {
  /** Where to write the torrent file (default: `<name>.torrent` in the current directory). */
  out?: string;
  /** Replace `out` if it exists (default false: an existing file is an error). */
  overwrite?: boolean;
}

/** What {@linkcode createTorrentFile} made. */
export interface CreatedTorrentFile {
  /** The path the torrent file was written to. */
  out: string;
  /** The torrent file's bytes. */
  torrent: Uint8Array;
  /** The parsed torrent. */
  metainfo: Metainfo;
  /** A magnet link (BEP 9) for it: info hash, name and trackers. */
  magnet: string;
}

/**
 * Creates a v1 torrent file (BEP 3) of a file or a directory and writes it: the files are
 * hashed on all cores by {@linkcode createTorrentFromPath}, in `mktorrent`'s file order and
 * without timestamps, so the same input always gives the same info hash.
 *
 * @param path The file or top directory to share.
 * @param options Output path, trackers, piece length and the other torrent fields.
 * @returns The output path, the torrent and its magnet link.
 * @throws {Deno.errors.AlreadyExists} If `out` exists and `overwrite` is not set.
 * @throws {Deno.errors.NotFound} If `path` does not exist.
 * @throws {RangeError} If the data is empty or the piece length is not a power of two in range.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrentFile } from "./create.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/hello.txt`, "hello\0world");
 * const created = await createTorrentFile(`${dir}/hello.txt`, {
 *   out: `${dir}/hello.torrent`,
 *   announce: "http://127.0.0.1:6969/announce",
 * });
 * assert.equal(created.metainfo.name, "hello.txt");
 * assert.deepEqual(await Deno.readFile(`${dir}/hello.torrent`), created.torrent);
 * assert.ok(created.magnet.startsWith(`magnet:?xt=urn:btih:${created.metainfo.infoHash.toHex()}`));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function createTorrentFile(
  path: string,
  options: CreateTorrentFileOptions = {},
): Promise<CreatedTorrentFile> {
  const { out: requestedOut, overwrite, ...createOptions } = options;
  if (requestedOut !== undefined && !overwrite) await refuseExisting(requestedOut);
  const { torrent, metainfo } = await createTorrentFromPath(path, createOptions);
  const out = requestedOut ?? `${metainfo.name}.torrent`;
  try {
    await Deno.writeFile(out, torrent, overwrite ? {} : { createNew: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    throw new Deno.errors.AlreadyExists(`Cannot write torrent: "${out}" already exists`, {
      cause: error,
    });
  }
  const magnet = formatMagnet({
    infoHash: metainfo.infoHash,
    displayName: metainfo.name,
    trackers: [...new Set(metainfo.announceList.flat())],
    peers: [],
    webSeeds: [],
  });
  return { out, torrent, metainfo, magnet };
}

/** Fails before hashing, rather than after, when the output is taken. */
async function refuseExisting(out: string): Promise<void> {
  try {
    await Deno.lstat(out);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  throw new Deno.errors.AlreadyExists(`Cannot write torrent: "${out}" already exists`);
}
