/**
 * Creates .torrent files with `mktorrent` (an independent creator), and reads info hashes.
 *
 * @module
 */

import { rawDictValue } from "../../../lib/bencode/mod.ts";

/** Options for {@linkcode mktorrent}. */
export interface MktorrentOptions {
  /** Where to write the .torrent. */
  output: string;
  /** Announce URLs; each becomes its own tier (`-a` repeated). mktorrent needs at least one. */
  announce?: string[];
  /** Piece length in bytes, a power of two from 32 KiB... mktorrent accepts 2^15..2^28 (default 2^18). */
  pieceLength?: number;
  /** Torrent name (default: the basename of `source`). */
  name?: string;
  private?: boolean;
  comment?: string;
  /** Web seed URLs (BEP 19). */
  webSeeds?: string[];
  /** Keep `creation date` (default false: `-d`). */
  creationDate?: boolean;
}

/** A created torrent. */
export interface CreatedTorrent {
  /** The .torrent path. */
  path: string;
  /** SHA-1 of the raw `info` bytes, 40 lowercase hex. */
  infoHash: string;
  /** The .torrent bytes. */
  bytes: Uint8Array;
}

/**
 * Computes the v1 info hash of .torrent bytes: SHA-1 of the raw encoded `info` value.
 *
 * @param torrent The .torrent file contents.
 * @returns 40 lowercase hex digits.
 * @throws {TypeError} When there is no `info` dictionary.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { torrentInfoHash } from "./mktorrent.ts";
 * const bytes = new TextEncoder().encode("d4:infod4:name1:xee");
 * assert.equal(
 *   await torrentInfoHash(bytes),
 *   new Uint8Array(await crypto.subtle.digest("SHA-1", new TextEncoder().encode("d4:name1:xe")))
 *     .toHex(),
 * );
 * ```
 */
export async function torrentInfoHash(torrent: Uint8Array): Promise<string> {
  const info = rawDictValue(torrent, "info");
  if (info === undefined) throw new TypeError("Cannot compute info hash: no 'info' dictionary");
  return new Uint8Array(await crypto.subtle.digest("SHA-1", info as Uint8Array<ArrayBuffer>))
    .toHex();
}

/**
 * Runs `mktorrent` on a file or directory (v1 torrents; no creation date by default, so output
 * is reproducible).
 *
 * @param source The file or directory.
 * @param options Output path, announce URLs, piece length, etc.
 * @returns The path, info hash and bytes of the torrent.
 * @throws {RangeError} For a piece length that is not a power of two in 2^15..2^28.
 * @throws {Error} When mktorrent fails (message has its output).
 * @example Usage
 * ```ts ignore
 * const { infoHash } = await mktorrent(dataDir, { output: "x.torrent", announce: [tracker.httpUrl], pieceLength: 32768 });
 * ```
 */
export async function mktorrent(
  source: string,
  options: MktorrentOptions,
): Promise<CreatedTorrent> {
  const args = ["-o", options.output];
  const announce = options.announce?.length ? options.announce : ["http://127.0.0.1:1/announce"];
  for (const url of announce) args.push("-a", url);
  if (options.pieceLength !== undefined) {
    const log2 = Math.log2(options.pieceLength);
    if (!Number.isInteger(log2) || log2 < 15 || log2 > 28) {
      throw new RangeError(
        `Cannot use piece length ${options.pieceLength}: mktorrent needs a power of two in 2^15..2^28`,
      );
    }
    args.push("-l", String(log2));
  }
  if (options.name !== undefined) args.push("-n", options.name);
  if (options.private) args.push("-p");
  if (options.comment !== undefined) args.push("-c", options.comment);
  for (const url of options.webSeeds ?? []) args.push("-w", url);
  if (!options.creationDate) args.push("-d");
  args.push(source);
  // mktorrent refuses to overwrite an existing output file.
  await Deno.remove(options.output).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  const output = await new Deno.Command("mktorrent", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
    throw new Error(`Cannot create torrent with mktorrent (code ${output.code}): ${text.trim()}`);
  }
  const bytes = await Deno.readFile(options.output);
  return { path: options.output, infoHash: await torrentInfoHash(bytes), bytes };
}
