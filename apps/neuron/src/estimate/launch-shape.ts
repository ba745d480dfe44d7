import type { Harness } from "../harnesses/definitions.js";
import type { ModelSpec } from "../harnesses/model-spec.js";
import { CACHE_TYPES, F16 } from "./ggml-types.js";

// What memory a load's engine allocates depends on how the neuron starts it, so the estimate
// reads the very argv the load would run (harnesses/definitions.ts builds it) rather than the
// request's fields: the context and slots, the layers put on GPUs, the KV cache types and flash
// attention, as llama.cpp reads them.

/** The engine settings that size a load's GPU memory. */
export interface LaunchShape {
  /**
   * KV cache cells over all slots together, before llama.cpp pads them to 256; null: the model's
   * own trained context (llama.cpp's `--ctx-size 0`).
   */
  readonly contextTotal: number | null;
  /** `--n-gpu-layers`: repeating layers on GPUs, the output layer too when above their count; null: all. */
  readonly gpuLayers: number | null;
  /** GGML type ids of the K and V caches. */
  readonly cacheK: number;
  readonly cacheV: number;
  /** On: llama.cpp never holds the attention scores of a micro-batch in its compute buffer. */
  readonly flashAttention: boolean;
  /** Tokens per micro-batch, llama.cpp's unit of compute buffer. */
  readonly ubatch: number;
  /** GPUs the load uses; 0 runs it on the CPU. */
  readonly gpus: number;
}

/** A shape, or why the load cannot be estimated (`not_estimable`) or its args are wrong (400). */
export type ShapeResult =
  | { readonly kind: "shape"; readonly shape: LaunchShape }
  | { readonly kind: "reject"; readonly reason: string }
  | { readonly kind: "invalid"; readonly reason: string };

/** llama.cpp's default `--ubatch-size` and `--batch-size` (common/common.h). */
const DEFAULT_UBATCH = 512;
const DEFAULT_BATCH = 2048;
/** node-llama-cpp's default batch: 512, or the whole context when smaller (LlamaContext.js). */
const BUILTIN_BATCH = 512;

/**
 * The value of the last of `names` in `argv` (a later flag wins in llama.cpp's parser), as
 * `--flag value` or `--flag=value`; `true` for a flag with no value after it; undefined if absent.
 */
const flag = (argv: readonly string[], names: readonly string[]): string | true | undefined => {
  let found: string | true | undefined;
  argv.forEach((arg, index) => {
    const equals = arg.indexOf("=");
    const name = equals === -1 ? arg : arg.slice(0, equals);
    if (!names.includes(name)) return;
    if (equals !== -1) {
      found = arg.slice(equals + 1);
      return;
    }
    const next = argv[index + 1];
    found = next === undefined || /^-[A-Za-z-]/.test(next) ? true : next;
  });
  return found;
};

/** A non-negative integer flag; undefined when absent, NaN when present but not an integer. */
const intFlag = (argv: readonly string[], names: readonly string[]): number | undefined => {
  const value = flag(argv, names);
  if (value === undefined) return undefined;
  return typeof value === "string" && /^\d{1,20}$/.test(value) ? Number(value) : Number.NaN;
};

const CTX = ["--ctx-size", "-c"];
const GPU_LAYERS = ["--n-gpu-layers", "-ngl", "--gpu-layers"];
const CACHE_K = ["--cache-type-k", "-ctk"];
const CACHE_V = ["--cache-type-v", "-ctv"];
const FLASH = ["--flash-attn", "-fa"];
const UBATCH = ["--ubatch-size", "-ub"];
const BATCH = ["--batch-size", "-b"];

const cacheType = (argv: readonly string[], names: readonly string[]): number | string => {
  const value = flag(argv, names);
  if (value === undefined) return F16;
  const type = typeof value === "string" ? CACHE_TYPES.get(value.toLowerCase()) : undefined;
  return type ?? `${names[0]} must be one of ${[...CACHE_TYPES.keys()].join(", ")}`;
};

/**
 * `--n-gpu-layers`: a count, or llama.cpp's words for every layer (`all`, `auto` in recent
 * builds; -1 in older ones). A value above the layer count means every layer and the output.
 */
const gpuLayersOf = (argv: readonly string[]): number | null | string => {
  const value = flag(argv, GPU_LAYERS);
  if (value === undefined || value === "all" || value === "auto" || value === "-1") return null;
  return typeof value === "string" && /^\d{1,20}$/.test(value)
    ? Number(value)
    : "--n-gpu-layers must be a count of layers";
};

