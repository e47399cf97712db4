import { formatPeerAddress } from "../peer/address.ts";
import type { Torrent } from "../torrent/mod.ts";

/**
 * Watches a torrent for the moment every peer it was given has failed with none left
 * connected or connecting, and remembers why each one failed, so a command can stop with one
 * line that says what went wrong instead of waiting for retries.
 */
export class SwarmWatch {
  readonly #failures = new Map<string, string>();
  readonly #torrent: Torrent;
  readonly #unsubscribe: () => void;
  readonly #exhausted = Promise.withResolvers<void>();
  #expected = 0;

  constructor(torrent: Torrent) {
    this.#torrent = torrent;
    this.#unsubscribe = torrent.subscribe((event) => {
      if (event.type === "peer-disconnected" || event.type === "peer-banned") {
        const reason = event.type === "peer-banned" ? `banned: ${event.reason}` : describe(
          event.reason,
        );
        this.#failures.set(formatPeerAddress(event.address), reason);
        this.#check();
      }
    });
  }

  /** Counts `count` more peers that were handed to the torrent. */
  expect(count: number): void {
    this.#expected += count;
  }

  /** Resolves once every expected peer has failed and none is connected or connecting. */
  get exhausted(): Promise<void> {
    return this.#exhausted.promise;
  }

  /** One line naming each failed peer and why, e.g. `127.0.0.1:1 (connection refused)`. */
  summary(): string {
    return [...this.#failures].map(([address, reason]) => `${address} (${reason})`).join(", ");
  }

  #check(): void {
    const stats = this.#torrent.stats();
    if (
      this.#failures.size >= this.#expected && stats.peersConnected === 0 &&
      stats.peersConnecting === 0
    ) {
      this.#exhausted.resolve();
    }
  }

  [Symbol.dispose](): void {
    this.#unsubscribe();
  }
}

function describe(reason: unknown): string {
  if (reason === undefined) return "disconnected";
  if (reason instanceof Deno.errors.ConnectionRefused) return "connection refused";
  if (reason instanceof Error) return reason.message.replace(/\s*\(os error \d+\)/, "");
  return String(reason);
}
