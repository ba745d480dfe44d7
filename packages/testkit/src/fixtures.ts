import type { Device, NeuronModel } from "@cortex/protocol";

// Wire-shaped values for tests: one definition, each test overriding only what it is about.

/** A model as a neuron's `/models` lists it: loaded and idle, on no device unless given. */
export const neuronModel = (id: string, fields: Partial<NeuronModel> = {}): NeuronModel => ({
  id,
  harness: "llamacpp",
  status: "loaded",
  devices: [],
  vram_mb: 0,
  in_flight: 0,
  queued: 0,
  max_concurrency: 4,
  last_accessed: null,
  loaded_at: null,
  error: null,
  ...fields,
});

/** A GPU as discovery reports it; free memory defaults to all of it. */
export const gpuDevice = (
  index: number,
  totalMb: number,
  freeMb = totalMb,
  fields: Partial<Device> = {},
): Device => ({
  index,
  vendor: "NVIDIA",
  name: "Test GPU",
  vram_total_mb: totalMb,
  vram_free_mb: freeMb,
  utilization_pct: null,
  temperature_c: null,
  bus_id: null,
  driver_version: null,
  ...fields,
});
