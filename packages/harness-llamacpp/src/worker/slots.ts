/**
 * A fixed set of slots handed out first come, first served. A caller that cannot get a slot
 * waits (it is never rejected); a waiter whose signal aborts leaves the queue without taking
 * one. Every slot taken is given back exactly once through the returned release function.
 * A caller that finds several slots free may choose among them (`choose`); a waiter gets the
 * slot that frees, as only one is ever free while callers wait.
 */
export class SlotPool<T> {
  readonly #free: T[];
  readonly #waiters: {
    resolve: (slot: T) => void;
    reject: (error: unknown) => void;
    signal?: AbortSignal;
    onAbort: () => void;
  }[] = [];
  readonly size: number;

  constructor(slots: readonly T[]) {
    this.#free = [...slots];
    this.size = slots.length;
  }

  get busy(): number {
    return this.size - this.#free.length;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  /** `choose` returns the index of the slot to take among the free ones (default: the last). */
  async acquire(
    signal?: AbortSignal,
    choose?: (free: readonly T[]) => number,
  ): Promise<{ slot: T; release: () => void }> {
    signal?.throwIfAborted();
    const slot = this.#takeFree(choose) ?? (await this.#wait(signal));
    let released = false;
    return {
      slot,
      release: () => {
        if (released) return;
        released = true;
        this.#giveBack(slot);
      },
    };
  }

  #takeFree(choose: ((free: readonly T[]) => number) | undefined): T | undefined {
    if (this.#free.length === 0) return undefined;
    const index = choose ? choose(this.#free) : this.#free.length - 1;
    if (!Number.isInteger(index) || index < 0 || index >= this.#free.length)
      throw new RangeError(`chose slot ${index} of ${this.#free.length} free`);
    return this.#free.splice(index, 1)[0];
  }

  #wait(signal: AbortSignal | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const at = this.#waiters.indexOf(waiter);
          if (at >= 0) this.#waiters.splice(at, 1);
          reject(signal?.reason);
        },
      };
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #giveBack(slot: T): void {
    const next = this.#waiters.shift();
    if (!next) {
      this.#free.push(slot);
      return;
    }
    next.signal?.removeEventListener("abort", next.onAbort);
    next.resolve(slot);
  }
}
