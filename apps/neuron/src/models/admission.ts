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
}

/**
 * Per-model admission: `concurrency` requests run, up to `maxQueued` wait (first come, first
 * served), the rest are refused. A request that finds a free slot starts at once, with no timer
 * and no queue entry (the hot path); a waiting caller that gives up leaves the queue at once.
 * `running` and `queued` are exact at every moment, and a slot is held for exactly as long as
 * the work runs, however the request ends.
 */
export class Admission {
  readonly #concurrency: number;
  readonly #limits: AdmissionLimits;
  #running = 0;
  /** Waiting callers' start functions, oldest first (a Set keeps insertion order). */
  readonly #waiting = new Set<() => void>();

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

  /**
   * Runs `work` in a slot. Rejects with AdmissionError when the queue is full or the wait
   * times out, and with the signal's reason when the caller gives up while waiting.
   */
  run<T>(work: () => Promise<T>, signal?: Abortable): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#running < this.#concurrency && this.#waiting.size === 0) return this.#start(work);
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
        cleanup();
        reject(error);
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
    });
  }

  async #start<T>(work: () => Promise<T>): Promise<T> {
    this.#running += 1;
    try {
      return await work();
    } finally {
      this.#running -= 1;
      this.#settle();
    }
  }

  /** Hands a free slot to the oldest waiting caller. */
  #settle(): void {
    if (this.#running >= this.#concurrency) return;
    for (const start of this.#waiting) {
      this.#waiting.delete(start);
      start();
      return;
    }
  }
}
