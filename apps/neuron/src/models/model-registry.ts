import type { ModelStatus, NeuronModel } from "@cortex/protocol";
import { capText } from "../bounded-text.js";
import { FailedEntries } from "./failed-entries.js";
import type { GpuMemory, Log, ModelChange } from "./manager-deps.js";
import { canMove, describeEntry, type ModelEntry } from "./model-entry.js";

export interface RegistryDeps {
  readonly log: Log;
  readonly now: () => number;
  readonly onChange?: ((change: ModelChange) => void) | undefined;
  /** An entry forgotten here (an expired failure) lets go of what it holds (its idle timer). */
  readonly onForget: (entry: ModelEntry) => void;
  /** Measured GPU memory, for each model's `vram_used_mb`; absent, none is measured. */
  readonly memory?: Pick<GpuMemory, "usedBy"> | undefined;
}

/**
 * The models this node knows, by id, and the one place their status and error change: every
 * change is checked against the lifecycle's table (model-entry.ts) and announced. The
 * ModelManager owns it and takes every decision; this only keeps the books.
 */
export class ModelRegistry {
  readonly #deps: RegistryDeps;
  readonly #models = new Map<string, ModelEntry>();
  readonly #failed = new FailedEntries<ModelEntry>();

  constructor(deps: RegistryDeps) {
    this.#deps = deps;
  }

  get(id: string): ModelEntry | undefined {
    return this.#models.get(id);
  }

  /** Whether `entry` is still the one listed under its id. */
  holds(entry: ModelEntry): boolean {
    return this.#models.get(entry.spec.id) === entry;
  }

  entries(): ModelEntry[] {
    return [...this.#models.values()];
  }

  /** Every model, after forgetting the failures that have expired. */
  list(): NeuronModel[] {
    this.pruneFailed();
    return this.entries().map((entry) => describeEntry(entry, this.#deps.memory));
  }

  /** One model as `list` gives it (without pruning); undefined when it is not listed. */
  describe(id: string): NeuronModel | undefined {
    const entry = this.#models.get(id);
    return entry && describeEntry(entry, this.#deps.memory);
  }

  add(entry: ModelEntry): void {
    this.#models.set(entry.spec.id, entry);
  }

  /** Takes `entry` out of the list (if it still is the one listed); `announce` says it is gone. */
  remove(entry: ModelEntry, announce: boolean): void {
    if (this.holds(entry)) this.#models.delete(entry.spec.id);
    if (announce) this.announceRemoved(entry.spec.id);
  }

  announceRemoved(id: string): void {
    this.#deps.onChange?.({ id, removed: true });
  }

  /**
   * The one place a model's status changes: checked against the lifecycle's table, then
   * announced. A change the table does not allow is a bug; it is logged and not made.
   */
  setStatus(entry: ModelEntry, to: ModelStatus): boolean {
    if (!canMove(entry.status, to)) {
      this.#deps.log.error(
        { model: entry.spec.id, from: entry.status, to },
        "refused a status change the lifecycle does not allow",
      );
      return false;
    }
    entry.status = to;
    this.#deps.onChange?.(describeEntry(entry, this.#deps.memory));
    return true;
  }

  /** The one place a model's error is set: capped, since it may quote a source or harness output. */
  setError(entry: ModelEntry, error: string | null): void {
    entry.error = error === null ? null : capText(error);
  }

  markFailed(entry: ModelEntry, error: string): void {
    this.setError(entry, error);
    this.setStatus(entry, "failed");
    this.#failed.failed(entry, this.#deps.now());
    this.pruneFailed();
  }

  /** Forgets failed entries past their time or beyond the newest MAX_FAILED_ENTRIES. */
  pruneFailed(): void {
    const expired = this.#failed.expired(
      this.#deps.now(),
      (entry) => entry.status === "failed" && this.holds(entry),
      (entry) => entry.loading !== null,
    );
    for (const entry of expired) {
      this.#deps.onForget(entry);
      this.remove(entry, true);
    }
  }
}
