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

/** The most names `strip_params` and keys `set_params` may have, each. */
export const MAX_FILTER_PARAMS = 64;
/** The largest `set_params` value, serialised as JSON, in bytes. */
export const MAX_FILTER_VALUE_BYTES = 16 * 1024;
/** How deeply a `set_params` value may nest objects and arrays (a scalar is 0 deep). */
export const MAX_FILTER_VALUE_DEPTH = 8;

/** Members of a request body cortex decides itself, which no filter may touch. */
const RESERVED_PARAMS: Readonly<Record<string, string>> = {
  model: "`model` is set by cortex (the model that answers)",
  stream: "`stream` decides the answer's framing: it stays the client's",
};

/** The longest name of a member a filter strips or sets. */
export const MAX_FILTER_PARAM_LENGTH = 128;

/** Why `name` may not be a filter's, or null when it may. */
const paramProblem = (name: string): string | null => {
  if (name.length === 0 || name.length > MAX_FILTER_PARAM_LENGTH)
    return `names are 1 to ${MAX_FILTER_PARAM_LENGTH} characters`;
  const reserved = Object.hasOwn(RESERVED_PARAMS, name) ? RESERVED_PARAMS[name] : undefined;
  return reserved === undefined ? null : `may not name ${name}: ${reserved}`;
};

/** A top-level member of a request body a filter strips. */
const FilterParam = z.string().superRefine((name, ctx) => {
  const problem = paramProblem(name);
  if (problem !== null) ctx.addIssue({ code: "custom", message: problem, input: name });
});

/**
 * Why `value` is not a JSON value a filter may set (null, a boolean, a finite number, a string,
 * or arrays and plain objects of them, at most MAX_FILTER_VALUE_DEPTH deep, no `__proto__`
 * key), or null when it is one. Iterative, so a deep value cannot overflow the stack.
 */
const jsonValueProblem = (value: unknown): string | null => {
  const pending: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value: item, depth } = next;
    if (item === null || typeof item === "string" || typeof item === "boolean") continue;
    if (typeof item === "number") {
      if (!Number.isFinite(item)) return "numbers must be finite";
      continue;
    }
    if (typeof item !== "object") return `a ${typeof item} is not a JSON value`;
    if (depth >= MAX_FILTER_VALUE_DEPTH)
      return `values may nest objects and arrays at most ${MAX_FILTER_VALUE_DEPTH} deep`;
    if (Array.isArray(item)) {
      for (const element of item) pending.push({ value: element, depth: depth + 1 });
      continue;
    }
    const prototype = Object.getPrototypeOf(item);
    if (prototype !== Object.prototype && prototype !== null) return "values must be plain JSON";
    if (Object.hasOwn(item, "__proto__")) return '"__proto__" is not an accepted name';
    for (const member of Object.values(item)) pending.push({ value: member, depth: depth + 1 });
  }
  return null;
};

// TextEncoder rather than Buffer: the dashboard bundles this package for the browser.
const utf8 = new TextEncoder();

/** A value `set_params` writes into a request body: JSON, bounded in depth and size. */
const FilterValue = z.unknown().superRefine((value, ctx) => {
  const problem = value === undefined ? "a value is required" : jsonValueProblem(value);
  if (problem !== null) {
    ctx.addIssue({ code: "custom", message: problem, input: value });
    return;
  }
  if (utf8.encode(JSON.stringify(value)).length > MAX_FILTER_VALUE_BYTES)
    ctx.addIssue({
      code: "custom",
      message: `must be at most ${MAX_FILTER_VALUE_BYTES} bytes as JSON`,
      input: value,
    });
});

/**
 * Per-model request filters (llama-swap's `filters`): cortex removes the top-level members of a
 * JSON request body named in `strip_params` and sets those of `set_params` (replacing the
 * client's), for the model that answers, before forwarding. `model` and `stream` are cortex's
 * and the client's, never a filter's; a name in both lists is an error.
 */
