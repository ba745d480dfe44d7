import { describe, expect, it } from "vitest";
import { tensorBytes } from "./ggml-types.js";
import { factsOf, type GgufHeader, MAX_TENSORS, type TensorInfo } from "./model-facts.js";

// Headers written out by hand: quantized tensor types, per-layer head counts, tied embeddings
// and headers that lie, none of which the tiny-model writer (all F32) produces.

const F32 = 0;
const F16 = 1;
const Q4_K = 12;
const Q6_K = 14;
const Q8_0 = 8;

/** A llama-like header of `layers` layers, 4096 wide, 32 heads, 8 KV heads, Q4_K weights. */
const header = (
  overrides: {
    metadata?: Record<string, unknown>;
    tensors?: TensorInfo[];
    fileSize?: number | null;
    layers?: number;
  } = {},
): GgufHeader => {
  const layers = overrides.layers ?? 2;
  const tensors: TensorInfo[] = [
    { name: "token_embd.weight", shape: [4096n, 32_000n], dtype: Q4_K },
    ...Array.from({ length: layers }, (_, i) => [
      { name: `blk.${i}.attn_norm.weight`, shape: [4096n], dtype: F32 },
      { name: `blk.${i}.attn_q.weight`, shape: [4096n, 4096n], dtype: Q4_K },
      { name: `blk.${i}.attn_k.weight`, shape: [4096n, 1024n], dtype: Q4_K },
      { name: `blk.${i}.ffn_down.weight`, shape: [14_336n, 4096n], dtype: Q6_K },
    ]).flat(),
    { name: "output_norm.weight", shape: [4096n], dtype: F32 },
    { name: "output.weight", shape: [4096n, 32_000n], dtype: Q6_K },
  ];
  return {
    metadata: {
      "general.architecture": "llama",
      "llama.block_count": layers,
      "llama.embedding_length": 4096,
      "llama.attention.head_count": 32,
      "llama.attention.head_count_kv": 8,
      "llama.context_length": 8192,
      ...overrides.metadata,
    },
    tensors: overrides.tensors ?? tensors,
    dataOffset: 1000,
    fileSize: overrides.fileSize === undefined ? 2 ** 40 : overrides.fileSize,
  };
};

const facts = (input: GgufHeader) => {
  const result = factsOf(input);
  if (result.kind === "reject") throw new Error(result.reason);
  return result.facts;
};

describe("tensorBytes", () => {
  it.each([
    ["F32", F32, [4096, 1], 4096 * 4],
    ["F16", F16, [4096, 2], 4096 * 2 * 2],
    ["Q8_0: 34 bytes a block of 32", Q8_0, [4096, 4096], (4096 / 32) * 34 * 4096],
    ["Q4_K: 144 bytes a block of 256", Q4_K, [4096, 4096], (4096 / 256) * 144 * 4096],
    ["Q6_K: 210 bytes a block of 256", Q6_K, [14_336, 4096], (14_336 / 256) * 210 * 4096],
    ["a partial block counts whole", Q8_0, [40], 2 * 34],
    ["a 3-d tensor (MoE experts)", Q4_K, [4096, 1024, 8], 16 * 144 * 1024 * 8],
  ])("%s", (_, type, shape, bytes) => {
    expect(tensorBytes(type, shape)).toBe(bytes);
  });

  it("knows no type 4 (Q4_2 was removed from ggml)", () => {
    expect(tensorBytes(4, [32])).toBeNull();
  });
});

