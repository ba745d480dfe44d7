import { NeuronError } from "../errors.js";

/**
 * At most `limit` jobs at once, the rest waiting in arrival order, at most `maxWaiting` of them:
 * one more is refused with 503 `overloaded` rather than queued without bound. Each header read
 * may hold tens of MB; this bounds what a flood of estimates can make the neuron hold.
 */
export class Slots {
  readonly #limit: number;
  readonly #maxWaiting: number;
  readonly #waiting: (() => void)[] = [];
  #running = 0;

  constructor(limit: number, maxWaiting = 64) {
    this.#limit = Math.max(1, limit);
    this.#maxWaiting = maxWaiting;
  }

  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit) {
      if (this.#waiting.length >= this.#maxWaiting) {
        throw new NeuronError("overloaded", "too many model estimates at once; try again shortly", {
          retryAfterS: 1,
        });
      }
      // The slot is handed over by the job that ends (#running stays counted for it).
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running += 1;
    }
    try {
      return await job();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running -= 1;
    }
  }
}
