import type { ModelStatus, NeuronModel } from "@cortex/protocol";
import type { ModelSpec } from "../harnesses/model-spec.js";
import type { RunningProcess } from "../supervisor/process-runner.js";
import type { Admission } from "./admission.js";

/** Everything the neuron knows about one model id. Mutated only by the ModelManager. */
export interface ModelEntry {
  spec: ModelSpec;
  priority: number;
  status: ModelStatus;
  process: RunningProcess | null;
  /** Loopback base URL of the harness while it runs. */
  url: string | null;
  admission: Admission;
  /** The load or restart under way; concurrent callers share it. */
  loading: Promise<void> | null;
  lastAccessedMs: number | null;
  loadedAtMs: number | null;
  error: string | null;
  /** Consecutive crashes since the harness last ran stably. */
  crashes: number;
  idleTimer: NodeJS.Timeout | null;
  /** Set while the manager itself stops the process, so the exit is not taken for a crash. */
  stopping: boolean;
  /** The stop under way, which a reload waits for so two copies never hold memory at once. */
  stopped: Promise<void> | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export const describeEntry = (entry: ModelEntry): NeuronModel => ({
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
});
