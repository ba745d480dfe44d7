import type { HarnessArgs, LoadRequest } from "@cortex/protocol";

/** A load request with every default applied: what the neuron keeps per model id. */
export interface ModelSpec {
  readonly id: string;
  readonly harness: string;
  readonly source: string;
  readonly quant: string | null;
  /** GPU indices; empty runs on the CPU. */
  readonly devices: readonly number[];
  readonly tensor_parallel: number;
  readonly vram_mb: number;
  readonly max_concurrency: number;
  /** 0 never unloads. */
  readonly idle_ttl_s: number;
  readonly context_length: number;
  readonly args: HarnessArgs;
}

export const DEFAULT_CONTEXT_LENGTH = 4096;
export const DEFAULT_MAX_CONCURRENCY = 4;

export const specOf = (request: LoadRequest, defaultIdleTtlS: number): ModelSpec => {
  const devices = [...(request.devices ?? [])];
  return {
    id: request.model_id,
    harness: request.harness,
    source: request.source,
    quant: request.quant ?? null,
    devices,
    tensor_parallel: request.tensor_parallel ?? Math.max(1, devices.length),
    vram_mb: request.vram_mb ?? 0,
    max_concurrency: request.max_concurrency ?? DEFAULT_MAX_CONCURRENCY,
    idle_ttl_s: request.idle_ttl_s ?? defaultIdleTtlS,
    context_length: request.context_length ?? DEFAULT_CONTEXT_LENGTH,
    args: request.args ?? {},
  };
};
