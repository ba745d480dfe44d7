import { capText } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import type { HarnessState } from "../supervisor/harness-supervisor.js";
import type { Log } from "./manager-deps.js";
import type { ModelEntry } from "./model-entry.js";
import type { ModelRegistry } from "./model-registry.js";
import { RecoveryWaits } from "./recovery-waits.js";

export interface CrashDeps {
  readonly models: ModelRegistry;
  readonly log: Log;
  /** A model no longer idles out while it recovers or has failed. */
  readonly clearIdle: (entry: ModelEntry) => void;
  /** The harness answers again after a restart: the model is loaded. */
  readonly loaded: (entry: ModelEntry) => void;
  /** False once the neuron shuts down: a crash then changes nothing. */
  readonly active: () => boolean;
}

/** The ModelManager's decisions about a model whose harness crashed, restarted or gave up. */
export class CrashRecovery {
  readonly #deps: CrashDeps;
  /** Those waiting for a restart, through `entry.loading`. */
  readonly #waits = new RecoveryWaits();

  constructor(deps: CrashDeps) {
    this.#deps = deps;
  }

  /**
   * What a model's harness does after a crash decides its status: restarts (`recovering`,
   * `loaded` again) and giving up (`failed`). Only a model held as running hears of them: one
   * claimed for eviction, unloaded or forgotten is being stopped anyway.
   */
  onHarness(entry: ModelEntry, state: HarnessState): void {
    if (state.kind === "stopped") {
      this.#waits.abandon(entry);
      return;
    }
    const running = entry.status === "loaded" || entry.status === "recovering";
    if (!this.#deps.active() || !this.#deps.models.holds(entry) || !running) return;
    const { id } = entry.spec;
    if (state.kind === "ready" && entry.status === "recovering") {
      this.#deps.loaded(entry);
      this.#waits.end(entry, null);
    } else if (state.kind === "recovering") {
      // A restart that failed answers those waiting for it, as a failed load would; later
      // callers wait for the next one.
      const restartFailed = entry.status === "recovering";
      if (restartFailed) entry.loadedAtMs = null;
      this.#waits.end(
        entry,
        restartFailed ? new NeuronError("load_failed", state.reason, { retryAfterS: 5 }) : null,
      );
      this.#deps.models.setError(
        entry,
        `${state.reason.split("\n")[0]}; restarting in ${state.inMs} ms (attempt ${state.attempt})`,
      );
      this.#deps.log.warn(
        { model: id, delay: state.inMs, reason: capText(state.reason) },
        "harness crashed, restarting",
      );
      this.#deps.clearIdle(entry);
      this.#deps.models.setStatus(entry, "recovering");
      this.#waits.begin(entry);
    } else if (state.kind === "failed") {
      this.#deps.clearIdle(entry);
      this.#deps.models.markFailed(entry, state.reason);
      this.#deps.log.error({ model: id, crashes: state.crashes }, "model failed");
      this.#waits.end(
        entry,
        new NeuronError("load_failed", capText(state.reason), { retryAfterS: 5 }),
      );
    }
  }
}
