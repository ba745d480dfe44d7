import type { LoadRequest, ModelProfile } from "@cortex/protocol";
import type { LoadPlan } from "./types.js";

/** The neuron `POST /models/load` body that carries out a plan for a catalogue profile. */
export const toLoadRequest = (profile: ModelProfile, plan: LoadPlan): LoadRequest => {
  const request: LoadRequest = {
    model_id: profile.id,
    harness: profile.harness,
    source: profile.source,
    devices: [...plan.devices],
    tensor_parallel: plan.tensor_parallel,
    vram_mb: profile.vram_mb,
    max_concurrency: profile.max_concurrency,
    args: profile.args,
    residency_priority: profile.residency_priority,
  };
  if (profile.quant !== undefined) request.quant = profile.quant;
  // With a minimum, cortex unloads idle replicas itself (never below it); the neuron must not.
  if (profile.min_replicas > 0) request.idle_ttl_s = 0;
  else if (profile.idle_ttl_s !== undefined) request.idle_ttl_s = profile.idle_ttl_s;
  if (profile.context_length !== undefined) request.context_length = profile.context_length;
  return request;
};
