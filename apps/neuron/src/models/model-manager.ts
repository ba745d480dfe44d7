import { type Abortable, unlessAborted } from "@cortex/http-kit";
import type { Device, LoadAnswer, LoadProgress, LoadRequest, NeuronModel } from "@cortex/protocol";
import { boundedError, capText } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import type { Harness } from "../harnesses/definitions.js";
import { type ModelSpec, specOf } from "../harnesses/model-spec.js";
import type { PidRecords } from "../supervisor/pid-records.js";
import type { ExitStatus, ProcessRunner, RunningProcess } from "../supervisor/process-runner.js";
import { Admission, AdmissionError } from "./admission.js";
import { describeEntry, type ModelEntry } from "./model-entry.js";
import { pickDevices, planRoom } from "./room.js";

export type ProgressListener = (progress: LoadProgress) => void;

/** Turns a catalogue source into a local file path, downloading it when needed. */
export interface SourcePreparer {
  /** Throws a NeuronError for a source that may never be used (outside models_dir, bad URL). */
  check(source: string): void;
  prepare(source: string, onProgress: ProgressListener, signal?: AbortSignal): Promise<string>;
}

export interface Log {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}

export interface ManagerSettings {
  /** The neuron's own base URL, as it sees itself (answers of load and endpoint). */
  readonly selfUrl: string;
  readonly defaultIdleTtlS: number;
  readonly stopGraceMs: number;
  /** Readiness deadline for a model of `sizeMb` (it grows with the model). */
  readonly readyTimeoutMs: (sizeMb: number) => number;
  readonly readyPollMs: number;
  /** Delay before each restart after a crash; one more crash than entries means `failed`. */
  readonly restartDelaysMs: readonly number[];
  /** A harness that ran this long before crashing starts its crash count afresh. */
  readonly stableAfterMs: number;
  readonly maxQueued: number;
  readonly queueTimeoutMs: number;
  /** Environment every harness gets (CUDA_DEVICE_ORDER=PCI_BUS_ID). */
  readonly harnessEnv: Readonly<Record<string, string>>;
}

export interface ManagerDeps {
  readonly harnesses: ReadonlyMap<string, Harness>;
  readonly runner: ProcessRunner;
  readonly sources: SourcePreparer;
  /** The latest discovered devices (answered from the discovery cache, never waiting). */
  readonly devices: () => readonly Device[];
  readonly freePort: () => Promise<number>;
  /** One readiness check: does `url` answer 2xx now? */
  readonly probe: (url: string) => Promise<boolean>;
  readonly log: Log;
  readonly pids?: PidRecords;
  readonly now?: () => number;
  readonly onChange?: (model: NeuronModel | { id: string; removed: true }) => void;
}

const HOST = "127.0.0.1";

/**
 * Failed models stay listed (with their error) so an operator can see why, but not forever: a
 * caller retrying loads under new ids once filled /models with hundreds of them. Beyond this
 * many the oldest failures are forgotten, and any failure is forgotten after FAILED_TTL_MS.
 */
export const MAX_FAILED_ENTRIES = 32;
export const FAILED_TTL_MS = 60 * 60_000;

const sameSpec = (a: ModelSpec, b: ModelSpec): boolean => JSON.stringify(a) === JSON.stringify(b);

const describeExit = (status: ExitStatus): string =>
  status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });

/**
 * The lifecycle of every model on this node: load (single-flight per id, with evictions to make
 * room), lazy reload, admission, idle unload, crash recovery, unload, shutdown. Every state
 * change happens here; HTTP handlers only call these methods.
 */
export class ModelManager {
  readonly #deps: ManagerDeps;
  readonly #settings: ManagerSettings;
  readonly #models = new Map<string, ModelEntry>();
  /** Stops under way of models already forgotten (evicted or unloaded), by id. */
  readonly #leaving = new Map<string, Promise<unknown>>();
  readonly #progress = new Map<string, Set<ProgressListener>>();
  /** When each failed entry failed, oldest first (a new failure moves it to the end). */
  readonly #failedAt = new Map<ModelEntry, number>();
  #shuttingDown = false;

