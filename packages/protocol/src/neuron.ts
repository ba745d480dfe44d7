import { z } from "zod";
import { HarnessArgs, LabelMap } from "./catalogue.js";
import {
  HarnessName,
  IsoTime,
  ModelId,
  NodeName,
  NonNegativeInt,
  PositiveInt,
  TimerSeconds,
} from "./common.js";

// Answers are parsed leniently (unknown fields are dropped) so a newer neuron can talk to an
// older cortex; requests and config are strict, so a typo is an error rather than a no-op.

export const HealthStatus = z.enum(["ok", "starting", "stopping"]);

export const HealthAnswer = z.object({
  status: HealthStatus,
  version: z.string(),
  uptime_s: z.number().nonnegative(),
});
export type HealthAnswer = z.infer<typeof HealthAnswer>;

export const Device = z.object({
  index: NonNegativeInt,
  vendor: z.string(),
  name: z.string(),
  vram_total_mb: NonNegativeInt,
  vram_free_mb: NonNegativeInt,
  utilization_pct: z.number().min(0).max(100).nullable(),
  temperature_c: z.number().nullable(),
  bus_id: z.string().nullable(),
  driver_version: z.string().nullable(),
});
export type Device = z.infer<typeof Device>;

export const NodeInfo = z.object({
  name: NodeName,
  hostname: z.string(),
  os: z.string(),
  kernel: z.string(),
  cpu: z.string(),
  memory_mb: NonNegativeInt,
});
export type NodeInfo = z.infer<typeof NodeInfo>;

export const HarnessKind = z.enum(["builtin", "llama-server", "vllm", "template"]);
export type HarnessKind = z.infer<typeof HarnessKind>;

export const HarnessInfo = z.object({
  name: HarnessName,
  kind: HarnessKind,
});
export type HarnessInfo = z.infer<typeof HarnessInfo>;

/** The most files a neuron lists in `sources`; past it the list says it is incomplete. */
export const MAX_HELD_FILES = 2000;

/** One complete file under a neuron's models_dir. */
export const HeldFile = z.object({
  /** Relative to models_dir, `/`-separated: itself a `path` source naming this file there. */
  path: z.string().min(1).max(4096),
  size_bytes: NonNegativeInt,
});
export type HeldFile = z.infer<typeof HeldFile>;

/**
 * The model weights a neuron already holds on disk, so cortex can place cold loads where no
 * download is needed and `path` sources only where the file is. Cortex maps each catalogue
 * source to the file the neuron would use (`hf:` and `https:` downloads land under `hf/` and
 * `downloads/`) and looks it up here.
 */
export const HeldSources = z.object({
  /** The neuron's models_dir, absolute: what an absolute `path` source is read against. */
  models_dir: z.string().min(1).max(4096),
  /** Complete files only: a download still in progress (`.partial`) is not listed. */
  files: z.array(HeldFile).max(MAX_HELD_FILES),
  /**
   * False when the scan stopped at a bound (files, depth, time) or skipped a folder it could not
   * read or a symlinked one: a file not listed may still be there.
   */
  complete: z.boolean(),
});
export type HeldSources = z.infer<typeof HeldSources>;

export const DiscoveryAnswer = z.object({
  node: NodeInfo,
  devices: z.array(Device),
  harnesses: z.array(HarnessInfo),
  /** Always sent by this neuron; optional so that an older neuron's answer still parses. */
  sources: HeldSources.optional(),
  /**
   * neuron.yaml `labels`, which a catalogue entry's `node_selector` matches. Always sent by this
   * neuron (`{}` when none); optional so that an older neuron's answer still parses.
   */
  labels: LabelMap.optional(),
});
export type DiscoveryAnswer = z.infer<typeof DiscoveryAnswer>;

/**
 * `unloaded`: known, not resident, reloads lazily on the next request.
 * `recovering`: the harness died and is being restarted with backoff.
 * `failed`: gave up until someone loads it again; `error` says why.
 */
export const ModelStatus = z.enum(["loading", "loaded", "unloaded", "recovering", "failed"]);
export type ModelStatus = z.infer<typeof ModelStatus>;

/** Statuses in which a model holds (or is about to hold) memory on its devices. */
export const RESIDENT_STATUSES: ReadonlySet<ModelStatus> = new Set([
  "loading",
  "loaded",
  "recovering",
]);

