import type { TinyModelShape } from "@cortex/harness-llamacpp";
import { describe, expect, it } from "vitest";
import { fullOffload, MB, shapeOf, tinyBytes, tinyModel } from "./estimate.fixtures.js";
import { estimateVram, RUNTIME_OVERHEAD_MB } from "./gguf-estimate.js";
import type { LaunchShape } from "./launch-shape.js";

// The estimate against tiny models the project generates, every expected number worked out here
// from the model's shape (see tinyBytes) rather than taken from the estimator.

const cellsFor = (context: number) => Math.ceil(context / 256) * 256;
/** Bytes as the answer's breakdown shows them: MB to one decimal. */
const mb = (bytes: number) => Math.round((bytes / MB) * 10) / 10;

/** The answer for a model of `shape` with every layer on `gpus` GPUs, cache of `cacheBytes` a value. */
const worked = (
  shape: TinyModelShape,
  vocab: number,
  context: number,
  options: { cacheBytes?: number; flash?: boolean; gpus?: number } = {},
) => {
  const sizes = tinyBytes(shape, vocab);
  const cells = cellsFor(context);
  const weights = shape.blockCount * sizes.layer + sizes.output;
  const kv = shape.blockCount * cells * sizes.kvValues * (options.cacheBytes ?? 2);
  const scores = options.flash ? 0 : shape.headCount * cells;
  const compute = 4 * Math.min(512, cells) * (vocab + scores);
  const overhead = RUNTIME_OVERHEAD_MB * (options.gpus ?? 1) + compute / MB;
  return { weights, kv, overhead, vram: Math.ceil((weights + kv) / MB + overhead) };
};

const estimate = (facts: Parameters<typeof estimateVram>[0], shape: LaunchShape) => {
  const result = estimateVram(facts, shape);
  if (result.kind === "reject") throw new Error(result.reason);
  return result;
};

describe("estimateVram on generated models", () => {
  it.each([
    ["the default tiny model", {}, 4096],
    ["a wider, deeper one", { embeddingLength: 128, blockCount: 4, headCount: 8 }, 8192],
    [
      "one without grouped KV heads",
      { embeddingLength: 256, feedForwardLength: 512, blockCount: 3, headCount: 8, headCountKv: 8 },
      1000,
    ],
    ["a long context", { blockCount: 6 }, 131_072],
  ])(
    "%s: every layer, the output and the KV cache of the context",
    async (_, overrides, context) => {
      const shape = shapeOf(overrides);
      const { facts, vocab } = await tinyModel(overrides);
      const want = worked(shape, vocab, context);
      const answer = estimate(facts, fullOffload({ contextTotal: context }));
      expect(answer.vram_mb).toBe(want.vram);
      expect(answer.breakdown).toEqual({
        weights_mb: mb(want.weights),
        kv_cache_mb: mb(want.kv),
        overhead_mb: mb(want.overhead * MB),
      });
    },
  );

  it("leaves the token embeddings on the CPU, as llama.cpp does", async () => {
    const { facts, vocab } = await tinyModel();
    const sizes = tinyBytes(shapeOf(), vocab);
    expect(facts.inputBytes).toBe(sizes.input);
    expect(facts.outputBytes).toBe(sizes.output);
    expect(facts.layerBytes).toEqual([sizes.layer, sizes.layer]);
  });

  it("counts a q8_0 cache at 34 bytes per 32 values and q4_0 at 18", async () => {
    const shape = shapeOf({ blockCount: 3 });
    const { facts, vocab } = await tinyModel({ blockCount: 3 });
    const f16 = estimate(facts, fullOffload({ contextTotal: 8192 }));
    const q8 = estimate(facts, fullOffload({ contextTotal: 8192, cacheK: 8, cacheV: 8 }));
    const q4 = estimate(facts, fullOffload({ contextTotal: 8192, cacheK: 2, cacheV: 2 }));
    expect(q8.vram_mb).toBe(worked(shape, vocab, 8192, { cacheBytes: 34 / 32 }).vram);
    expect(q8.breakdown.kv_cache_mb).toBeCloseTo((f16.breakdown.kv_cache_mb * 34) / 64, 1);
    expect(q4.breakdown.kv_cache_mb).toBeCloseTo((f16.breakdown.kv_cache_mb * 18) / 64, 1);
    // K and V may differ: q8_0 keys, f16 values.
    const mixed = estimate(facts, fullOffload({ contextTotal: 8192, cacheK: 8 }));
    expect(mixed.breakdown.kv_cache_mb).toBeCloseTo(
      (f16.breakdown.kv_cache_mb * (34 / 32 + 2)) / 4,
      1,
    );
  });

  it.each([
    // [--n-gpu-layers, layers on the GPU, output on the GPU]
    [0, 0, false],
    [1, 1, false],
    [3, 3, false],
    [4, 4, false],
    [5, 4, true],
    [999, 4, true],
  ])(
    "with --n-gpu-layers %i counts the last %i layers, the output: %s",
    async (ngl, onGpu, output) => {
      const { facts, vocab } = await tinyModel({ blockCount: 4 });
      const sizes = tinyBytes(shapeOf({ blockCount: 4 }), vocab);
      const answer = estimate(facts, fullOffload({ gpuLayers: ngl, contextTotal: 2048 }));
      const weights = onGpu * sizes.layer + (output ? sizes.output : 0);
      const kv = onGpu * 2048 * sizes.kvValues * 2;
      expect(answer.breakdown.weights_mb).toBe(mb(weights));
      expect(answer.breakdown.kv_cache_mb).toBe(mb(kv));
    },
  );

  it("drops the attention scores from the compute buffer with flash attention", async () => {
    const shape = shapeOf({ blockCount: 2 });
    const { facts, vocab } = await tinyModel();
    const answer = estimate(facts, fullOffload({ contextTotal: 65_536, flashAttention: true }));
    expect(answer.vram_mb).toBe(worked(shape, vocab, 65_536, { flash: true }).vram);
    expect(answer.breakdown.overhead_mb).toBeLessThan(
      estimate(facts, fullOffload({ contextTotal: 65_536 })).breakdown.overhead_mb,
    );
  });

  it("counts the runtime once per GPU, and nothing for a CPU load", async () => {
    const { facts, vocab } = await tinyModel();
    const two = estimate(facts, fullOffload({ gpus: 2 }));
    expect(two.vram_mb).toBe(worked(shapeOf(), vocab, 4096, { gpus: 2 }).vram);
    const cpu = estimate(facts, fullOffload({ gpus: 0, gpuLayers: 0 }));
    expect(cpu).toMatchObject({
      vram_mb: 0,
      breakdown: { weights_mb: 0, kv_cache_mb: 0, overhead_mb: 0 },
    });
  });

  it("takes the model's own context for a context of 0, and refuses when it declares none", async () => {
    const { facts, vocab } = await tinyModel({ contextLength: 2048 });
    expect(estimate(facts, fullOffload({ contextTotal: null })).vram_mb).toBe(
      worked(shapeOf(), vocab, 2048).vram,
    );
    expect(
      estimateVram({ ...facts, trainContext: null }, fullOffload({ contextTotal: null })),
    ).toEqual({
      kind: "reject",
      reason: expect.stringMatching(/llama\.context_length is missing/),
    });
  });
});
