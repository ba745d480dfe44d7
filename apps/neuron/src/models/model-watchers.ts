import type { Log, ModelChange, ModelWatcher } from "./manager-deps.js";

/**
 * Whoever watches the models (the event stream), told of changes from inside status changes and
 * admissions: one watcher's failure is logged and never breaks them or the other watchers.
 */
export class ModelWatchers {
  readonly #watchers = new Set<ModelWatcher>();
  readonly #log: Log;

  constructor(log: Log) {
    this.#log = log;
  }

  /** Adds `watcher`; the returned function removes it. */
  add(watcher: ModelWatcher): () => void {
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }

  changed(change: ModelChange): void {
    this.#tell((watcher) => watcher.changed(change));
  }

  /** On every admission's hot path: free while nobody watches. */
  work(id: string): void {
    if (this.#watchers.size > 0) this.#tell((watcher) => watcher.work(id));
  }

  #tell(call: (watcher: ModelWatcher) => void): void {
    for (const watcher of this.#watchers) {
      try {
        call(watcher);
      } catch (error) {
        this.#log.error({ err: error }, "a model watcher failed");
      }
    }
  }
}