describe("factsOf", () => {
  it("sums quantized tensors per layer, and places input and output apart", () => {
    const read = facts(header());
    const layer = 4096 * 4 + 16 * 144 * 4096 + 16 * 144 * 1024 + 56 * 210 * 4096;
    expect(read.layerBytes).toEqual([layer, layer]);
    expect(read.inputBytes).toBe(16 * 144 * 32_000);
    expect(read.outputBytes).toBe(4096 * 4 + 16 * 210 * 32_000);
    expect(read).toMatchObject({ architecture: "llama", blockCount: 2, headCount: 32 });
    expect(read.vocabSize).toBe(32_000);
    expect(read.trainContext).toBe(8192);
  });

  it("derives the KV width from embedding / heads × KV heads, or key_length and value_length", () => {
    expect(facts(header()).kv).toEqual([
      { k: 1024, v: 1024 },
      { k: 1024, v: 1024 },
    ]);
    const mla = facts(
      header({
        metadata: { "llama.attention.key_length": 192, "llama.attention.value_length": 128 },
      }),
    );
    expect(mla.kv[0]).toEqual({ k: 192 * 8, v: 128 * 8 });
  });

  it("takes per-layer KV heads, a layer of 0 having no cache", () => {
    const read = facts(header({ metadata: { "llama.attention.head_count_kv": [8, 0] } }));
    expect(read.kv).toEqual([
      { k: 1024, v: 1024 },
      { k: 0, v: 0 },
    ]);
  });

  it("defaults KV heads to the attention heads", () => {
    const input = header();
    delete (input.metadata as Record<string, unknown>)["llama.attention.head_count_kv"];
    expect(facts(input).kv[0]).toEqual({ k: 4096, v: 4096 });
  });

  it("loads tied embeddings a second time as the output", () => {
    const input = header();
    const untied = input.tensors.filter((tensor) => tensor.name !== "output.weight");
    const read = facts({ ...input, tensors: untied });
    expect(read.outputBytes).toBe(4096 * 4 + 16 * 144 * 32_000);
  });

  it("reads counts given as bigint, as the parser gives 64-bit values", () => {
    const read = facts(
      header({ metadata: { "llama.block_count": 2n, "llama.context_length": 4096n } }),
    );
    expect(read.trainContext).toBe(4096);
  });

  it.each([
    ["no architecture", { "general.architecture": undefined }, /general\.architecture is missing/],
    ["no block count", { "llama.block_count": "two" }, /llama\.block_count is missing/],
    ["no width", { "llama.embedding_length": -1 }, /llama\.embedding_length is missing/],
    ["no heads", { "llama.attention.head_count": [32] }, /llama\.attention\.head_count is missing/],
    ["bad KV heads", { "llama.attention.head_count_kv": "8" }, /head_count_kv is not a count/],
    ["inherited keys only", { "llama.block_count": undefined }, /llama\.block_count is missing/],
  ])("refuses a header with %s", (_, metadata, reason) => {
    const input = header({ metadata });
    for (const [key, value] of Object.entries(metadata)) {
      if (value === undefined) delete (input.metadata as Record<string, unknown>)[key];
    }
    expect(factsOf(input)).toEqual({ kind: "reject", reason: expect.stringMatching(reason) });
  });

  it("does not read a key through the prototype", () => {
    const metadata = Object.create({ "llama.block_count": 2 }) as Record<string, unknown>;
    Object.assign(metadata, header().metadata);
    delete metadata["llama.block_count"];
    expect(factsOf({ ...header(), metadata })).toMatchObject({ kind: "reject" });
  });

  it("refuses a tensor type it does not know", () => {
    const tensors: TensorInfo[] = [{ name: "blk.0.attn_q.weight", shape: [32n], dtype: 99 }];
    expect(factsOf(header({ tensors }))).toEqual({
      kind: "reject",
      reason: expect.stringMatching(/GGML type 99, which is not known/),
    });
  });

  it("refuses tensors larger than the file that holds them", () => {
    expect(factsOf(header({ fileSize: 10_000_000 }))).toEqual({
      kind: "reject",
      reason: expect.stringMatching(/more than the 9999000 bytes of data the file holds/),
    });
    const huge: TensorInfo[] = [
      { name: "blk.0.x", shape: [2n ** 32n, 2n ** 32n, 2n ** 32n, 2n ** 32n], dtype: F32 },
    ];
    expect(factsOf(header({ tensors: huge, fileSize: null }))).toMatchObject({ kind: "reject" });
  });

  it("refuses more tensors than any model has", () => {
    const tensors = Array.from({ length: MAX_TENSORS + 1 }, (_, i) => ({
      name: `t${i}`,
      shape: [1n],
      dtype: F32,
    }));
    expect(factsOf(header({ tensors }))).toEqual({
      kind: "reject",
      reason: expect.stringMatching(/lists 100001 tensors/),
    });
  });
});
