/**
 * A fixed set of slots handed out first come, first served. A caller that cannot get a slot
 * waits (it is never rejected); a waiter whose signal aborts leaves the queue without taking
 * one. Every slot taken is given back exactly once through the returned release function.
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

  async acquire(signal?: AbortSignal): Promise<{ slot: T; release: () => void }> {
    signal?.throwIfAborted();
    const slot = this.#free.pop() ?? (await this.#wait(signal));
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
