import type { EstimateBreakdown } from "@cortex/protocol";
import { tensorBytes } from "./ggml-types.js";
import type { LaunchShape } from "./launch-shape.js";
import type { ModelFacts } from "./model-facts.js";

// The estimate itself, pure: a model's facts (model-facts.ts) and how the load starts its engine
// (launch-shape.ts) in, MB out. It follows where llama.cpp puts things (src/llama-model.cpp,
// `load_tensors`; src/llama-kv-cache.cpp):
//
// - Weights. With `--n-gpu-layers N` the last N repeating layers go to GPUs (layers from
//   block_count − N up), and the output layer only when N exceeds block_count, i.e. when every
//   layer is on a GPU; the default of both harnesses (llama-server gets 999, the built-in one
//   offloads everything that fits) puts every layer and the output there. The input layer
//   (token embeddings) always stays on the CPU. A model with tied embeddings gets a copy of them
//   as its output layer.
// - KV cache. Each layer's K and V live with the layer: per token, key_length × KV heads values
//   of K and value_length × KV heads of V, in the cache type (f16 unless `--cache-type-k/-v`
//   says otherwise: q8_0 is 34 bytes per 32 values, q4_0 18), for every cell of the context,
//   which llama.cpp pads to a multiple of 256. Sliding-window layers are counted at the full
//   context and recurrent state (Mamba, RWKV) not at all.
// - Overhead. RUNTIME_OVERHEAD_MB per GPU, plus a compute buffer sized from one micro-batch:
//   its f32 logits (vocabulary × ubatch) and, unless flash attention is on, the f32 attention
//   scores of one layer (heads × context cells × ubatch), which llama.cpp reserves for the worst
//   case of a full context.

/**
 * What a GPU process holds before any model: the CUDA context, cuBLAS and the engine's own
 * allocations. About 300 to 500 MiB on current NVIDIA drivers (Ollama reserves 457 MiB per CUDA
 * GPU for it); rounded up, since underestimating is what puts two models on a GPU that cannot
 * hold both.
 */
export const RUNTIME_OVERHEAD_MB = 512;
/** llama.cpp allocates the KV cache in multiples of 256 cells (`n_ctx` padding). */
export const CONTEXT_PAD = 256;
/** Logits and attention scores in the compute buffer are f32. */
const COMPUTE_VALUE_BYTES = 4;
const MB = 2 ** 20;

const padContext = (cells: number): number => Math.ceil(cells / CONTEXT_PAD) * CONTEXT_PAD;

/** Bytes of `values` values of GGML type `type`, in whole blocks. */
const rowBytes = (type: number, values: number): number =>
  values === 0 ? 0 : (tensorBytes(type, [values]) ?? values * 4);

const tenth = (mb: number): number => Math.round(mb * 10) / 10;

export interface Estimate {
  readonly vram_mb: number;
  readonly breakdown: EstimateBreakdown;
}

/**
 * The estimate, or why not: a context of 0 (the model's own) in a model that declares none, or
 * one so large the total is no longer an exact number of MB.
 */
export type EstimateResult =
  | ({ readonly kind: "estimate" } & Estimate)
  | { readonly kind: "reject"; readonly reason: string };

/** GPU memory a load of the model `facts` describes takes when started as `shape`. */
export const estimateVram = (facts: ModelFacts, shape: LaunchShape): EstimateResult => {
  const contextTotal = shape.contextTotal ?? facts.trainContext;
  if (contextTotal === null) {
    return {
      kind: "reject",
      reason: `the load asks for the model's own context, and ${facts.architecture}.context_length is missing`,
    };
  }
  const layers = facts.blockCount;
  const offloaded =
    shape.gpus === 0 ? 0 : Math.max(0, Math.min(shape.gpuLayers ?? layers + 1, layers + 1));
  const firstOnGpu = layers - Math.min(offloaded, layers);
  const cells = padContext(contextTotal);

  let weights = offloaded > layers ? facts.outputBytes : 0;
  let kv = 0;
  for (let layer = firstOnGpu; layer < layers; layer++) {
    weights += facts.layerBytes[layer] ?? 0;
    const width = facts.kv[layer] ?? { k: 0, v: 0 };
    kv += cells * (rowBytes(shape.cacheK, width.k) + rowBytes(shape.cacheV, width.v));
  }

  const ubatch = Math.min(shape.ubatch, cells);
  const scores = shape.flashAttention ? 0 : facts.headCount * cells;
  const compute = COMPUTE_VALUE_BYTES * ubatch * (facts.vocabSize + scores);
  const overhead = shape.gpus === 0 ? 0 : RUNTIME_OVERHEAD_MB * shape.gpus + compute / MB;

  const weightsMb = weights / MB;
  const kvMb = kv / MB;
  const total = Math.ceil(weightsMb + kvMb + overhead);
  if (!Number.isSafeInteger(total)) {
    return {
      kind: "reject",
      reason: `the load's context of ${contextTotal} tokens is too large to count`,
    };
  }
  return {
    kind: "estimate",
    vram_mb: total,
    breakdown: {
      weights_mb: tenth(weightsMb),
      kv_cache_mb: tenth(kvMb),
      overhead_mb: tenth(overhead),
    },
  };
};
