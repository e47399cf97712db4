/**
 * How a connection's socket read buffer grows.
 *
 * @module
 */

/**
 * The read buffer's next size: doubled, up to `max`, after a read that filled all the space it
 * was given (the socket had more waiting), else unchanged.
 *
 * @param size Current buffer size.
 * @param offered Free space the read was given.
 * @param read Bytes it returned.
 * @param max Largest size.
 * @returns The size for the next read.
 */
export function nextReadBufferSize(
  size: number,
  offered: number,
  read: number,
  max: number,
): number {
  return read >= offered && size < max ? Math.min(max, size * 2) : size;
}
