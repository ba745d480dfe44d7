import type { Abortable } from "@cortex/http-kit";
import type { LoadAnswer, LoadProgress, LoadRequest, NeuronModel } from "@cortex/protocol";
import { boundedError, capText } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import type { ModelSpec } from "../harnesses/model-spec.js";
import { HarnessSupervisor, type SupervisorDeps } from "../supervisor/harness-supervisor.js";
import { systemTimers, type Timers } from "../timers.js";
import { Admission, type AdmissionLimits } from "./admission.js";
import { CrashRecovery } from "./crash-recovery.js";
import { Departures } from "./departures.js";
import { harnessJob, supervisionOf } from "./harness-job.js";
import { evictionsFor, readAgainFor, specForLoad } from "./load-request.js";
import type { ManagerDeps, ManagerSettings, ModelWatcher } from "./manager-deps.js";
import { type ModelEntry, refuseBusy, sameSpec, trackLoading } from "./model-entry.js";
import { ModelRegistry } from "./model-registry.js";
import { ModelWatchers } from "./model-watchers.js";
import { type ProgressListener, ProgressListeners } from "./progress.js";
import { type HarnessWork, type ServeHooks, serve } from "./serve.js";
import { SwapQueue } from "./swap-queue.js";

export { FAILED_TTL_MS, MAX_FAILED_ENTRIES } from "./failed-entries.js";
export type {
  Log,
  ManagerDeps,
  ManagerSettings,
  ModelChange,
  ModelWatcher,
  SourcePreparer,
} from "./manager-deps.js";
export type { ProgressListener } from "./progress.js";

/**
 * The lifecycle of every model on this node: load (single-flight per id, with evictions to make
 * room), lazy reload, admission, idle unload, crash recovery, unload, shutdown. The decisions
 * are taken here, and every status change goes through the registry's setStatus; each model's
 * process is its HarnessSupervisor's. HTTP handlers only call these methods.
 */
export class ModelManager {
  readonly #deps: ManagerDeps;
  readonly #settings: ManagerSettings;
  readonly #timers: Timers;
  /** What every model's HarnessSupervisor runs on. */
  readonly #supervision: SupervisorDeps;
  readonly #models: ModelRegistry;
  /** Evictions, unloads and idle unloads: models leaving the GPU, forgotten or kept. */
  readonly #out: Departures;
  readonly #progress = new ProgressListeners();
  /** What a harness's crashes, restarts and giving up mean for its model. */
  readonly #crashes: CrashRecovery;
  /** Lazy reloads waiting for busy models to leave. */
  readonly #swaps: SwapQueue<ModelEntry>;
  #shuttingDown = false;
  readonly #watchers: ModelWatchers;

