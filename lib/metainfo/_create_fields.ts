import { MAX_PIECE_LENGTH } from "./metainfo.ts";

/** Throws unless `pieceLength` is a whole number of bytes from 1 to {@linkcode MAX_PIECE_LENGTH}. */
export function checkPieceLength(pieceLength: number): void {
  if (!Number.isInteger(pieceLength) || pieceLength < 1 || pieceLength > MAX_PIECE_LENGTH) {
    throw new RangeError(
      `Cannot create torrent: piece length must be an integer from 1 to ${MAX_PIECE_LENGTH}, got ${pieceLength}`,
    );
  }
}

/** Compares byte strings as unsigned bytes: the order of file paths in a created torrent. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** The `announce` and `announce-list` fields for one URL or a list of tiers (BEP 12). */
export function trackerFields(
  announce: string | string[][] | undefined,
): { announce?: string; announceList?: string[][] } {
  if (announce === undefined) return {};
  if (typeof announce === "string") return { announce };
  const tiers = announce.filter((tier) => tier.length > 0);
  if (tiers.length === 0) return {};
  return { announce: tiers[0]![0]!, announceList: tiers };
}
