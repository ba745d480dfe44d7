import { boundedError } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import type { ModelEntry } from "./model-entry.js";

interface Wait {
  readonly promise: Promise<void>;
  readonly settle: (error: NeuronError | null) => void;
}

/**
 * Those waiting for a crashed model's restart. While a model recovers, requests and loads wait
 * on its restart exactly as on a load: through `entry.loading`.
 */
export class RecoveryWaits {
  readonly #waits = new Map<ModelEntry, Wait>();

  /** A restart is pending: from now `entry.loading` settles when it is done or abandoned. */
  begin(entry: ModelEntry): void {
    let settle: Wait["settle"] = () => {};
    const promise = new Promise<void>((resolve, reject) => {
      settle = (error) => (error ? reject(boundedError(error)) : resolve());
    });
    // Nobody may be waiting: keep an unobserved failure from crashing the neuron.
    promise.catch(() => {});
    this.#waits.set(entry, { promise, settle });
    entry.loading = promise;
  }

  /** The restart succeeded (`error` null), failed or will never come: those waiting hear it. */
  end(entry: ModelEntry, error: NeuronError | null): void {
    const wait = this.#waits.get(entry);
    if (!wait) return;
    this.#waits.delete(entry);
    if (entry.loading === wait.promise) entry.loading = null;
    wait.settle(error);
  }

  /** The model was stopped (unloaded, evicted, shutdown): its restart will never come. */
  abandon(entry: ModelEntry): void {
    this.end(
      entry,
      new NeuronError("service_unavailable", `model "${entry.spec.id}" is no longer recovering`, {
        retryAfterS: 5,
      }),
    );
  }
}
