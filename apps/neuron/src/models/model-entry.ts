import { type ModelStatus, type NeuronModel, RESIDENT_STATUSES } from "@cortex/protocol";
import { NeuronError } from "../errors.js";
import type { ModelSpec } from "../harnesses/model-spec.js";
import type { HarnessSupervisor } from "../supervisor/harness-supervisor.js";
import type { TimerHandle } from "../timers.js";
import type { Admission } from "./admission.js";
import type { GpuMemory } from "./manager-deps.js";
import type { Candidate } from "./room.js";

/** Everything the neuron knows about one model id. Mutated only by the ModelManager. */
export interface ModelEntry {
  spec: ModelSpec;
  priority: number;
  /** Changed only through the manager's one transition, checked against TRANSITIONS. */
  status: ModelStatus;
  /** Its harness process: start, readiness, crash restarts, stop. */
  readonly harness: HarnessSupervisor;
  admission: Admission;
  /** The load or restart under way; concurrent callers share it. */
  loading: Promise<void> | null;
  lastAccessedMs: number | null;
  loadedAtMs: number | null;
  error: string | null;
  idleTimer: TimerHandle | null;
}

/**
 * The lifecycle (README "Lifecycle"): every status change a model may make. A change to the
 * same status (one more crash while recovering, a load joined) is an update, always allowed.
 *
 * - loading → loaded (ready), failed, unloaded (a load of an `unloaded` model short of memory)
 * - loaded → loading (loaded again with another spec), unloaded (idle TTL, evicted, swapped out
 *   by a lazy reload), recovering (its harness crashed), failed (crashed with no restart left)
 * - recovering → loaded (restarted), failed (gave up)
 * - failed, unloaded → loading (loaded again; the next request, for unloaded)
 */
export const TRANSITIONS: Readonly<Record<ModelStatus, readonly ModelStatus[]>> = {
  loading: ["loaded", "failed", "unloaded"],
  loaded: ["loading", "unloaded", "recovering", "failed"],
  recovering: ["loaded", "failed"],
  failed: ["loading"],
  unloaded: ["loading"],
};

export const canMove = (from: ModelStatus, to: ModelStatus): boolean =>
  from === to || TRANSITIONS[from].includes(to);

/** Statuses a swap may wait out: a loading model will be loaded, then drain like any other. */
const SWAPPABLE: ReadonlySet<ModelStatus> = new Set(["loaded", "loading"]);

/**
 * The requests a swap would wait out on `entry`: running and queued ones, a load under way
 * counting as one running (it will serve what waits for it first).
 */
export const workOf = (
  entry: Pick<ModelEntry, "status" | "loading" | "admission">,
): { running: number; queued: number } => ({
  running:
    entry.status === "loading" || entry.loading !== null
      ? Math.max(1, entry.admission.running)
      : entry.admission.running,
  queued: entry.admission.queued,
});

/** The entry as eviction planning sees it: idle means loaded, nothing running or waiting. */
export const candidateOf = (entry: ModelEntry): Candidate => {
  const work = workOf(entry);
  return {
    id: entry.spec.id,
    devices: entry.spec.devices,
    vram_mb: entry.spec.vram_mb,
    priority: entry.priority,
    lastUsedMs: entry.lastAccessedMs ?? entry.loadedAtMs ?? 0,
    idle: entry.status === "loaded" && entry.admission.inFlight === 0 && !entry.loading,
    work: SWAPPABLE.has(entry.status) ? work.running + work.queued : null,
  };
};

export const sameSpec = (a: ModelSpec, b: ModelSpec): boolean =>
  JSON.stringify(a) === JSON.stringify(b);

/** `unload` of a model with requests running or waiting needs `force`. */
export const refuseBusy = (entry: ModelEntry): void => {
  const busy = entry.admission.inFlight;
  if (busy > 0)
    throw new NeuronError(
      "model_busy",
      `model "${entry.spec.id}" has ${busy} request(s) in flight; wait, or unload with force: true`,
      { retryAfterS: 5 },
    );
};

/** Makes `work` the entry's one shared loading promise until it settles. */
export const trackLoading = (
  entry: { loading: Promise<void> | null },
  work: Promise<void>,
): Promise<void> => {
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
};

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** What the entry's harness holds on the GPUs, as measured; null when not resident or unmeasured. */
const measuredOf = (entry: ModelEntry, memory: Pick<GpuMemory, "usedBy"> | undefined) => {
  const group = entry.harness.pid;
  if (!memory || group === null || !RESIDENT_STATUSES.has(entry.status)) return null;
  return memory.usedBy(group);
};

/** The entry as `GET /models` lists it, with its measured memory when `memory` is given. */
export const describeEntry = (
  entry: ModelEntry,
  memory?: Pick<GpuMemory, "usedBy">,
): NeuronModel => {
  const used = measuredOf(entry, memory);
  return {
    id: entry.spec.id,
    harness: entry.spec.harness,
    status: entry.status,
    devices: [...entry.spec.devices],
    vram_mb: entry.spec.vram_mb,
    in_flight: entry.admission.running,
    queued: entry.admission.queued,
    max_concurrency: entry.spec.max_concurrency,
    last_accessed: iso(entry.lastAccessedMs),
    loaded_at: iso(entry.loadedAtMs),
    error: entry.error,
    vram_used_mb: used?.usedMb ?? null,
    vram_used_by_device: used?.byDevice?.map((share) => ({ ...share })) ?? null,
  };
};