export const RequestFilters = z
  .strictObject({
    strip_params: z
      .array(FilterParam)
      .max(MAX_FILTER_PARAMS, `must name at most ${MAX_FILTER_PARAMS} parameters`)
      .default([]),
    // Keys are checked here rather than by the record's key schema, whose failure zod reports
    // only as "Invalid key in record".
    set_params: ownRecord(z.string(), FilterValue)
      .superRefine((params, ctx) => {
        const names = Object.keys(params);
        if (names.length > MAX_FILTER_PARAMS)
          ctx.addIssue({
            code: "custom",
            message: `must set at most ${MAX_FILTER_PARAMS} parameters`,
            input: params,
          });
        for (const name of names) {
          const problem = paramProblem(name);
          if (problem !== null)
            ctx.addIssue({ code: "custom", message: problem, path: [name], input: name });
        }
      })
      .default({}),
  })
  .superRefine((filters, ctx) => {
    for (const [index, name] of filters.strip_params.entries())
      if (Object.hasOwn(filters.set_params, name))
        ctx.addIssue({
          code: "custom",
          message: `"${name}" is both stripped and set: keep it in one of strip_params and set_params`,
          path: ["strip_params", index],
          input: name,
        });
  });
export type RequestFilters = z.output<typeof RequestFilters>;

/** The most labels a node reports, and the most a `node_selector` names. */
export const MAX_LABELS = 32;
/** The longest label key or value. */
export const MAX_LABEL_LENGTH = 63;
const LABEL_TEXT = /^[A-Za-z0-9._/-]+$/;

/** Why `text` cannot be a label key or value, or null when it can. */
const labelProblem = (text: string, what: "keys" | "values"): string | null =>
  text.length === 0 || text.length > MAX_LABEL_LENGTH || !LABEL_TEXT.test(text)
    ? `label ${what} are 1 to ${MAX_LABEL_LENGTH} characters of letters, digits, '.', '_', '/' or '-'`
    : null;

/**
 * Labels of a node (neuron.yaml `labels: {gpu: a100, zone: eu}`, reported in `/discovery`) and
 * a catalogue entry's `node_selector`, which only nodes whose labels hold every pair of it may
 * run. Bounded (MAX_LABELS pairs of short text) because a neuron's answer and a catalogue file
 * are read into every routing decision. Checked here rather than by the record's key schema,
 * whose failure zod reports only as "Invalid key in record".
 */
export const LabelMap = ownRecord(z.string(), z.string()).superRefine((labels, ctx) => {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS)
    ctx.addIssue({
      code: "custom",
      message: `must have at most ${MAX_LABELS} labels`,
      input: labels,
    });
  for (const key of keys) {
    const problem = labelProblem(key, "keys") ?? labelProblem(labels[key] ?? "", "values");
    if (problem !== null)
      ctx.addIssue({ code: "custom", message: problem, path: [key], input: labels[key] });
  }
});
export type LabelMap = z.output<typeof LabelMap>;

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
  /** Applied by cortex to this model's JSON request bodies; none when absent. */
  filters: RequestFilters.optional(),
  /**
   * Only nodes whose labels (neuron.yaml `labels`) hold every pair of this map may run the
   * model: `{gpu: a100}` keeps it on A100 hosts. Absent or empty: any node.
   */
  node_selector: LabelMap.optional(),
});

/** Both shapes refuse more replicas kept than allowed, at `min_replicas`. */
const replicasInOrder = {
  check: (profile: { min_replicas: number; max_replicas: number }) =>
    profile.min_replicas <= profile.max_replicas,
  params: { message: "min_replicas must not exceed max_replicas", path: ["min_replicas"] },
};

/**
 * A model as routing places it: `vram_mb` is the GPU memory placement counts for it, and
 * `min_device_vram_mb` defaults to the model's even share per device, so a profile that omits
 * it still cannot be placed on devices too small for its share. Cortex builds these from the
 * catalogue's entries and what it has learnt of each model's memory (its effective figure).
 */
export const ModelProfile = ModelProfileFields.refine(
  replicasInOrder.check,
  replicasInOrder.params,
).transform((profile) => ({
  ...profile,
  min_device_vram_mb:
    profile.min_device_vram_mb ??
    (profile.runs_on === "cpu" ? 0 : Math.ceil(profile.vram_mb / profile.min_devices)),
}));
export type ModelProfile = z.output<typeof ModelProfile>;
export type ModelProfileInput = z.input<typeof ModelProfile>;

