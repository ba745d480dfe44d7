import { z } from "zod";
import { HarnessArgs } from "./catalogue.js";
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

export const DiscoveryAnswer = z.object({
  node: NodeInfo,
  devices: z.array(Device),
  harnesses: z.array(HarnessInfo),
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
});
export type NeuronModel = z.infer<typeof NeuronModel>;

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
