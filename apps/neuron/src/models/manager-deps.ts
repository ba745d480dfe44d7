import type { LevelLog } from "@cortex/http-kit";
import type { Device, NeuronModel } from "@cortex/protocol";
import type { GroupMemory } from "../discovery/gpu-processes.js";
import type { Harness } from "../harnesses/definitions.js";
import type { PidRecords } from "../supervisor/pid-records.js";
import type { ProcessRunner } from "../supervisor/process-runner.js";
import type { Timers } from "../timers.js";
import type { ProgressListener } from "./progress.js";

// What the ModelManager is given: its side effects, behind small interfaces, and its settings.

/** Turns a catalogue source into a local file path, downloading it when needed. */
export interface SourcePreparer {
  /** Throws a NeuronError for a source that may never be used (outside models_dir, bad URL). */
  check(source: string): void;
  prepare(source: string, onProgress: ProgressListener, signal?: AbortSignal): Promise<string>;
}

/** The neuron's modules log at the levels an operator sees (the shared Log, less debug). */
export type Log = LevelLog;

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
  /** `health_interval_ms`: every loaded harness's ready path is probed this often (0: never). */
  readonly healthIntervalMs: number;
  /** `unhealthy_after_failures`: failed probes in a row after which a harness is killed and recovered. */
  readonly unhealthyAfterFailures: number;
  readonly maxQueued: number;
  readonly queueTimeoutMs: number;
  /**
   * `swap_max_wait_ms`: how long a lazy reload waits for busy models before they drain (take
   * no new requests) and are swapped out for it.
   */
  readonly swapMaxWaitMs: number;
  /** Environment every harness gets (CUDA_DEVICE_ORDER=PCI_BUS_ID). */
  readonly harnessEnv: Readonly<Record<string, string>>;
}

export type ModelChange = NeuronModel | { id: string; removed: true };

/** What `ModelManager.watch` tells a watcher (the event stream): changes as they happen. */
export interface ModelWatcher {
  /** A status change (with the model as it is then), or a model forgotten. */
  readonly changed: (change: ModelChange) => void;
  /** The model's running or queued requests changed; `describe(id)` says how many now. */
  readonly work: (id: string) => void;
}

/**
 * What the GPUs really hold, and how fresh the reading is (the discovery cache). Load decisions
 * read free memory from `devices`; this says whether that reading predates the last exit.
 */
export interface GpuMemory {
  /** What a harness's process group held on the GPUs at the last read; null if unmeasured. */
  usedBy(group: number): GroupMemory | null;
  /** A harness exited: readings begun before now are stale. */
  changed(): void;
  /** Whether the devices come from a reading begun after the last change. */
  fresh(): boolean;
  /** Reads again (a reading begun after the last change); never rejects. */
  refresh(): Promise<void>;
}

export interface ManagerDeps {
  readonly harnesses: ReadonlyMap<string, Harness>;
  readonly runner: ProcessRunner;
  readonly sources: SourcePreparer;
  /** The latest discovered devices (answered from the discovery cache, never waiting). */
  readonly devices: () => readonly Device[];
  /**
   * Measured memory and fresh readings. Without it no model's `vram_used_mb` is measured and
   * loads are decided on whatever `devices` says, however old.
   */
  readonly gpuMemory?: GpuMemory;
  readonly freePort: () => Promise<number>;
  /** One readiness or liveness check: does `url` answer 2xx now? `signal` ends it early. */
  readonly probe: (url: string, signal?: AbortSignal) => Promise<boolean>;
  readonly log: Log;
  readonly pids?: PidRecords;
  readonly now?: () => number;
  /** Restart backoff, idle TTL and readiness polls run on these (default: the global ones). */
  readonly timers?: Timers;
  /** Hears every status change (with the model as it is then) and every model forgotten. */
  readonly onChange?: (change: ModelChange) => void;
}