/**
 * One catalogue entry as written. `vram_mb` is optional: without it cortex asks a neuron to
 * estimate the model's GPU memory from its GGUF header (`POST /models/estimate`) and places it
 * once the estimate is in; a `runs_on: cpu` model without it needs none. `min_device_vram_mb`
 * stays as written (cortex derives the even share from the figure it places by).
 */
export const CatalogueEntry = ModelProfileFields.extend({
  vram_mb: NonNegativeInt.optional(),
}).refine(replicasInOrder.check, replicasInOrder.params);
export type CatalogueEntry = z.output<typeof CatalogueEntry>;
export type CatalogueEntryInput = z.input<typeof CatalogueEntry>;

export const CatalogueFile = z.strictObject({
  models: z.array(CatalogueEntry).default([]),
});
export type CatalogueFile = z.output<typeof CatalogueFile>;

// `GET /api/catalogue` (cortex's admin API): every entry with what cortex knows of its GPU
// memory. Declared here rather than beside the other cortex answers so the dashboard and
// cortexctl read one shape; the estimate's breakdown repeats estimate.ts's (which imports the
// neuron's schemas, which import this file).

const MegabytesFigure = NonNegativeInt.nullable();

/** A model's GPU memory as cortex knows it, in MB; null where unknown. */
export const CatalogueVram = z.object({
  /** The catalogue's `vram_mb`. */
  declared_mb: MegabytesFigure,
  /** A neuron's estimate from the GGUF header (`POST /models/estimate`). */
  estimated_mb: MegabytesFigure,
  /** The largest footprint measured on a GPU (`vram_used_mb`) for this harness and config. */
  observed_mb: MegabytesFigure,
  /** What placement and eviction count for it: see docs/contract.md "Memory truth (cortex)". */
  effective_mb: MegabytesFigure,
});
export type CatalogueVram = z.infer<typeof CatalogueVram>;

/** The estimate behind `estimated_mb`: what was read, and its parts. */
export const CatalogueEstimate = z.object({
  basis: z.string(),
  breakdown: z.object({
    weights_mb: z.number().nonnegative(),
    kv_cache_mb: z.number().nonnegative(),
    overhead_mb: z.number().nonnegative(),
  }),
});
export type CatalogueEstimate = z.infer<typeof CatalogueEstimate>;

/** How far a declared figure may be from the observed one before the entry is flagged. */
export const DECLARED_OFF_RATIO = 0.2;

/**
 * `declared_off` when the entry declares `vram_mb` and it is more than DECLARED_OFF_RATIO
 * (20 %) away from the observed peak, either way; null otherwise.
 */
export const vramFlag = (declaredMb: number | null, observedMb: number | null) =>
  declaredMb !== null &&
  observedMb !== null &&
  observedMb > 0 &&
  Math.abs(declaredMb - observedMb) > observedMb * DECLARED_OFF_RATIO
    ? ("declared_off" as const)
    : null;

/**
 * One entry of `GET /api/catalogue`: the entry's fields, with `vram_mb` and
 * `min_device_vram_mb` as placement counts them (null while the figure is unknown), plus the
 * memory figures, the estimate and the flag.
 */
export const CatalogueReportModel = z.object({
  ...ModelProfileFields.shape,
  vram_mb: MegabytesFigure,
  min_device_vram_mb: MegabytesFigure,
  vram: CatalogueVram,
  estimate: CatalogueEstimate.nullable(),
  vram_flag: z.enum(["declared_off"]).nullable(),
});
export type CatalogueReportModel = z.infer<typeof CatalogueReportModel>;

/** A problem of the catalogue cortex found after loading it (an entry it cannot place). */
export const CatalogueReportProblem = z.object({
  file: z.string(),
  path: z.string(),
  message: z.string(),
});

/** `GET /api/catalogue`. */
export const CatalogueReport = z.object({
  models: z.array(CatalogueReportModel),
  problems: z.array(CatalogueReportProblem).default([]),
});
export type CatalogueReport = z.infer<typeof CatalogueReport>;
