/**
 * Free loopback ports for child processes that cannot bind port 0 themselves.
 *
 * @module
 */

import dgram from "node:dgram";

function udpPortFree(port: number, hostname: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket("udp4");
    socket.once("error", (error: Error & { code?: string }) => {
      // EADDRINUSE is the expected "taken" answer; anything else also means "don't use it".
      if (error.code !== "EADDRINUSE") console.error(`freePort: UDP probe of ${port}: ${error}`);
      socket.close(() => resolve(false));
    });
    socket.bind({ port, address: hostname, exclusive: true }, () => {
      socket.close(() => resolve(true));
    });
  });
}

/**
 * Finds a port that is free for both TCP and UDP on `hostname` (bind port 0, then close).
 * Another process may still take it before the caller binds it; starters retry on that.
 *
 * @param options `hostname` (default `127.0.0.1`), `attempts` (default 20).
 * @returns The port number.
 * @throws {Error} When no port was free for both protocols after `attempts` tries.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { freePort } from "./free_port.ts";
 * const port = await freePort();
 * assert.ok(port > 0 && port < 65536);
 * ```
 */
export async function freePort(
  options: { hostname?: string; attempts?: number } = {},
): Promise<number> {
  const hostname = options.hostname ?? "127.0.0.1";
  const attempts = options.attempts ?? 20;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const listener = Deno.listen({ hostname, port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    let free: boolean;
    try {
      free = await udpPortFree(port, hostname);
    } finally {
      listener.close();
    }
    if (free) return port;
  }
  throw new Error(`Cannot find a free TCP+UDP port on '${hostname}': ${attempts} attempts failed`);
}

/**
 * Resolves once something accepts TCP connections on `hostname:port`.
 *
 * @param port The port.
 * @param options `hostname`, `timeoutMs` (default 10 000), `isDead` (stop early, e.g. when the
 *   server process has exited), `what` for the error message.
 * @throws {Error} On timeout or when `isDead()` returns true.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { waitForTcp } from "./free_port.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept().then((conn) => conn.close());
 * await waitForTcp((listener.addr as Deno.NetAddr).port);
 * await accepted;
 * assert.ok(true);
 * ```
 */
export async function waitForTcp(
  port: number,
  options: { hostname?: string; timeoutMs?: number; isDead?: () => boolean; what?: string } = {},
): Promise<void> {
  const hostname = options.hostname ?? "127.0.0.1";
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  const what = options.what ?? `${hostname}:${port}`;
  while (true) {
    if (options.isDead?.()) throw new Error(`Cannot connect to ${what}: the process exited`);
    try {
      const conn = await Deno.connect({ hostname, port });
      conn.close();
      return;
    } catch (error) {
      if (!(error instanceof Deno.errors.ConnectionRefused)) throw error;
    }
    if (Date.now() > deadline) throw new Error(`Cannot connect to ${what}: timed out`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
