/**
 * A bounded queue between an event source and one async iterator.
 *
 * @module
 */

/**
 * Holds events until the consumer takes them. When more than `capacity` are waiting, the
 * oldest event that `droppable` allows is dropped (or the oldest of all), so that a consumer
 * that stops reading costs bounded memory.
 */
export class EventQueue<T> {
  readonly #items: T[] = [];
  readonly #capacity: number;
  readonly #droppable: (item: T) => boolean;
  #waiter: PromiseWithResolvers<T | undefined> | undefined;
  #closed = false;
  /** Events dropped because the consumer fell behind. */
  dropped = 0;

  constructor(capacity: number, droppable: (item: T) => boolean) {
    this.#capacity = capacity;
    this.#droppable = droppable;
  }

  /** Adds an event, or hands it to a waiting consumer. */
  push(item: T): void {
    if (this.#closed) return;
    if (this.#waiter) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter.resolve(item);
      return;
    }
    this.#items.push(item);
    if (this.#items.length > this.#capacity) {
      const at = this.#items.findIndex(this.#droppable);
      this.#items.splice(at < 0 ? 0 : at, 1);
      this.dropped++;
    }
  }

  /** Ends the queue: the consumer gets what is left, then `undefined`. */
  close(): void {
    this.#closed = true;
    if (this.#waiter) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter.resolve(undefined);
    }
  }

  /** The next event, or `undefined` once closed and drained. */
  next(): Promise<T | undefined> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift());
    if (this.#closed) return Promise.resolve(undefined);
    this.#waiter = Promise.withResolvers<T | undefined>();
    return this.#waiter.promise;
  }
}
