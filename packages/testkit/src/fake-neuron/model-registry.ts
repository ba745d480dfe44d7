import type { ServerResponse } from "node:http";
import {
  type Device,
  ENGINE_OUT_OF_MEMORY,
  ERROR_CODES,
  type ErrorCode,
  type HarnessInfo,
  type LoadAnswer,
  type LoadProgress,
  type LoadRequest,
  type ModelStatus,
  type NeuronModel,
  requestedMbText,
} from "@cortex/protocol";
import { FakeError } from "./http.js";
import { createMemory } from "./memory.js";

// The fake neuron's models, like apps/neuron/src/models on a small scale: one entry per model id
// with its lifecycle (loads, lazy reloads, failures, unloads) and its request slots.

export interface Entry {
  model: NeuronModel;
  running: number;
  readonly waiters: (() => void)[];
  loading: Promise<void> | null;
}

export interface ModelRegistryOptions {
  /** The neuron's name, for errors about tests that misuse it. */
  readonly name: string;
  readonly devices: readonly Device[];
  readonly harnesses: readonly HarnessInfo[];
  /** The models the neuron starts with. */
  readonly models: readonly NeuronModel[];
  readonly loadDelayMs: number;
  readonly sleep: (ms: number) => Promise<void>;
  /** Where the neuron is reached now, for load answers. */
  readonly selfUrl: () => string;
}

export interface ModelRegistry {
  readonly harnesses: readonly HarnessInfo[];
  /** Loads actually started per model id: fresh loads and lazy reloads, not joined ones. */
  readonly loadsStarted: Map<string, number>;
  get(id: string): Entry | undefined;
  /** What `GET /models` answers now. */
  models(): NeuronModel[];
  /** The devices with the memory free on them now, as discovery reports them. */
  devicesNow(): Device[];
  /** Requests inside the neuron for this model right now, running plus queued. */
  inFlight(id: string): number;
  /** Loads (or joins the load under way); throws a `FakeError` when it fails. */
  load(request: LoadRequest, onProgress?: (progress: LoadProgress) => void): Promise<LoadAnswer>;
  /** Starts a lazy reload of an unloaded model, as its entry's one shared load. */
  reload(entry: Entry): void;
  unload(id: string, force: boolean | undefined): Promise<void>;
  /** Takes one of the model's slots, queueing beyond max_concurrency; false if the client left. */
  acquire(entry: Entry, res: ServerResponse): Promise<boolean>;
  release(entry: Entry): void;
  setModels(models: readonly NeuronModel[]): void;
  setModelStatus(id: string, status: ModelStatus): void;
  failNextLoad(code: ErrorCode, message: string): void;
  /**
   * The next load fails as an engine that ran out of GPU memory while starting: the real
   * neuron's `insufficient_vram` with ENGINE_OUT_OF_MEMORY, `requested_mb=` and the line.
   */
  failNextLoadOutOfMemory(line: string, requestedMb?: number): void;
  /**
   * What the model holds on its GPUs once loaded (`vram_used_mb` in `GET /models`, and in the
   * free memory discovery reports), from now on and for every later load; null: not measured.
   */
  setVramUsed(id: string, mb: number | null): void;
  setLoadDelay(ms: number): void;
}

export const iso = (): string => new Date().toISOString();

export const bump = (counts: Map<string, number>, id: string) =>
  counts.set(id, (counts.get(id) ?? 0) + 1);

const entryOf = (model: NeuronModel): Entry => ({
  model: { ...model, devices: [...model.devices] },
  running: 0,
  waiters: [],
  loading: null,
});

const describeEntry = (entry: Entry): NeuronModel => ({
  ...entry.model,
  devices: [...entry.model.devices],
  in_flight: entry.running,
  queued: entry.waiters.length,
});