/**
 * llama-server's flags, which templates (whatever engine they start) are read with too: its
 * `--ctx-size` is the total over its `--parallel` slots (definitions.ts passes it context_length
 * × max_concurrency); a template without one gets what the spec asks for, the same product.
 * Flash attention counts as on only when asked for (`on`, `true`, `1`, or the bare flag of older
 * builds): recent builds default to `auto`, which may still decide against it.
 */
const llamaServerShape = (argv: readonly string[], spec: ModelSpec, gpus: number): ShapeResult => {
  const ctx = intFlag(argv, CTX);
  const gpuLayers = gpuLayersOf(argv);
  const cacheK = cacheType(argv, CACHE_K);
  const cacheV = cacheType(argv, CACHE_V);
  const ubatch = intFlag(argv, UBATCH) ?? DEFAULT_UBATCH;
  const batch = intFlag(argv, BATCH) ?? DEFAULT_BATCH;
  const problem = [
    Number.isNaN(ctx) ? "--ctx-size must be a count of tokens" : null,
    typeof gpuLayers === "string" ? gpuLayers : null,
    typeof cacheK === "string" ? cacheK : null,
    typeof cacheV === "string" ? cacheV : null,
    Number.isNaN(ubatch) || Number.isNaN(batch) ? "batch sizes must be counts of tokens" : null,
  ].find((message) => message !== null);
  if (problem) return { kind: "invalid", reason: problem };
  const flash = flag(argv, FLASH);
  return {
    kind: "shape",
    shape: {
      contextTotal:
        ctx === undefined ? spec.context_length * spec.max_concurrency : ctx === 0 ? null : ctx,
      gpuLayers: gpus === 0 ? 0 : (gpuLayers as number | null),
      cacheK: cacheK as number,
      cacheV: cacheV as number,
      flashAttention:
        flash === true || (typeof flash === "string" && /^(on|true|1|enabled)$/i.test(flash)),
      ubatch: Math.max(1, Math.min(ubatch, batch)),
      gpus,
    },
  };
};

/**
 * The built-in harness (node-llama-cpp): `--ctx-size` is per sequence and it creates one
 * context of ctx × `--parallel` cells ("each sequence needs its own <contextSize> of cells",
 * LlamaContext.js); `--gpu off` keeps everything on the CPU, `--gpu-layers` limits the layers,
 * and its KV cache is always f16.
 */
const builtinShape = (argv: readonly string[], spec: ModelSpec, gpus: number): ShapeResult => {
  const ctx = intFlag(argv, CTX) ?? spec.context_length;
  const parallel = intFlag(argv, ["--parallel"]) ?? spec.max_concurrency;
  const gpuLayers = intFlag(argv, ["--gpu-layers"]);
  const batch = intFlag(argv, ["--batch-size"]) ?? BUILTIN_BATCH;
  if ([ctx, parallel, gpuLayers, batch].some((value) => Number.isNaN(value))) {
    return { kind: "invalid", reason: "the built-in harness's sizes must be counts" };
  }
  const onGpu = gpus > 0 && flag(argv, ["--gpu"]) !== "off";
  return {
    kind: "shape",
    shape: {
      contextTotal: ctx * parallel,
      gpuLayers: onGpu ? (gpuLayers ?? null) : 0,
      cacheK: F16,
      cacheV: F16,
      flashAttention: flag(argv, ["--flash-attention"]) === true,
      ubatch: Math.max(1, batch),
      gpus: onGpu ? gpus : 0,
    },
  };
};

/**
 * The shape of `spec` started by `harness`, read from the argv its launch builds. The spec's
 * devices decide the GPU count; vLLM is refused: it reserves `gpu_memory_utilization` of every
 * GPU it gets whatever the model's size, so only a declared `vram_mb` can place it.
 */
export const launchShape = (harness: Harness, spec: ModelSpec): ShapeResult => {
  if (harness.kind === "vllm") {
    return {
      kind: "reject",
      reason: `harness "${harness.name}" is vLLM, which takes gpu_memory_utilization of each GPU whatever the model's size; declare vram_mb for it`,
    };
  }
  const { args: argv } = harness.launch({
    spec,
    modelPath: "model.gguf",
    port: 0,
    host: "127.0.0.1",
  });
  const gpus = spec.devices.length;
  return harness.kind === "builtin"
    ? builtinShape(argv, spec, gpus)
    : llamaServerShape(argv, spec, gpus);
};
