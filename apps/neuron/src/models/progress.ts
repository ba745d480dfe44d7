import type { LoadProgress } from "@cortex/protocol";
import { capText } from "../bounded-text.js";

export type ProgressListener = (progress: LoadProgress) => void;

/** Who listens to the progress of each model id's load, and what they hear. */
export class ProgressListeners {
  readonly #byId = new Map<string, Set<ProgressListener>>();

  /** Adds `listener` for `id`; the returned function removes it. */
  listen(id: string, listener: ProgressListener): () => void {
    let listeners = this.#byId.get(id);
    if (!listeners) {
      listeners = new Set();
      this.#byId.set(id, listeners);
    }
    listeners.add(listener);
    return () => this.#byId.get(id)?.delete(listener);
  }

  emit(id: string, progress: LoadProgress): void {
    // Download messages name the source, which a load request may make a megabyte long.
    const message = progress.message === null ? null : capText(progress.message);
    for (const listener of this.#byId.get(id) ?? []) listener({ ...progress, message });
  }
}
