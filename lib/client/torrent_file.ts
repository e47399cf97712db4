import { type Metainfo, parseMetainfo } from "../metainfo/mod.ts";

/**
 * Reads and parses a `.torrent` file, turning file-system failures into one-line errors that
 * name the path.
 *
 * @param path Where the torrent file is.
 * @returns The parsed metainfo.
 * @throws {Error} When the file cannot be read (the message names the path and the reason).
 * @throws {MetainfoError} When the file is not a valid torrent.
 *
 * @example Reading a torrent made on the fly
 * ```ts
 * import assert from "node:assert/strict";
 * import { createTorrent } from "../metainfo/mod.ts";
 * import { readTorrentFile } from "./torrent_file.ts";
 *
 * const { torrent } = await createTorrent({ name: "a.txt", data: new Uint8Array(10) }, {
 *   pieceLength: 16384,
 * });
 * const path = await Deno.makeTempFile({ suffix: ".torrent" });
 * await Deno.writeFile(path, torrent);
 * assert.equal((await readTorrentFile(path)).name, "a.txt");
 * await Deno.remove(path);
 * ```
 */
export async function readTorrentFile(path: string): Promise<Metainfo> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (cause) {
    throw new Error(`Cannot read torrent file "${path}": ${describeFsError(cause)}`, { cause });
  }
  return parseMetainfo(bytes);
}

/**
 * Describes a file-system error in a few words, without the OS error number.
 *
 * @param error What `Deno.*` threw.
 * @returns A short lowercase phrase such as "no such file".
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeFsError } from "./torrent_file.ts";
 *
 * assert.equal(describeFsError(new Deno.errors.NotFound("x")), "no such file");
 * ```
 */
export function describeFsError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (error instanceof Error) return error.message.replace(/\s*\(os error \d+\).*$/, "");
  return String(error);
}
