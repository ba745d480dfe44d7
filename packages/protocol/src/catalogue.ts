import { z } from "zod";
import {
  HarnessName,
  ModelAlias,
  ModelId,
  NodeName,
  NonNegativeInt,
  ownRecord,
  PositiveInt,
  TimerSeconds,
} from "./common.js";

export const Capability = z.enum(["chat", "completions", "embeddings"]);
export type Capability = z.infer<typeof Capability>;

/** Harness options: scalars or lists of scalars, validated by the harness that receives them. */
export const HarnessArgValue = z.union([
  z.string(),
  z.number(),
  z.boolean(),
  z.array(z.union([z.string(), z.number()])),
]);
export const HarnessArgs = ownRecord(
  z
    .string()
    .regex(/^[a-z][a-z0-9_-]{0,63}$/, "option names are lowercase snake_case or kebab-case"),
  HarnessArgValue,
);
export type HarnessArgs = z.infer<typeof HarnessArgs>;

const ModelProfileFields = z.strictObject({
  id: ModelId,
  aliases: z.array(ModelAlias).default([]),
  harness: HarnessName,
  source: z
    .string()
    .min(1, "must name a path, file://, https:// or hf: source")
    .max(4096, "must be at most 4096 characters"),
  quant: z.string().min(1).optional(),
  /**
   * Where the model computes. `gpu` (default) needs `min_devices` GPUs; `cpu` needs none
   * and is feasible on any allowed node, including hosts without a GPU.
   */
  runs_on: z.enum(["gpu", "cpu"]).default("gpu"),
  vram_mb: NonNegativeInt,
  min_devices: z
    .int()
    .min(1, "must be at least 1 (a model that needs no GPU says runs_on: cpu)")
    .default(1),
  min_device_vram_mb: NonNegativeInt.optional(),
  pinned_on: z.array(NodeName).default([]),
  residency_priority: z.int().min(0).max(1_000_000).default(0),
  max_concurrency: PositiveInt.max(1024).default(4),
  /**
   * Replicas cortex keeps loaded without waiting for a request, spread over distinct nodes when
   * it can. With more than 0, cortex manages the idle unload itself (never below this).
   */
  min_replicas: NonNegativeInt.max(1024).default(0),
  /** Replicas cortex may load when every one is at `max_concurrency` and requests wait. */
  max_replicas: PositiveInt.max(1024).default(1),
  idle_ttl_s: TimerSeconds.optional(),
  context_length: PositiveInt.optional(),
  capabilities: z.array(Capability).min(1).default(["chat", "completions"]),
  args: HarnessArgs.default({}),
});

/**
 * One catalogue entry. `min_device_vram_mb` defaults to the model's even share per device,
 * so a profile that omits it still cannot be placed on devices too small for its share.
 */
export const ModelProfile = ModelProfileFields.refine(
  (profile) => profile.min_replicas <= profile.max_replicas,
  { message: "min_replicas must not exceed max_replicas", path: ["min_replicas"] },
).transform((profile) => ({
  ...profile,
  min_device_vram_mb:
    profile.min_device_vram_mb ??
    (profile.runs_on === "cpu" ? 0 : Math.ceil(profile.vram_mb / profile.min_devices)),
}));
export type ModelProfile = z.output<typeof ModelProfile>;
export type ModelProfileInput = z.input<typeof ModelProfile>;

export const CatalogueFile = z.strictObject({
  models: z.array(ModelProfile).default([]),
});
export type CatalogueFile = z.output<typeof CatalogueFile>;
