import PQueue from "p-queue";

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
 * Per-model admission: `concurrency` requests run, up to `maxQueued` wait, the rest are refused.
 * p-queue runs the work; the waiting bookkeeping is kept here because p-queue keeps an aborted
 * entry until it reaches the front. That way `running` and `queued` are exact at every moment,
 * and a slot is held for exactly as long as the work runs, however the request ends.
 */
export class Admission {
  readonly #queue: PQueue;
  readonly #limits: AdmissionLimits;
  #queued = 0;
  #running = 0;

  constructor(concurrency: number, limits: AdmissionLimits) {
    this.#queue = new PQueue({ concurrency });
    this.#limits = limits;
  }

  get running(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#queued;
  }

  /**
   * Runs `work` in a slot. Rejects with AdmissionError when the queue is full or the wait
   * times out, and with the signal's reason when the caller gives up while waiting.
   */
  run<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    const free = this.#running + this.#queued < this.#queue.concurrency;
    if (!free && this.#queued >= this.#limits.maxQueued) {
      return Promise.reject(
        new AdmissionError(
          "overloaded",
          `the model is busy: ${this.#running} running and ${this.#queued} waiting`,
        ),
      );
    }
    this.#queued += 1;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let started = false;
      const giveUp = (error: unknown) => {
        if (started || settled) return;
        settled = true;
        this.#queued -= 1;
        cleanup();
        reject(error);
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
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      void this.#queue.add(async () => {
        // An entry whose caller left is skipped as soon as it reaches the front.
        if (settled) return;
        started = true;
        this.#queued -= 1;
        this.#running += 1;
        cleanup();
        try {
          resolve(await work());
        } catch (error) {
          reject(error);
        } finally {
          this.#running -= 1;
          settled = true;
        }
      });
    });
  }

  /** Resolves when nothing runs and nothing waits. */
  async idle(): Promise<void> {
    await this.#queue.onIdle();
  }
}
