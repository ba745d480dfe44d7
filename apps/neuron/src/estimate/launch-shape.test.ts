import type { LoadRequest } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { specOf } from "../harnesses/model-spec.js";
import { harnessFor } from "./estimate.fixtures.js";
import { launchShape } from "./launch-shape.js";

// The shape is read from the argv definitions.ts builds for the load, so these tests go through
// real harness definitions.

const spec = (fields: Partial<LoadRequest> = {}) =>
  specOf(
    { model_id: "m", harness: "h", source: "m.gguf", devices: [0], ...fields } as LoadRequest,
    0,
  );

const shapeOf = (harness: ReturnType<typeof harnessFor>, fields: Partial<LoadRequest> = {}) => {
  const result = launchShape(harness, spec(fields));
  if (result.kind !== "shape") throw new Error(result.reason);
  return result.shape;
};

describe("launchShape", () => {
  const builtin = harnessFor("llamacpp");
  const server = harnessFor("llama-server");

  it.each([
    [1024, 1],
    [4096, 4],
    [8192, 3],
  ])("built-in: %i tokens per sequence × %i sequences, all layers, f16", (context, slots) => {
    expect(shapeOf(builtin, { context_length: context, max_concurrency: slots })).toEqual({
      contextTotal: context * slots,
      gpuLayers: null,
      cacheK: 1,
      cacheV: 1,
      flashAttention: false,
      ubatch: 512,
      gpus: 1,
    });
  });

  it.each([
    [1024, 1],
    [4096, 4],
    [8192, 3],
  ])("llama-server: --ctx-size is the total of %i tokens × %i slots", (context, slots) => {
    expect(shapeOf(server, { context_length: context, max_concurrency: slots })).toMatchObject({
      contextTotal: context * slots,
      // The neuron passes --n-gpu-layers 999 when the load has devices.
      gpuLayers: 999,
      cacheK: 1,
      cacheV: 1,
    });
  });

  it("reads the args the catalogue sets: layers, cache types, flash attention, batches", () => {
    const args = {
      n_gpu_layers: 12,
      cache_type_k: "q8_0",
      cache_type_v: "q4_0",
      flash_attn: "on",
      ubatch_size: 256,
    };
    expect(shapeOf(server, { args })).toMatchObject({
      gpuLayers: 12,
      cacheK: 8,
      cacheV: 2,
      flashAttention: true,
      ubatch: 256,
    });
    expect(shapeOf(server, { args: { flash_attn: "auto" } }).flashAttention).toBe(false);
    expect(shapeOf(builtin, { args: { n_gpu_layers: 3, flash_attention: true } })).toMatchObject({
      gpuLayers: 3,
      flashAttention: true,
    });
  });

  it("counts the devices, and a load with none runs on the CPU", () => {
    expect(shapeOf(server, { devices: [0, 1] }).gpus).toBe(2);
    expect(shapeOf(server, { devices: [] })).toMatchObject({ gpus: 0, gpuLayers: 0 });
    expect(shapeOf(builtin, { devices: [] })).toMatchObject({ gpus: 0, gpuLayers: 0 });
  });

  it("refuses a cache type llama.cpp does not have", () => {
    expect(launchShape(server, spec({ args: { cache_type_k: "q3_0" } }))).toEqual({
      kind: "invalid",
      reason: expect.stringMatching(/--cache-type-k must be one of f32, f16/),
    });
  });

  it("refuses vLLM, which takes a share of the GPU whatever the model", () => {
    expect(launchShape(harnessFor("vllm"), spec())).toEqual({
      kind: "reject",
      reason: expect.stringMatching(/gpu_memory_utilization .* declare vram_mb/),
    });
  });

  it.each([
    [["--ctx-size", "{ctx_size}"], 4096],
    [["-c={ctx_size}"], 4096],
    [["--ctx-size", "0"], null],
    [[], 4096 * 2],
  ])("reads a template's context from %j (else context × slots)", (flags, total) => {
    const template = harnessFor("my-llama", {
      kind: "template",
      command: ["my-llama", "-m", "{model_path}", "--port", "{port}", ...flags],
      options: { layers: "-ngl", ctk: "-ctk" },
    });
    const shape = shapeOf(template, { max_concurrency: 2, args: { layers: 5, ctk: "q8_0" } });
    expect(shape).toMatchObject({ contextTotal: total, gpuLayers: 5, cacheK: 8, cacheV: 1 });
  });
});
