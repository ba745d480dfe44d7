import { z } from "zod";
import { NonNegativeInt } from "./common.js";
import { LoadRequest } from "./neuron.js";

// `POST /models/estimate` on a neuron (issue 18): how much GPU memory a load would take, worked
// out from the model file's GGUF header before anything is loaded. Cortex asks it for catalogue
// entries without a declared `vram_mb`.

/**
 * The fields of a load request, checked by the same schema: an estimate answers for exactly the
 * load those fields would start (same harness, args, context and slots).
 */
export const EstimateRequest = LoadRequest;
export type EstimateRequest = z.infer<typeof EstimateRequest>;

/** MB (2^20 bytes), to one decimal: the parts, unrounded, sum to at most `vram_mb`. */
const Megabytes = z.number().nonnegative();

export const EstimateBreakdown = z.object({
  /** The tensors the load puts on GPUs. */
  weights_mb: Megabytes,
  /** Keys and values of every slot's context, on the GPUs that hold their layers. */
  kv_cache_mb: Megabytes,
  /** Compute buffers and the runtime's own memory (CUDA context, libraries' workspaces). */
  overhead_mb: Megabytes,
});
export type EstimateBreakdown = z.infer<typeof EstimateBreakdown>;

export const EstimateAnswer = z.object({
  /** ceil(weights + KV cache + overhead), over all the load's devices together. */
  vram_mb: NonNegativeInt,
  breakdown: EstimateBreakdown,
  /** What was read, e.g. "gguf header (local file, 0.6 MiB)". */
  basis: z.string(),
});
export type EstimateAnswer = z.infer<typeof EstimateAnswer>;
