import type { Abortable } from "@cortex/http-kit";
import type { LoadAnswer, LoadProgress, LoadRequest, NeuronModel } from "@cortex/protocol";
import { boundedError, capText } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import type { ModelSpec } from "../harnesses/model-spec.js";
import {
  type HarnessState,
  HarnessSupervisor,
  type SupervisorDeps,
} from "../supervisor/harness-supervisor.js";
import { systemTimers, type Timers } from "../timers.js";
import { Admission } from "./admission.js";
import { harnessJob, supervisionOf } from "./harness-job.js";
import { evictionsFor, specForLoad } from "./load-request.js";
import type { ManagerDeps, ManagerSettings } from "./manager-deps.js";
import { type ModelEntry, refuseBusy, sameSpec, trackLoading } from "./model-entry.js";
import { ModelRegistry } from "./model-registry.js";
import { type ProgressListener, ProgressListeners } from "./progress.js";
import { RecoveryWaits } from "./recovery-waits.js";
import { type ServeHooks, serve } from "./serve.js";

export { FAILED_TTL_MS, MAX_FAILED_ENTRIES } from "./failed-entries.js";
export type {
  Log,
  ManagerDeps,
  ManagerSettings,
  ModelChange,
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
  /** Stops under way of models already forgotten (evicted or unloaded), by id. */
  readonly #leaving = new Map<string, Promise<unknown>>();
  readonly #progress = new ProgressListeners();
  readonly #recoveries = new RecoveryWaits();
  #shuttingDown = false;

  constructor(deps: ManagerDeps, settings: ManagerSettings) {
    this.#deps = deps;
    this.#settings = settings;
    this.#timers = deps.timers ?? systemTimers;
    this.#supervision = supervisionOf(deps, () => this.#now(), this.#timers);
    this.#models = new ModelRegistry({
      log: deps.log,
      now: () => this.#now(),
      onChange: deps.onChange,
      onForget: (entry) => this.#clearIdle(entry),
    });
  }

  readonly #serveHooks: ServeHooks = {
    now: () => this.#now(),
    reload: (entry) => {
      if (this.#shuttingDown) return;
      this.#deps.log.info({ model: entry.spec.id }, "lazy reload");
      this.#models.setStatus(entry, "loading");
      void this.#startLoad(entry, true).catch(() => {});
    },
    pauseIdle: (entry) => this.#clearIdle(entry),
    resumeIdle: (entry) => this.#scheduleIdle(entry),
  };

  #now(): number {
    return this.#deps.now?.() ?? Date.now();
  }

  list(): NeuronModel[] {
    return this.#models.list();
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
    const leaving = this.#leaving.get(spec.id);
    if (leaving) await leaving.catch(() => {});
    const existing = this.#models.get(spec.id);
    const unlisten = onProgress ? this.#progress.listen(spec.id, onProgress) : () => {};
    try {
      if (existing?.loading) {
        await existing.loading;
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
          this.#clearIdle(existing);
          existing.spec = spec;
          existing.priority = priority;
          existing.admission = new Admission(spec.max_concurrency, this.#limits());
        }
        this.#models.setError(entry, null);
        entry.harness.resetCrashes();
        this.#models.add(entry);
        this.#models.setStatus(entry, "loading");
      };
      if (previous) {
        trackLoading(
          entry,
          this.#stopHarness(previous).then(() => {
            reconfigure();
            return this.#bringUp(entry, true);
          }),
        );
      } else {
        reconfigure();
        this.#startLoad(entry, true);
      }
      await entry.loading;
      return this.#answer(spec.id, started, false);
    } finally {
      unlisten();
    }
  }

  #limits() {
    return { maxQueued: this.#settings.maxQueued, queueTimeoutMs: this.#settings.queueTimeoutMs };
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
          (state) => this.#onHarness(entry, state),
        ),
        this.#supervision,
        this.#settings,
      ),
      admission: new Admission(spec.max_concurrency, this.#limits()),
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

  /** Runs a (re)load as the entry's single shared promise; failure marks the model failed. */
  #startLoad(entry: ModelEntry, fresh: boolean): Promise<void> {
    return trackLoading(entry, this.#bringUp(entry, fresh));
  }

  /** Makes room, then has the supervisor fetch the file, start the harness and wait for it. */
  async #bringUp(entry: ModelEntry, fresh: boolean): Promise<void> {
    const { spec } = entry;
    try {
      await entry.harness.stopped;
      if (fresh) {
        // Synchronous from the check to the reservation: two loads can never both count the
        // same free memory, because this entry is already `loading` (and so resident) here.
        const evictions = this.#makeRoom(entry);
        if (evictions.length > 0) {
          this.#emit(spec.id, { phase: "evicting", message: `evicting ${evictions.join(", ")}` });
          await Promise.all(evictions.map((id) => this.#evict(id)));
        }
      }
      await entry.harness.start();
      this.#loaded(entry);
    } catch (error) {
      const message = capText(error instanceof Error ? error.message : String(error));
      if (error instanceof NeuronError && error.code === "insufficient_vram") {
        // Nothing was started: a first load leaves no trace, a lazy reload stays `unloaded`.
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
    this.#scheduleIdle(entry);
  }

  /**
   * What a model's harness does after a crash decides its status: restarts (`recovering`,
   * `loaded` again) and giving up (`failed`). Only a model held as running hears of them: one
   * claimed for eviction, unloaded or forgotten is being stopped anyway.
   */
  #onHarness(entry: ModelEntry, state: HarnessState): void {
    if (state.kind === "stopped") {
      this.#recoveries.abandon(entry);
      return;
    }
    const running = entry.status === "loaded" || entry.status === "recovering";
    if (this.#shuttingDown || !this.#models.holds(entry) || !running) return;
    const { id } = entry.spec;
    if (state.kind === "ready" && entry.status === "recovering") {
      this.#loaded(entry);
      this.#recoveries.end(entry, null);
    } else if (state.kind === "recovering") {
      // A restart that failed answers those waiting for it, as a failed load would; later
      // callers wait for the next one.
      const restartFailed = entry.status === "recovering";
      if (restartFailed) entry.loadedAtMs = null;
      this.#recoveries.end(
        entry,
        restartFailed ? new NeuronError("load_failed", state.reason, { retryAfterS: 5 }) : null,
      );
      this.#models.setError(
        entry,
        `${state.reason.split("\n")[0]}; restarting in ${state.inMs} ms (attempt ${state.attempt})`,
      );
      this.#deps.log.warn(
        { model: id, delay: state.inMs, reason: capText(state.reason) },
        "harness crashed, restarting",
      );
      this.#clearIdle(entry);
      this.#models.setStatus(entry, "recovering");
      this.#recoveries.begin(entry);
    } else if (state.kind === "failed") {
      this.#clearIdle(entry);
      this.#models.markFailed(entry, state.reason);
      this.#deps.log.error({ model: id, crashes: state.crashes }, "model failed");
      this.#recoveries.end(
        entry,
        new NeuronError("load_failed", capText(state.reason), { retryAfterS: 5 }),
      );
    }
  }

  /** Plans the evictions a fresh load needs (or throws insufficient_vram) and claims them. */
  #makeRoom(entry: ModelEntry): string[] {
    const evict = evictionsFor(entry, this.#models.entries(), this.#deps);
    // Claimed now, before any await, so a concurrent load cannot pick the same victims.
    for (const id of evict) {
      const victim = this.#models.get(id);
      if (victim) this.#models.setStatus(victim, "unloaded");
    }
    return evict;
  }

  async #evict(id: string): Promise<void> {
    const victim = this.#models.get(id);
    if (!victim) return;
    // An evicted model is forgotten, not kept as `unloaded`: reloading it lazily would take
    // back the memory just given to another model.
    await this.#forget(victim);
    this.#deps.log.info({ model: id }, "model evicted");
  }

  /**
   * Takes the entry out of the map at once (no request or load can reach it any more), then
   * stops its process; a load of the same id meanwhile waits for the stop (`#leaving`).
   */
  async #forget(entry: ModelEntry): Promise<void> {
    const id = entry.spec.id;
    this.#clearIdle(entry);
    this.#models.remove(entry, false);
    const stopping = this.#stopHarness(entry);
    this.#leaving.set(id, stopping);
    try {
      await stopping;
    } finally {
      if (this.#leaving.get(id) === stopping) this.#leaving.delete(id);
      this.#models.announceRemoved(id);
    }
  }

  /** Stops the harness, and a restart pending after a crash: it never starts. */
  #stopHarness(entry: ModelEntry): Promise<void> {
    entry.loadedAtMs = null;
    return entry.harness.stop();
  }

  #clearIdle(entry: ModelEntry): void {
    if (entry.idleTimer) this.#timers.clear(entry.idleTimer);
    entry.idleTimer = null;
  }

  #scheduleIdle(entry: ModelEntry): void {
    this.#clearIdle(entry);
    const ttl = entry.spec.idle_ttl_s;
    if (ttl <= 0 || entry.status !== "loaded") return;
    if (entry.admission.inFlight > 0) return;
    entry.idleTimer = this.#timers.set(() => void this.#idleUnload(entry), ttl * 1000);
  }

  async #idleUnload(entry: ModelEntry): Promise<void> {
    entry.idleTimer = null;
    if (entry.status !== "loaded" || entry.loading || entry.admission.inFlight > 0) return;
    this.#deps.log.info(
      { model: entry.spec.id, idle_ttl_s: entry.spec.idle_ttl_s },
      "idle: unloading",
    );
    this.#models.setStatus(entry, "unloaded");
    await this.#stopHarness(entry);
  }

  /** `POST /models/unload`: 409 while busy unless forced; the model is then forgotten. */
  async unload(id: string, force = false): Promise<void> {
    const entry = this.#models.get(id);
    if (!entry) throw new NeuronError("model_not_found", `model "${id}" is not on this node`);
    if (!force) refuseBusy(entry);
    this.#clearIdle(entry);
    // A load under way finishes first; a crash recovery is not waited for: forgetting the
    // entry stops its supervisor, which cancels the pending restart.
    if (entry.loading && entry.status !== "recovering") await entry.loading.catch(() => {});
    // Requests admitted while it loaded run now: the busy check holds after the wait too.
    if (!force) refuseBusy(entry);
    await this.#forget(entry);
    this.#deps.log.info({ model: id, force }, "model unloaded");
  }

  /**
   * Runs `work` against the model's harness inside one admission slot: an `unloaded` model is
   * reloaded first, a loading or recovering one is waited for. The slot is released however the
   * work ends; the idle timer restarts when the last request finishes.
   */
  async run<T>(
    id: string,
    signal: Abortable | undefined,
    work: (baseUrl: string) => Promise<T>,
  ): Promise<T> {
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
    await Promise.all(
      this.#models.entries().map(async (entry) => {
        this.#clearIdle(entry);
        await this.#stopHarness(entry);
      }),
    );
  }

  /** SIGKILLs every harness group synchronously; for process exit handlers. */
  killAllNow(): void {
    for (const entry of this.#models.entries()) entry.harness.killNow();
  }
}
