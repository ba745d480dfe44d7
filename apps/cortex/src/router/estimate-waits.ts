import type { Abortable } from "@cortex/http-kit";
import { CortexError } from "../errors.js";
import { estimatePending } from "./memory-gate.js";
import { type LineWaiter, waitInLine } from "./waiting-line.js";

type Waiter = LineWaiter<void>;

export interface EstimateWaitLimits {
  /** Requests that may wait per model; one more is refused with 503 `overloaded`. */
  readonly maxQueued: number;
  readonly retryAfterS: number;
}

/**
 * Requests for a model whose GPU memory is still being estimated (a catalogue entry without
 * `vram_mb`), per model. Like the admission queue, waiting is only a pause: a woken request
 * decides again, and one still without a figure waits again with its first deadline.
 */
export class EstimateWaits {
  readonly #lines = new Map<string, Waiter[]>();
  readonly #limits: EstimateWaitLimits;

  constructor(limits: EstimateWaitLimits) {
    this.#limits = limits;
  }

  /** Requests waiting by model, for the admin API. */
  depths(): ReadonlyMap<string, number> {
    const depths = new Map<string, number>();
    for (const [model, line] of this.#lines) depths.set(model, line.length);
    return depths;
  }

  /**
   * Resolves when the model's figure changes (known, refused); rejects with 503 `overloaded`
   * when too many wait (a new arrival only), 503 `service_unavailable` at the deadline, naming
   * why the estimate is not in (`detail`), or the signal's reason when the client goes away.
   */
  wait(
    model: string,
    signal: Abortable,
    options: {
      ticket: number;
      deadlineMs: number;
      nowMs: number;
      returning: boolean;
      detail: string | null;
    },
  ): Promise<void> {
    let line = this.#lines.get(model);
    if (!options.returning && (line?.length ?? 0) >= this.#limits.maxQueued)
      return Promise.reject(
        new CortexError(
          "overloaded",
          `${this.#limits.maxQueued} requests already wait for the GPU memory estimate of model "${model}"; retry shortly`,
          { retryAfterS: this.#limits.retryAfterS },
        ),
      );
    if (signal.aborted) return Promise.reject(signal.reason);
    if (!line) {
      line = [];
      this.#lines.set(model, line);
    }
    const queue = line;
    return waitInLine<void, Waiter>(queue, (wake) => ({ ticket: options.ticket, wake }), signal, {
      deadlineMs: options.deadlineMs,
      nowMs: options.nowMs,
      timeout: () => estimatePending(model, options.detail),
      left: () => {
        if (queue.length === 0 && this.#lines.get(model) === queue) this.#lines.delete(model);
      },
    });
  }

  /** The model's figure changed: everyone waiting for it decides again. */
  wake(model: string): void {
    const line = this.#lines.get(model);
    if (line) for (const waiter of [...line]) waiter.wake();
  }
}
