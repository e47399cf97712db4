/** Where a peer listens: an IPv4 or IPv6 address (IPv6 without brackets) and a TCP port. */
export interface PeerAddress {
  /** IPv4 dotted quad, IPv6 text without brackets, or a host name. */
  host: string;
  /** TCP (or UDP, for DHT nodes) port, 1 to 65535. */
  port: number;
}

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/**
 * Parses `ip:port` (IPv4) or `[ip]:port` (IPv6) as printed by `peers`, or a `host:port` name.
 *
 * @param text The address.
 * @returns The parsed address.
 * @throws {TypeError} When the text is not `host:port` with a port from 1 to 65535.
 *
 * @example IPv4 and IPv6
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePeerAddress } from "./address.ts";
 *
 * assert.deepEqual(parsePeerAddress("127.0.0.1:6881"), { host: "127.0.0.1", port: 6881 });
 * assert.deepEqual(parsePeerAddress("[::1]:51413"), { host: "::1", port: 51413 });
 * ```
 */
export function parsePeerAddress(text: string): PeerAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new TypeError(`Cannot parse peer address "${text}": expected host:port or [ipv6]:port`);
  }
  return { host: (match[1] ?? match[2])!, port };
}

/**
 * Formats an address as `ip:port`, with brackets around an IPv6 address.
 *
 * @param address The address.
 * @returns The text form.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatPeerAddress } from "./address.ts";
 *
 * assert.equal(formatPeerAddress({ host: "::1", port: 80 }), "[::1]:80");
 * ```
 */
export function formatPeerAddress(address: PeerAddress): string {
  return address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

/**
 * Tells whether a host is a dotted-quad IPv4 address.
 *
 * @param host The host text.
 * @returns True for an IPv4 address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isIPv4 } from "./address.ts";
 *
 * assert.equal(isIPv4("10.0.0.1"), true);
 * assert.equal(isIPv4("::1"), false);
 * ```
 */
export function isIPv4(host: string): boolean {
  return IPV4.test(host);
}
