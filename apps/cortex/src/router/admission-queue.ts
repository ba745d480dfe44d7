import type { Abortable } from "@cortex/http-kit";
import { CortexError } from "../errors.js";
import { type LineWaiter, waitInLine } from "./waiting-line.js";

type Waiter = LineWaiter<void>;

export interface AdmissionLimits {
  /** Requests that may wait per model; one more is refused with 503 `overloaded`. */
  readonly maxQueued: number;
  /** How long one request may wait in all; then 504 `queue_timeout`. */
  readonly timeoutMs: number;
  readonly retryAfterS: number;
}

/**
 * Per-model FIFO of requests waiting for a saturated model to free a slot. Waiting is only a
 * pause: a woken request decides again on the current snapshot, and if it is still saturated
 * it goes back to the front of the line, keeping its place and its original deadline.
 */
export class AdmissionQueue {
  readonly #waiters = new Map<string, Waiter[]>();
  readonly #limits: AdmissionLimits;
  #tickets = 0;

  constructor(limits: AdmissionLimits) {
    this.#limits = limits;
  }

  /** A place in line, taken when a request first has to wait. */
  ticket(): number {
    this.#tickets += 1;
    return this.#tickets;
  }

  /** The deadline for a request that starts waiting now. */
  deadline(nowMs: number): number {
    return nowMs + this.#limits.timeoutMs;
  }

  depth(model: string): number {
    return this.#waiters.get(model)?.length ?? 0;
  }

  /** Waiting requests by model, for metrics. */
  depths(): ReadonlyMap<string, number> {
    const depths = new Map<string, number>();
    for (const [model, waiters] of this.#waiters) depths.set(model, waiters.length);
    return depths;
  }

  /**
   * Resolves when woken; rejects with 503 `overloaded` when the line is full (only for a new
   * arrival, never for one that already waited), 504 `queue_timeout` at the deadline, or the
   * signal's reason when the client goes away. A rejected waiter has always left the line.
   * `returning`: this request waited before (and holds `ticket` from then).
   */
  wait(
    model: string,
    signal: Abortable,
    options: { ticket: number; deadlineMs: number; nowMs: number; returning: boolean },
  ): Promise<void> {
    const { ticket, deadlineMs, nowMs, returning } = options;
    let line = this.#waiters.get(model);
    if (!returning && (line?.length ?? 0) >= this.#limits.maxQueued) {
      return Promise.reject(
        new CortexError(
          "overloaded",
          `model "${model}" is saturated and ${this.#limits.maxQueued} requests are already waiting for it; retry shortly`,
          { retryAfterS: this.#limits.retryAfterS },
        ),
      );
    }
    if (signal.aborted) return Promise.reject(signal.reason);
    if (!line) {
      line = [];
      this.#waiters.set(model, line);
    }
    const queue = line;
    return waitInLine<void, Waiter>(queue, (wake) => ({ ticket, wake }), signal, {
      deadlineMs,
      nowMs,
      timeout: () =>
        new CortexError(
          "queue_timeout",
          `model "${model}" stayed saturated for ${this.#limits.timeoutMs} ms while this request waited; retry later or add replicas`,
          { retryAfterS: this.#limits.retryAfterS },
        ),
      left: () => {
        if (queue.length === 0 && this.#waiters.get(model) === queue) this.#waiters.delete(model);
      },
    });
  }

  /** A slot of `model` was freed: the longest-waiting request tries again. */
  wakeOne(model: string): void {
    this.#waiters.get(model)?.[0]?.wake();
  }

  /** The fleet changed for `model` (a replica loaded, a node came back): everyone tries again. */
  wakeAll(model: string): void {
    const line = this.#waiters.get(model);
    if (line) for (const waiter of [...line]) waiter.wake();
  }

  /** Every model's waiters try again (a node's health changed). */
  wakeEveryone(): void {
    for (const model of [...this.#waiters.keys()]) this.wakeAll(model);
  }
}