export const createModelRegistry = (options: ModelRegistryOptions): ModelRegistry => {
  const { devices, harnesses, sleep, selfUrl } = options;
  let loadDelayMs = options.loadDelayMs;
  const entries = new Map<string, Entry>();
  const loadsStarted = new Map<string, number>();
  /** Measured footprints tests set, by model id: reported once the model is loaded. */
  const footprints = new Map<string, number>();
  let nextFailure: FakeError | null = null;
  for (const model of options.models) entries.set(model.id, entryOf(model));
  const memory = createMemory(devices, entries);

  /** Starts a load as the entry's one shared promise; `created`: the load made the entry. */
  const runLoad = (entry: Entry, created: boolean): Promise<void> => {
    const { id } = entry.model;
    entry.model.status = "loading";
    entry.model.error = null;
    bump(loadsStarted, id);
    const failure = nextFailure;
    nextFailure = null;
    const loading = sleep(loadDelayMs).then(() => {
      entry.loading = null;
      if (failure) {
        if (failure.code === "load_failed") {
          entry.model.status = "failed";
          entry.model.error = failure.message;
        } else if (created && entries.get(id) === entry) entries.delete(id);
        else entry.model.status = "unloaded";
        throw failure;
      }
      entry.model.status = "loaded";
      entry.model.loaded_at = iso();
      const footprint = footprints.get(id);
      if (footprint !== undefined) entry.model.vram_used_mb = footprint;
    });
    entry.loading = loading;
    // Joiners await the same promise; an unobserved failure must not crash the process.
    loading.catch(() => {});
    return loading;
  };

  const load = async (request: LoadRequest, onProgress?: (p: LoadProgress) => void) => {
    const started = Date.now();
    const progress = (phase: LoadProgress["phase"], bytes: number | null = null) =>
      onProgress?.({ phase, bytes, total: bytes === null ? null : 1000, message: null });
    if (!harnesses.some((harness) => harness.name === request.harness)) {
      throw new FakeError("harness_not_found", `harness "${request.harness}" is not configured`, {
        param: "harness",
      });
    }
    let entry = entries.get(request.model_id);
    let already = false;
    progress("queued");
    if (entry?.loading) await entry.loading;
    else if (entry?.model.status === "loaded") already = true;
    else {
      const placed = memory.placeFor(request);
      const created = entry === undefined;
      const model: NeuronModel = {
        id: request.model_id,
        harness: request.harness,
        status: "loading",
        devices: placed,
        vram_mb: request.vram_mb ?? 0,
        in_flight: 0,
        queued: 0,
        max_concurrency: request.max_concurrency ?? 4,
        last_accessed: entry?.model.last_accessed ?? null,
        loaded_at: null,
        error: null,
      };
      if (entry) entry.model = model;
      else {
        entry = entryOf(model);
        entries.set(model.id, entry);
      }
      progress("downloading", 0);
      const loading = runLoad(entry, created);
      progress("downloading", 1000);
      progress("starting");
      await loading;
    }
    if (entry.model.status !== "loaded")
      throw new FakeError("load_failed", `model "${request.model_id}" is not loaded`, {
        retryAfterS: 5,
      });
    if (!already) progress("ready");
    const answer: LoadAnswer = {
      id: request.model_id,
      status: "loaded",
      url: selfUrl(),
      load_ms: Date.now() - started,
      already_loaded: already,
    };
    return answer;
  };

  const unload = async (id: string, force: boolean | undefined) => {
    const entry = entries.get(id);
    if (!entry) throw new FakeError("model_not_found", `model "${id}" is not on this node`);
    const busy = entry.running + entry.waiters.length;
    if (busy > 0 && force !== true) {
      throw new FakeError(
        "model_busy",
        `model "${id}" has ${busy} request(s) in flight; wait, or unload with force: true`,
        { retryAfterS: 5 },
      );
    }
    if (entry.loading) await entry.loading.catch(() => {});
    if (entries.get(id) === entry) entries.delete(id);
  };

  const acquire = (entry: Entry, res: ServerResponse): Promise<boolean> => {
    if (entry.running < entry.model.max_concurrency) {
      entry.running += 1;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const waiter = () => {
        res.off("close", onClose);
        entry.running += 1;
        resolve(true);
      };
      const onClose = () => {
        const at = entry.waiters.indexOf(waiter);
        if (at >= 0) entry.waiters.splice(at, 1);
        resolve(false);
      };
      entry.waiters.push(waiter);
      res.once("close", onClose);
    });
  };

  return {
    harnesses,
    loadsStarted,
    get: (id) => entries.get(id),
    models: () => [...entries.values()].map(describeEntry),
    devicesNow: () =>
      devices.map((device) => ({
        ...device,
        vram_free_mb: Math.max(0, Math.floor(memory.freeOn(device, null))),
      })),
    inFlight: (id) => {
      const entry = entries.get(id);
      return entry ? entry.running + entry.waiters.length : 0;
    },
    load,
    reload: (entry) => {
      runLoad(entry, false);
    },
    unload,
    acquire,
    release: (entry) => {
      entry.running -= 1;
      entry.waiters.shift()?.();
    },
    setModels: (models) => {
      entries.clear();
      for (const model of models) entries.set(model.id, entryOf(model));
    },
    setModelStatus: (id, status) => {
      const entry = entries.get(id);
      if (!entry) throw new Error(`fake neuron ${options.name} has no model "${id}"`);
      entry.model.status = status;
      if (status === "loaded" && entry.model.loaded_at === null) entry.model.loaded_at = iso();
    },
    failNextLoadOutOfMemory: (line, requestedMb) => {
      const requested = requestedMb === undefined ? "" : ` (${requestedMbText(requestedMb)})`;
      nextFailure = new FakeError(
        "insufficient_vram",
        `model loading: ${ENGINE_OUT_OF_MEMORY}${requested}: "${line}"; the harness exited with code 1 before it was ready`,
        { retryAfterS: 5 },
      );
    },
    setVramUsed: (id, mb) => {
      if (mb === null) footprints.delete(id);
      else footprints.set(id, mb);
      const entry = entries.get(id);
      if (entry?.model.status === "loaded") entry.model.vram_used_mb = mb;
    },
    failNextLoad: (code, message) => {
      nextFailure = new FakeError(
        code,
        message,
        ERROR_CODES[code].retryable ? { retryAfterS: 5 } : {},
      );
    },
    setLoadDelay: (ms) => {
      loadDelayMs = ms;
    },
  };
};