  constructor(deps: ManagerDeps, settings: ManagerSettings) {
    this.#deps = deps;
    this.#settings = settings;
  }

  #now(): number {
    return this.#deps.now?.() ?? Date.now();
  }

  list(): NeuronModel[] {
    this.#pruneFailed();
    return [...this.#models.values()].map(describeEntry);
  }

  /** The one place a model's error is set: capped, since it may quote a source or harness output. */
  #setError(entry: ModelEntry, error: string | null): void {
    entry.error = error === null ? null : capText(error);
  }

  #markFailed(entry: ModelEntry, error: string): void {
    entry.status = "failed";
    this.#setError(entry, error);
    this.#failedAt.delete(entry);
    this.#failedAt.set(entry, this.#now());
    this.#pruneFailed();
  }

  /**
   * Forgets failed entries older than FAILED_TTL_MS, then the oldest beyond MAX_FAILED_ENTRIES.
   * One being loaded again (or whose failure is still settling) is left alone; one that is no
   * longer failed, or already gone, just leaves the list.
   */
  #pruneFailed(): void {
    const now = this.#now();
    let excess = -MAX_FAILED_ENTRIES;
    for (const entry of this.#failedAt.keys()) {
      if (entry.status === "failed" && this.#models.get(entry.spec.id) === entry) excess += 1;
      else this.#failedAt.delete(entry);
    }
    for (const [entry, at] of this.#failedAt) {
      if (entry.loading) continue;
      if (excess <= 0 && now - at < FAILED_TTL_MS) continue;
      excess -= 1;
      this.#failedAt.delete(entry);
      this.#clearTimers(entry);
      this.#models.delete(entry.spec.id);
      this.#deps.onChange?.({ id: entry.spec.id, removed: true });
    }
  }

  get(id: string): ModelEntry | undefined {
    return this.#models.get(id);
  }

  #changed(entry: ModelEntry): void {
    this.#deps.onChange?.(describeEntry(entry));
  }

  #emit(id: string, progress: LoadProgress): void {
    // Download messages name the source, which a load request may make a megabyte long.
    const message = progress.message === null ? null : capText(progress.message);
    for (const listener of this.#progress.get(id) ?? []) listener({ ...progress, message });
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
    const harness = this.#deps.harnesses.get(request.harness);
    if (!harness) {
      throw new NeuronError(
        "harness_not_found",
        `harness "${request.harness}" is not configured on this node (configured: ${[...this.#deps.harnesses.keys()].join(", ") || "none"})`,
        { param: "harness" },
      );
    }
    let spec = specOf(request, this.#settings.defaultIdleTtlS);
    const problems = harness.check(spec);
    if (problems.length > 0)
      throw new NeuronError(
        "invalid_request_error",
        capText(problems.map((problem) => problem.message).join("; ")),
        { param: problems[0]?.param ?? "args" },
      );
    // Before anything is evicted: a load with a bad source must change nothing.
    try {
      this.#deps.sources.check(spec.source);
    } catch (error) {
      throw error instanceof NeuronError ? boundedError(error) : error;
    }
    const devices = this.#deps.devices();
    const unknown = spec.devices.filter(
      (index) => !devices.some((device) => device.index === index),
    );
    if (unknown.length > 0) {
      throw new NeuronError(
        "invalid_request_error",
        capText(
          `device(s) ${unknown.join(", ")} do not exist on this node (it has ${devices.map((d) => d.index).join(", ") || "none"})`,
        ),
        { param: "devices" },
      );
    }
    if (request.devices === undefined && spec.vram_mb > 0 && devices.length > 0) {
      const count = Math.min(spec.tensor_parallel, devices.length);
      // A model already here keeps its devices: the GPUs report its own memory as used, so a
      // fresh pick would see other devices as freer and move it for nothing.
      const here = this.#models.get(spec.id);
      const picked =
        here && here.status !== "unloaded" && here.spec.devices.length === count
          ? [...here.spec.devices]
          : pickDevices(
              devices,
              this.list().filter((model) => model.id !== spec.id),
              count,
            );
      spec = { ...spec, devices: picked, tensor_parallel: Math.max(1, picked.length) };
    }

    const started = this.#now();
    // A model being evicted or unloaded is out of the map but its process is still stopping:
    // a new load of the id starts only once that process is gone.
    const leaving = this.#leaving.get(spec.id);
    if (leaving) await leaving.catch(() => {});
    const existing = this.#models.get(spec.id);
    if (onProgress) this.#listen(spec.id, onProgress);
    try {
      if (existing?.loading) {
        await existing.loading;
        return this.#answer(spec.id, started, false);
      }
      if (existing?.status === "loaded") {
        if (sameSpec(existing.spec, spec)) return this.#answer(spec.id, started, true);
        if (existing.admission.running + existing.admission.queued > 0) {
          throw new NeuronError(
            "model_busy",
            `model "${spec.id}" is loaded with another spec and busy; unload it first`,
            {
              retryAfterS: 5,
            },
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
          this.#clearTimers(existing);
          existing.spec = spec;
          existing.priority = priority;
          existing.admission = new Admission(spec.max_concurrency, this.#limits());
        }
        entry.status = "loading";
        this.#setError(entry, null);
        entry.crashes = 0;
        this.#models.set(spec.id, entry);
        this.#changed(entry);
      };
      if (previous) {
        this.#track(
          entry,
          this.#stopProcess(previous).then(() => {
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
      if (onProgress) this.#progress.get(spec.id)?.delete(onProgress);
    }
  }

  #listen(id: string, listener: ProgressListener): void {
    let listeners = this.#progress.get(id);
    if (!listeners) {
      listeners = new Set();
      this.#progress.set(id, listeners);
    }
    listeners.add(listener);
  }

  #limits() {
    return { maxQueued: this.#settings.maxQueued, queueTimeoutMs: this.#settings.queueTimeoutMs };
  }

  #newEntry(spec: ModelSpec, priority: number): ModelEntry {
    return {
      spec,
      priority,
      status: "loading",
      process: null,
      url: null,
      admission: new Admission(spec.max_concurrency, this.#limits()),
      loading: null,
      lastAccessedMs: null,
      loadedAtMs: null,
      error: null,
      crashes: 0,
      idleTimer: null,
      stopping: false,
      stopped: null,
    };
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
    return this.#track(entry, this.#bringUp(entry, fresh));
  }

  /** Makes `work` the entry's one shared loading promise until it settles. */
  #track(entry: ModelEntry, work: Promise<void>): Promise<void> {
    const loading = work.then(
      () => {
        entry.loading = null;
      },
      (error: unknown) => {
        entry.loading = null;
        throw error;
      },
    );
    entry.loading = loading;
    // Callers that join later await the same promise; keep an unobserved failure from crashing.
    loading.catch(() => {});
    return loading;
  }

  /** Makes room, fetches the file, starts the harness and waits until it answers. */
  async #bringUp(entry: ModelEntry, fresh: boolean): Promise<void> {
    const { spec } = entry;
    const emit = (progress: Partial<LoadProgress> & Pick<LoadProgress, "phase">) =>
      this.#emit(spec.id, { bytes: null, total: null, message: null, ...progress });
    try {
      if (entry.stopped) await entry.stopped;
      if (fresh) {
        // Synchronous from the check to the reservation: two loads can never both count the
        // same free memory, because this entry is already `loading` (and so resident) here.
        const evictions = this.#makeRoom(entry);
        if (evictions.length > 0) {
          emit({ phase: "evicting", message: `evicting ${evictions.join(", ")}` });
          await Promise.all(evictions.map((id) => this.#evict(id)));
        }
      }
      const modelPath = await this.#deps.sources.prepare(spec.source, (progress) =>
        this.#emit(spec.id, progress),
      );
      emit({ phase: "starting", message: `starting ${spec.harness}` });
      await this.#launch(entry, modelPath);
      entry.status = "loaded";
      entry.loadedAtMs = this.#now();
      this.#setError(entry, null);
      emit({ phase: "ready" });
      this.#deps.log.info(
        { model: spec.id, devices: spec.devices, url: entry.url },
        "model loaded",
      );
      this.#changed(entry);
      this.#scheduleIdle(entry);
    } catch (error) {
      const message = capText(error instanceof Error ? error.message : String(error));
      if (error instanceof NeuronError && error.code === "insufficient_vram") {
        // Nothing was started: a first load leaves no trace, a lazy reload stays `unloaded`.
        if (entry.loadedAtMs === null && entry.lastAccessedMs === null)
          this.#models.delete(spec.id);
        else entry.status = "unloaded";
      } else {
        this.#markFailed(entry, message);
      }
      this.#deps.log.warn({ model: spec.id, error: message }, "model load failed");
      this.#changed(entry);
      if (error instanceof NeuronError) throw boundedError(error);
      throw new NeuronError("load_failed", `loading model "${spec.id}" failed: ${message}`, {
        cause: error,
        retryAfterS: 5,
      });
    }
  }

  /** Plans the evictions a fresh load needs, or throws insufficient_vram with the numbers. */
  #makeRoom(entry: ModelEntry): string[] {
    const { spec } = entry;
    if (spec.devices.length === 0 || spec.vram_mb === 0) return [];
    const others = [...this.#models.values()].filter((other) => other !== entry);
    const plan = planRoom(
      this.#deps.devices(),
      others.map(describeEntry),
      spec.devices,
      spec.vram_mb,
      entry.priority,
      others.map((other) => ({
        id: other.spec.id,
        devices: other.spec.devices,
        vram_mb: other.spec.vram_mb,
        priority: other.priority,
        lastUsedMs: other.lastAccessedMs ?? other.loadedAtMs ?? 0,
        idle:
          other.status === "loaded" &&
          other.admission.running + other.admission.queued === 0 &&
          !other.loading,
      })),
    );
    if ("message" in plan) {
      throw new NeuronError("insufficient_vram", `model "${spec.id}" ${plan.message}`, {
        retryAfterS: 5,
      });
    }
    // Claimed now, before any await, so a concurrent load cannot pick the same victims.
    for (const id of plan.evict) {
      const victim = this.#models.get(id);
      if (victim) victim.status = "unloaded";
    }
    return plan.evict;
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
    this.#clearTimers(entry);
    if (this.#models.get(id) === entry) this.#models.delete(id);
    const stopping = this.#stopProcess(entry);
    this.#leaving.set(id, stopping);
    try {
      await stopping;
    } finally {
      if (this.#leaving.get(id) === stopping) this.#leaving.delete(id);
      this.#deps.onChange?.({ id, removed: true });
    }
  }

  async #launch(entry: ModelEntry, modelPath: string): Promise<void> {
    const { spec } = entry;
    const harness = this.#deps.harnesses.get(spec.harness);
    if (!harness)
      throw new NeuronError("harness_not_found", `harness "${spec.harness}" is not configured`);
    const port = await this.#deps.freePort();
    const launch = harness.launch({ spec, modelPath, port, host: HOST });
    // Only what the harness inherits (the system allow-list and its inherit_env), never the
    // neuron's whole environment: see harnesses/environment.ts.
    const env = {
      ...launch.inherited,
      ...this.#settings.harnessEnv,
      ...launch.env,
      // An empty list hides every GPU from a CPU model's harness.
      CUDA_VISIBLE_DEVICES: spec.devices.join(","),
    };
    const child = this.#deps.runner.start(launch, env);
    this.#record(() =>
      this.#deps.pids?.add({
        pid: child.pid,
        model: spec.id,
        started_at: new Date(this.#now()).toISOString(),
      }),
    );
    entry.process = child;
    entry.url = `http://${HOST}:${port}`;
    entry.stopping = false;
    void child.exited.then((status) => this.#onExit(entry, child, status));
    try {
      await this.#waitReady(child, `${entry.url}${launch.readyPath}`, spec);
    } catch (error) {
      entry.stopping = true;
      await child.stop(this.#settings.stopGraceMs);
      this.#record(() => this.#deps.pids?.remove(child.pid));
      entry.process = null;
      entry.url = null;
      throw error;
    }
  }

  /**
   * Pid records are a safety net for reaping after a crash: failing to write them (a full or
   * read-only state_dir) is logged, never allowed to break a load or a stop.
   */
  #record(write: () => void): void {
    try {
      write();
    } catch (error) {
      this.#deps.log.error({ err: error }, "could not update the harness pid records");
    }
  }

  async #waitReady(child: RunningProcess, url: string, spec: ModelSpec): Promise<void> {
    const deadline = this.#now() + this.#settings.readyTimeoutMs(spec.vram_mb);
    for (;;) {
      if (child.hasExited()) {
        const status = await child.exited;
        throw new NeuronError(
          "load_failed",
          `harness ${describeExit(status)} before it was ready; last output:\n${child.output.tail(15)}`,
          { retryAfterS: 5 },
        );
      }
      if (await this.#deps.probe(url).catch(() => false)) return;
      if (this.#now() > deadline) {
        throw new NeuronError(
          "load_failed",
          `harness was not ready within ${this.#settings.readyTimeoutMs(spec.vram_mb)} ms; last output:\n${child.output.tail(15)}`,
          {
            retryAfterS: 5,
          },
        );
      }
      await Promise.race([sleep(this.#settings.readyPollMs), child.exited]);
    }
  }

  /** A harness that exits on its own is restarted with backoff, then given up on. */
  #onExit(entry: ModelEntry, child: RunningProcess, status: ExitStatus): void {
    if (entry.process !== child || entry.stopping || this.#shuttingDown) return;
    this.#record(() => this.#deps.pids?.remove(child.pid));
    entry.process = null;
    entry.url = null;
    if (entry.status !== "loaded") return; // a failed start is handled by #launch
    this.#crashed(entry, `harness ${describeExit(status)}; last output:\n${child.output.tail(10)}`);
  }

  #crashed(entry: ModelEntry, reason: string): void {
    const now = this.#now();
    if (entry.loadedAtMs !== null && now - entry.loadedAtMs > this.#settings.stableAfterMs)
      entry.crashes = 0;
    entry.crashes += 1;
    const delay = this.#settings.restartDelaysMs[entry.crashes - 1];
    this.#clearTimers(entry);
    if (delay === undefined) {
      this.#markFailed(entry, `gave up after ${entry.crashes} crashes: ${reason}`);
      this.#deps.log.error({ model: entry.spec.id, crashes: entry.crashes }, "model failed");
      this.#changed(entry);
      return;
    }
    entry.status = "recovering";
    this.#setError(
      entry,
      `${reason.split("\n")[0]}; restarting in ${delay} ms (attempt ${entry.crashes})`,
    );
    this.#deps.log.warn(
      { model: entry.spec.id, delay, reason: capText(reason) },
      "harness crashed, restarting",
    );
    this.#changed(entry);
    const recovery = (async () => {
      await sleep(delay);
      if (
        this.#shuttingDown ||
        this.#models.get(entry.spec.id) !== entry ||
        entry.status !== "recovering"
      ) {
        throw new NeuronError(
          "service_unavailable",
          `model "${entry.spec.id}" is no longer recovering`,
          { retryAfterS: 5 },
        );
      }
      try {
        await this.#bringUp(entry, false);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        entry.loadedAtMs = null;
        this.#crashed(entry, message);
        throw error;
      }
    })();
    const shared: Promise<void> = recovery.finally(() => {
      if (entry.loading === shared) entry.loading = null;
    });
    shared.catch(() => {});
    entry.loading = shared;
  }

  #clearTimers(entry: ModelEntry): void {
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = null;
  }

  #scheduleIdle(entry: ModelEntry): void {
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = null;
    const ttl = entry.spec.idle_ttl_s;
    if (ttl <= 0 || entry.status !== "loaded") return;
    if (entry.admission.running + entry.admission.queued > 0) return;
    entry.idleTimer = setTimeout(() => void this.#idleUnload(entry), ttl * 1000);
    entry.idleTimer.unref();
  }

  async #idleUnload(entry: ModelEntry): Promise<void> {
    entry.idleTimer = null;
    if (
      entry.status !== "loaded" ||
      entry.loading ||
      entry.admission.running + entry.admission.queued > 0
    )
      return;
    this.#deps.log.info(
      { model: entry.spec.id, idle_ttl_s: entry.spec.idle_ttl_s },
      "idle: unloading",
    );
    entry.status = "unloaded";
    await this.#stopProcess(entry);
    this.#changed(entry);
  }

  #stopProcess(entry: ModelEntry): Promise<void> {
    const child = entry.process;
    entry.loadedAtMs = null;
    if (!child) return entry.stopped ?? Promise.resolve();
    entry.stopping = true;
    entry.process = null;
    entry.url = null;
    const stopped = child.stop(this.#settings.stopGraceMs).then(() => {
      this.#record(() => this.#deps.pids?.remove(child.pid));
      if (entry.stopped === stopped) entry.stopped = null;
    });
    entry.stopped = stopped;
    return stopped;
  }

  /** `POST /models/unload`: 409 while busy unless forced; the model is then forgotten. */
  async unload(id: string, force = false): Promise<void> {
    const entry = this.#models.get(id);
    if (!entry) throw new NeuronError("model_not_found", `model "${id}" is not on this node`);
    const busy = entry.admission.running + entry.admission.queued;
    if (busy > 0 && !force) {
      throw new NeuronError(
        "model_busy",
        `model "${id}" has ${busy} request(s) in flight; wait, or unload with force: true`,
        {
          retryAfterS: 5,
        },
      );
    }
    this.#clearTimers(entry);
    // A load under way finishes first; a crash recovery is not waited for: once the entry is
    // forgotten, the pending restart finds it gone and does not start.
    if (entry.loading && entry.status !== "recovering") await entry.loading.catch(() => {});
    // Requests admitted while it loaded run now: the busy check holds after the wait too.
    const busyNow = entry.admission.running + entry.admission.queued;
    if (busyNow > 0 && !force) {
      throw new NeuronError(
        "model_busy",
        `model "${id}" has ${busyNow} request(s) in flight; wait, or unload with force: true`,
        { retryAfterS: 5 },
      );
    }
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
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = null;
    try {
      return await entry.admission.run(async () => {
        entry.lastAccessedMs = this.#now();
        // A loaded model (the hot path) goes straight to its harness.
        const url =
          entry.status === "loaded" && entry.url
            ? entry.url
            : await this.#whenLoaded(entry, signal);
        try {
          return await work(url);
        } finally {
          entry.lastAccessedMs = this.#now();
        }
      }, signal);
    } catch (error) {
      if (error instanceof AdmissionError) {
        throw new NeuronError(error.code, `model "${id}": ${error.message}`, { retryAfterS: 1 });
      }
      throw error;
    } finally {
      this.#scheduleIdle(entry);
    }
  }

  async #whenLoaded(entry: ModelEntry, signal: Abortable | undefined): Promise<string> {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (entry.status === "loaded" && entry.url) return entry.url;
      if (entry.status === "unloaded" && !entry.loading && !this.#shuttingDown) {
        this.#deps.log.info({ model: entry.spec.id }, "lazy reload");
        entry.status = "loading";
        this.#changed(entry);
        void this.#startLoad(entry, true).catch(() => {});
      }
      if (entry.loading) {
        await unlessAborted(entry.loading, signal);
        continue;
      }
      break;
    }
    if (entry.status === "loaded" && entry.url) return entry.url;
    throw new NeuronError(
      "service_unavailable",
      `model "${entry.spec.id}" is ${entry.status}${entry.error ? `: ${entry.error}` : ""}`,
      {
        retryAfterS: 5,
      },
    );
  }

  /** Stops every harness gracefully (neuron SIGTERM/SIGINT). */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    await Promise.all(
      [...this.#models.values()].map(async (entry) => {
        this.#clearTimers(entry);
        await this.#stopProcess(entry);
      }),
    );
  }

  /** SIGKILLs every harness group synchronously; for process exit handlers. */
  killAllNow(): void {
    for (const entry of this.#models.values()) {
      entry.stopping = true;
      entry.process?.killNow();
    }
  }
}