export const NeuronModel = z.object({
  id: ModelId,
  harness: HarnessName,
  status: ModelStatus,
  devices: z.array(NonNegativeInt),
  vram_mb: NonNegativeInt,
  in_flight: NonNegativeInt,
  queued: NonNegativeInt,
  max_concurrency: PositiveInt,
  last_accessed: IsoTime.nullable(),
  loaded_at: IsoTime.nullable(),
  error: z.string().nullable(),
  /**
   * What the model's harness really holds on the GPUs as last read (nvidia-smi's per-process
   * memory, summed over the harness's process group), next to the declared `vram_mb`. Null
   * where it cannot be measured: a CPU-only host, a GPU tool without per-process figures, a
   * model not resident. Optional only so that older neurons' answers still parse.
   */
  vram_used_mb: NonNegativeInt.nullable().optional(),
  /** The same, per device index the harness holds memory on; null when `vram_used_mb` is. */
  vram_used_by_device: z
    .array(z.object({ index: NonNegativeInt, used_mb: NonNegativeInt }))
    .nullable()
    .optional(),
});
export type NeuronModel = z.infer<typeof NeuronModel>;

/**
 * The words every `insufficient_vram` load failure caused by the engine itself carries (its
 * output had an out-of-memory line when it failed to start), as opposed to the neuron's own
 * refusal before starting anything. Cortex tells the two apart by them.
 */
export const ENGINE_OUT_OF_MEMORY = "the engine ran out of GPU memory while starting";

/** How such a message states what the engine tried to allocate, when its line said. */
export const requestedMbText = (requestedMb: number): string => `requested_mb=${requestedMb}`;

/**
 * Reads an engine out-of-memory failure from an error message: null when the message is not
 * one, else what the engine tried to allocate in MB (null when its line did not say).
 */
export const engineOutOfMemory = (message: string): { requested_mb: number | null } | null => {
  if (!message.includes(ENGINE_OUT_OF_MEMORY)) return null;
  const stated = /\brequested_mb=(\d{1,9})\b/.exec(message);
  return { requested_mb: stated?.[1] === undefined ? null : Number(stated[1]) };
};

export const ModelsAnswer = z.array(NeuronModel);
export type ModelsAnswer = z.infer<typeof ModelsAnswer>;

export const LoadRequest = z.strictObject({
  model_id: ModelId,
  harness: HarnessName,
  source: z.string().min(1).max(4096, "must be at most 4096 characters"),
  quant: z.string().min(1).optional(),
  devices: z
    .array(NonNegativeInt)
    .refine((devices) => new Set(devices).size === devices.length, "must not repeat a device")
    .optional(),
  tensor_parallel: PositiveInt.optional(),
  vram_mb: NonNegativeInt.optional(),
  max_concurrency: PositiveInt.max(1024).optional(),
  idle_ttl_s: TimerSeconds.optional(),
  context_length: PositiveInt.optional(),
  args: HarnessArgs.optional(),
  /** Residents of equal or lower priority may be evicted to make room (default 0). */
  residency_priority: z.int().min(0).max(1_000_000).optional(),
});
export type LoadRequest = z.infer<typeof LoadRequest>;

export const LoadAnswer = z.object({
  id: ModelId,
  status: z.literal("loaded"),
  url: z.string(),
  load_ms: z.number().nonnegative(),
  already_loaded: z.boolean(),
});
export type LoadAnswer = z.infer<typeof LoadAnswer>;

/** Phases a load goes through; streamed as `event: progress` when the caller accepts SSE. */
export const LoadPhase = z.enum(["queued", "evicting", "downloading", "starting", "ready"]);
export type LoadPhase = z.infer<typeof LoadPhase>;

export const LoadProgress = z.object({
  phase: LoadPhase,
  bytes: NonNegativeInt.nullable(),
  total: NonNegativeInt.nullable(),
  message: z.string().nullable(),
});
export type LoadProgress = z.infer<typeof LoadProgress>;

/**
 * Server-sent events of a streamed load, one per `event:` name: any number of `progress`,
 * then exactly one `result` or `error` (an OpenAI error envelope).
 */
export const LoadStreamEventName = z.enum(["progress", "result", "error"]);

export const UnloadRequest = z.strictObject({
  model_id: ModelId,
  force: z.boolean().optional(),
});
export type UnloadRequest = z.infer<typeof UnloadRequest>;

export const UnloadAnswer = z.object({ status: z.literal("unloaded") });
export type UnloadAnswer = z.infer<typeof UnloadAnswer>;

export const EndpointAnswer = z.object({ url: z.string() });
export type EndpointAnswer = z.infer<typeof EndpointAnswer>;
