import type { Abortable } from "@cortex/http-kit";

export class AdmissionError extends Error {
  readonly code: "overloaded" | "queue_timeout";

  constructor(code: "overloaded" | "queue_timeout", message: string) {
    super(message);
    this.name = "AdmissionError";
    this.code = code;
  }
}

export interface AdmissionLimits {
  /** Requests allowed to wait beyond the running ones. */
  readonly maxQueued: number;
  /** How long a request may wait for a slot. */
  readonly queueTimeoutMs: number;
  /** Hears every change of `running` or `queued` (the neuron's event stream reports them). */
  readonly onChange?: () => void;
}

/**
 * Per-model admission: `concurrency` requests run, up to `maxQueued` wait (first come, first
 * served), the rest are refused. A request that finds a free slot starts at once, with no timer
 * and no queue entry (the hot path); a waiting caller that gives up leaves the queue at once.
 * `running` and `queued` are exact at every moment, and a slot is held for exactly as long as
 * the work runs, however the request ends.
 *
 * A paused admission (its model drains before a swap) starts nobody new: new callers queue
 * even with a slot free, within the same `maxQueued` and timeout, and a freed slot goes only to
 * a caller holding a turn (one that waited for the swap that brought the model in), until
 * `resume`.
 */
export class Admission {
  readonly #concurrency: number;
  readonly #limits: AdmissionLimits;
  #running = 0;
  #paused = false;
  /** Waiting callers' start functions, oldest first (a Set keeps insertion order). */
  readonly #waiting = new Set<() => void>();
  /** The waiting callers let through even while paused: always the oldest ones. */
  readonly #turns = new Set<() => void>();

  constructor(concurrency: number, limits: AdmissionLimits) {
    if (!Number.isSafeInteger(concurrency) || concurrency < 1)
      throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
    this.#concurrency = concurrency;
    this.#limits = limits;
  }

  get running(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#waiting.size;
  }

  /** Requests running or waiting: a model with any is busy (no idle unload, no eviction). */
  get inFlight(): number {
    return this.#running + this.#waiting.size;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Takes no new work: callers wait, running ones finish (a drain before a swap). */
  pause(): void {
    this.#paused = true;
  }

  /**
   * Every caller waiting now holds a turn: its model's swap is serving it, so a drain that comes
   * next (for the swap after) lets it through and waits for it like a running one.
   */
  grantTurns(): void {
    for (const start of this.#waiting) this.#turns.add(start);
  }

  /** Hands out the free slots again, oldest waiting caller first. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    // Each turn starts one caller (a start may pause again: then the loop stops there).
    while (!this.#paused && this.#running < this.#concurrency && this.#waiting.size > 0)
      this.#settle();
  }

  /**
   * Runs `work` in a slot. Rejects with AdmissionError when the queue is full or the wait
   * times out, and with the signal's reason when the caller gives up while waiting.
   */
  run<T>(work: () => Promise<T>, signal?: Abortable): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.#paused && this.#running < this.#concurrency && this.#waiting.size === 0)
      return this.#start(work);
    if (this.#waiting.size >= this.#limits.maxQueued) {
      return Promise.reject(
        new AdmissionError(
          "overloaded",
          `the model is busy: ${this.#running} running and ${this.#waiting.size} waiting`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const start = () => {
        cleanup();
        this.#start(work).then(resolve, reject);
      };
      const giveUp = (error: unknown) => {
        if (!this.#waiting.delete(start)) return;
        this.#turns.delete(start);
        cleanup();
        reject(error);
        this.#limits.onChange?.();
        this.#settle();
      };
      const onAbort = () => giveUp(signal?.reason);
      const timer = setTimeout(
        () =>
          giveUp(
            new AdmissionError(
              "queue_timeout",
              `no slot became free within ${this.#limits.queueTimeoutMs} ms`,
            ),
          ),
        this.#limits.queueTimeoutMs,
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.add(start);
      this.#limits.onChange?.();
    });
  }

  async #start<T>(work: () => Promise<T>): Promise<T> {
    // A caller let in from the queue left it just before: this one notice covers both.
    this.#running += 1;
    this.#limits.onChange?.();
    try {
      return await work();
    } finally {
      this.#running -= 1;
      this.#limits.onChange?.();
      this.#settle();
    }
  }

  /** Hands a free slot to the oldest waiting caller; while paused, only to one with a turn. */
  #settle(): void {
    if (this.#running >= this.#concurrency) return;
    for (const start of this.#waiting) {
      if (this.#paused && !this.#turns.has(start)) return;
      this.#waiting.delete(start);
      this.#turns.delete(start);
      start();
      return;
    }
  }
}
