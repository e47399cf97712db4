/**
 * Pieces (BEP 3): bitfields, block assembly, SHA-1 verification and rarest-first picking.
 *
 * @example Usage
 * ```ts
 * import { Bitfield, blockRequests, PieceAssembler, sha1 } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(blockRequests(20_000).map((r) => r.length), [16384, 3616]);
 * const piece = new PieceAssembler(0, 4);
 * piece.addBlock(0, new Uint8Array([1, 2, 3, 4]));
 * const verified = await piece.verify(await sha1(new Uint8Array([1, 2, 3, 4])));
 * assert.equal(verified.length, 4);
 * const have = new Bitfield(1);
 * have.set(0);
 * assert.equal(have.isComplete, true);
 * ```
 *
 * @module
 */

export { Bitfield } from "./bitfield.ts";
export {
  HashQueue,
  type HashQueueOptions,
  PieceHashMismatchError,
  sha1,
  verifyPiece,
  type VerifyPieceOptions,
} from "./verify.ts";
export {
  type AssemblerVerifyOptions,
  BLOCK_SIZE,
  type BlockRange,
  blockRequests,
  PieceAssembler,
  type PieceAssemblerOptions,
  type PieceGeometry,
  pieceLengthAt,
} from "./assembler.ts";
export {
  type BlockRequest,
  type NextRequestsOptions,
  PiecePicker,
  type PiecePickerOptions,
} from "./picker.ts";