  constructor(deps: ManagerDeps, settings: ManagerSettings) {
    this.#deps = deps;
    this.#settings = settings;
    this.#timers = deps.timers ?? systemTimers;
    this.#watchers = new ModelWatchers(deps.log);
    this.#supervision = supervisionOf(
      deps,
      () => this.#now(),
      this.#timers,
      () => this.#memoryChanged(),
    );
    this.#models = new ModelRegistry({
      log: deps.log,
      now: () => this.#now(),
      onChange: (change) => {
        deps.onChange?.(change);
        this.#watchers.changed(change);
        this.#swaps.changed("removed" in change ? undefined : this.#models.get(change.id));
      },
      onForget: (entry) => this.#out.clearIdle(entry),
      memory: deps.gpuMemory,
    });
    this.#out = new Departures({
      models: this.#models,
      timers: this.#timers,
      log: deps.log,
      devices: deps.devices,
      ...(deps.gpuMemory ? { gpuMemory: deps.gpuMemory } : {}),
      progress: (id, progress) => this.#emit(id, progress),
    });
    this.#crashes = new CrashRecovery({
      models: this.#models,
      log: deps.log,
      clearIdle: (entry) => this.#out.clearIdle(entry),
      loaded: (entry) => this.#loaded(entry),
      active: () => !this.#shuttingDown,
    });
    this.#swaps = new SwapQueue({
      now: () => this.#now(),
      timers: this.#timers,
      log: deps.log,
      maxWaitMs: settings.swapMaxWaitMs,
      entries: () => this.#models.entries(),
      blockers: (entry) => evictionsFor(entry, this.#models.entries(), this.#deps, true),
      swapIn: (entry, evict) => this.#swapIn(entry, evict),
    });
  }

  readonly #serveHooks: ServeHooks = {
    now: () => this.#now(),
    reload: (entry) => {
      if (this.#shuttingDown) return undefined;
      // Its blockers are planned on the GPUs as read: a reading older than the last exit is
      // renewed first when they would refuse it or make busy models drain for nothing.
      const reading = readAgainFor(entry, this.#models.entries(), this.#deps, true);
      if (!reading) {
        this.#reload(entry);
        return undefined;
      }
      return reading.then(() => {
        // Meanwhile another request may have asked for it, or it may have been unloaded.
        if (this.#shuttingDown || !this.#models.holds(entry)) return;
        if (entry.status === "unloaded" && !entry.loading) this.#reload(entry);
      });
    },
    awaitLoad: (entry, signal, arrivedMs) =>
      this.#swaps.wait(entry, signal, arrivedMs + this.#settings.queueTimeoutMs),
    pauseIdle: (entry) => this.#out.clearIdle(entry),
    finished: (entry) => {
      this.#out.scheduleIdle(entry);
      this.#swaps.wake();
    },
  };

  #reload(entry: ModelEntry): void {
    this.#deps.log.info({ model: entry.spec.id }, "lazy reload");
    this.#swaps.request(entry);
  }

  /**
   * A harness exited, so GPU memory changed: the reading is stale until a new one (started now)
   * ends, and then a lazy reload waiting for room may fit without waiting for busy models.
   */
  #memoryChanged(): void {
    const memory = this.#deps.gpuMemory;
    if (!memory) return;
    memory.changed();
    // Shutting down, every harness exits and nothing more is decided: no reads for that.
    if (!this.#shuttingDown) void memory.refresh().then(() => this.#swaps.wake());
  }

  #now(): number {
    return this.#deps.now?.() ?? Date.now();
  }

  list(): NeuronModel[] {
    return this.#models.list();
  }

  /** One model as `list` gives it; undefined when the node does not hold it. */
  describe(id: string): NeuronModel | undefined {
    return this.#models.describe(id);
  }

  /** Status changes, forgotten models and in-flight changes from now on, until the call returned. */
  watch(watcher: ModelWatcher): () => void {
    return this.#watchers.add(watcher);
  }

  get(id: string): ModelEntry | undefined {
    return this.#models.get(id);
  }

  #emit(id: string, progress: Partial<LoadProgress> & Pick<LoadProgress, "phase">): void {
    this.#progress.emit(id, { bytes: null, total: null, message: null, ...progress });
  }

  /**
   * `POST /models/load`. Concurrent loads of one id share one load; a loaded model with the same
   * spec answers `already_loaded`; one with a different spec is replaced if idle.
   */
  async load(request: LoadRequest, onProgress?: ProgressListener): Promise<LoadAnswer> {
    if (this.#shuttingDown)
      throw new NeuronError("service_unavailable", "the neuron is shutting down", {
        retryAfterS: 5,
      });
    const spec = specForLoad(request, this.#deps, this.#settings.defaultIdleTtlS, {
      get: (id) => this.#models.get(id),
      others: (id) => this.list().filter((model) => model.id !== id),
    });

    const started = this.#now();
    // A model being evicted or unloaded is out of the map but its process is still stopping:
    // a new load of the id starts only once that process is gone.
    const leaving = this.#out.leaving(spec.id);
    if (leaving) await leaving.catch(() => {});
    const existing = this.#models.get(spec.id);
    const unlisten = onProgress ? this.#progress.listen(spec.id, onProgress) : () => {};
    try {
      if (existing?.loading) {
        // A lazy reload waiting for its swap is joined too: the swap then waits for this load.
        await this.#swaps.join(existing);
        return this.#answer(spec.id, started, false);
      }
      if (existing?.status === "loaded") {
        if (sameSpec(existing.spec, spec)) return this.#answer(spec.id, started, true);
        if (existing.admission.inFlight > 0) {
          throw new NeuronError(
            "model_busy",
            `model "${spec.id}" is loaded with another spec and busy; unload it first`,
            { retryAfterS: 5 },
          );
        }
      }
      const entry = existing ?? this.#newEntry(spec, request.residency_priority ?? 0);
      const priority = request.residency_priority ?? 0;
      // Stopping the old process (a changed spec) and starting the new one are one shared
      // operation, in place before the first await: a concurrent load of this id joins it
      // rather than starting a second harness.
      const previous = existing?.status === "loaded" ? existing : null;
      const reconfigure = () => {
        if (existing) {
          this.#out.clearIdle(existing);
          existing.spec = spec;
          existing.priority = priority;
          existing.admission = new Admission(spec.max_concurrency, this.#limits(spec.id));
        }
        this.#models.setError(entry, null);
        entry.harness.resetCrashes();
        this.#models.add(entry);
        this.#models.setStatus(entry, "loading");
      };
      const makeRoom = () => this.#out.evictFor(entry);
      if (previous) {
        trackLoading(
          entry,
          this.#out.stop(previous).then(() => {
            reconfigure();
            return this.#bringUp(entry, makeRoom);
          }),
        );
      } else {
        reconfigure();
        trackLoading(entry, this.#bringUp(entry, makeRoom));
      }
      await entry.loading;
      return this.#answer(spec.id, started, false);
    } finally {
      unlisten();
    }
  }

  #limits(id: string): AdmissionLimits {
    return {
      maxQueued: this.#settings.maxQueued,
      queueTimeoutMs: this.#settings.queueTimeoutMs,
      onChange: () => this.#watchers.work(id),
    };
  }

  #newEntry(spec: ModelSpec, priority: number): ModelEntry {
    const entry: ModelEntry = {
      spec,
      priority,
      status: "loading",
      harness: new HarnessSupervisor(
        harnessJob(
          () => entry.spec,
          { ...this.#deps, ...this.#settings, progress: this.#progress },
          (state) => this.#crashes.onHarness(entry, state),
        ),
        this.#supervision,
        this.#settings,
      ),
      admission: new Admission(spec.max_concurrency, this.#limits(spec.id)),
      loading: null,
      lastAccessedMs: null,
      loadedAtMs: null,
      error: null,
      idleTimer: null,
    };
    return entry;
  }

  #answer(id: string, started: number, already: boolean): LoadAnswer {
    const entry = this.#models.get(id);
    if (entry?.status !== "loaded") {
      throw new NeuronError("load_failed", entry?.error ?? `model "${id}" is not loaded`, {
        retryAfterS: 5,
      });
    }
    return {
      id,
      status: "loaded",
      url: this.#settings.selfUrl,
      load_ms: this.#now() - started,
      already_loaded: already,
    };
  }

  /**
   * Makes room (`makeRoom`, once the model's own previous process is gone), then has the
   * supervisor fetch the file, start the harness and wait for it. Failure marks it failed.
   */
  async #bringUp(entry: ModelEntry, makeRoom: () => Promise<void>): Promise<void> {
    const { spec } = entry;
    let started = false;
    try {
      await entry.harness.stopped;
      await makeRoom();
      started = true;
      await entry.harness.start();
      this.#loaded(entry);
    } catch (error) {
      const message = capText(error instanceof Error ? error.message : String(error));
      // The engine's own insufficient_vram (it ran out of memory starting) is a failed start
      // like any other: listed `failed`, with its line, for the operator to see.
      if (!started && error instanceof NeuronError && error.code === "insufficient_vram") {
        // Nothing was started: a first load leaves no trace, an `unloaded` model stays so.
        if (entry.loadedAtMs === null && entry.lastAccessedMs === null) {
          this.#models.remove(entry, true);
        } else this.#models.setStatus(entry, "unloaded");
      } else {
        this.#models.markFailed(entry, message);
      }
      this.#deps.log.warn({ model: spec.id, error: message }, "model load failed");
      if (error instanceof NeuronError) throw boundedError(error);
      throw new NeuronError("load_failed", `loading model "${spec.id}" failed: ${message}`, {
        cause: error,
        retryAfterS: 5,
      });
    }
  }

  /** The harness answers: the model is loaded (a first load, a reload or a restart). */
  #loaded(entry: ModelEntry): void {
    entry.loadedAtMs = this.#now();
    this.#models.setError(entry, null);
    this.#models.setStatus(entry, "loaded");
    this.#emit(entry.spec.id, { phase: "ready" });
    this.#deps.log.info(
      { model: entry.spec.id, devices: entry.spec.devices, url: entry.harness.url },
      "model loaded",
    );
    this.#out.scheduleIdle(entry);
  }

  /**
   * The swap queue's turn for a lazy reload of `entry`: it and its victims are claimed at once
   * (the victims kept `unloaded`, their processes stopping), then it loads.
   */
  #swapIn(entry: ModelEntry, evict: readonly string[]): Promise<void> {
    if (this.#shuttingDown || !this.#models.holds(entry) || entry.status !== "unloaded") {
      return Promise.reject(
        new NeuronError("service_unavailable", `model "${entry.spec.id}" is no longer waiting`, {
          retryAfterS: 5,
        }),
      );
    }
    this.#models.setStatus(entry, "loading");
    const stopped = this.#out.swapOut(entry.spec.id, evict);
    stopped.catch(() => {});
    return this.#bringUp(entry, () => stopped);
  }

  /** `POST /models/unload`: 409 while busy unless forced; the model is then forgotten. */
  async unload(id: string, force = false): Promise<void> {
    const entry = this.#models.get(id);
    if (!entry) throw new NeuronError("model_not_found", `model "${id}" is not on this node`);
    if (!force) refuseBusy(entry);
    this.#out.clearIdle(entry);
    // A lazy reload still waiting for its swap is not waited for: it ends here.
    this.#swaps.withdraw(
      entry,
      new NeuronError("service_unavailable", `model "${id}" was unloaded`, { retryAfterS: 5 }),
    );
    // A load under way finishes first; a crash recovery is not waited for: forgetting the
    // entry stops its supervisor, which cancels the pending restart.
    if (entry.loading && entry.status !== "recovering") await entry.loading.catch(() => {});
    // Requests admitted while it loaded run now: the busy check holds after the wait too.
    if (!force) refuseBusy(entry);
    await this.#out.forget(entry);
    this.#deps.log.info({ model: id, force }, "model unloaded");
  }

  /**
   * Runs `work` against the model's harness inside one admission slot: an `unloaded` model is
   * reloaded first, a loading or recovering one is waited for. The slot is released however the
   * work ends; the idle timer restarts when the last request finishes.
   */
  async run<T>(id: string, signal: Abortable | undefined, work: HarnessWork<T>): Promise<T> {
    const entry = this.#models.get(id);
    if (!entry)
      // `id` is whatever an inference body said, up to its 20 MB limit.
      throw new NeuronError(
        "model_not_found",
        `model "${capText(id, 256)}" is not on this node; load it first`,
        { param: "model" },
      );
    if (entry.status === "failed" && !entry.loading) {
      throw new NeuronError(
        "load_failed",
        `model "${id}" failed: ${entry.error ?? "unknown"}; load it again`,
      );
    }
    return serve(entry, signal, work, this.#serveHooks);
  }

  /** Stops every harness gracefully (neuron SIGTERM/SIGINT). */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    this.#swaps.close(
      new NeuronError("service_unavailable", "the neuron is shutting down", { retryAfterS: 5 }),
    );
    await Promise.all(
      this.#models.entries().map(async (entry) => {
        this.#out.clearIdle(entry);
        await this.#out.stop(entry);
      }),
    );
  }

  /** SIGKILLs every harness group synchronously; for process exit handlers. */
  killAllNow(): void {
    for (const entry of this.#models.entries()) entry.harness.killNow();
  }
}
