import { buildTinyModel, TINY_MODEL_SHAPE, type TinyModelShape } from "@cortex/harness-llamacpp";
import type { HarnessConfig } from "@cortex/protocol";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import type { LaunchShape } from "./launch-shape.js";
import { factsOf, type ModelFacts } from "./model-facts.js";
import { type RangeReader, readGgufHeader } from "./read-header.js";

// What the estimator's tests share: tiny models the project generates (all F32), the sizes their
// shapes imply worked out independently of the estimator, and harnesses as neuron.yaml makes them.

export const MB = 2 ** 20;

/** A RangeReader over bytes in memory. */
export const bufferReader =
  (bytes: Uint8Array): RangeReader =>
  async (start, length) => ({
    bytes: bytes.subarray(Math.min(start, bytes.length), Math.min(start + length, bytes.length)),
    total: bytes.length,
  });

export const shapeOf = (overrides: Partial<TinyModelShape> = {}): TinyModelShape => ({
  ...TINY_MODEL_SHAPE,
  ...overrides,
});

/** A tiny model's bytes and its facts as the estimator reads them from its header. */
export const tinyModel = async (
  overrides: Partial<TinyModelShape> = {},
): Promise<{ bytes: Buffer; facts: ModelFacts; vocab: number }> => {
  const bytes = buildTinyModel({ shape: overrides });
  const { header } = await readGgufHeader(bufferReader(bytes));
  const result = factsOf(header);
  if (result.kind === "reject") throw new Error(result.reason);
  const tokens = header.metadata["tokenizer.ggml.tokens"] as unknown[];
  return { bytes, facts: result.facts, vocab: tokens.length };
};

/**
 * The sizes of a tiny model of `shape`, from the tensors its writer lays out (tiny-model.ts):
 * every tensor F32 (4 bytes a value), per layer two norms of E, q and o of E×E, k and v of
 * E×Ekv (Ekv = E / heads × KV heads), gate, up and down of E×F; output norm E and output E×V;
 * token embeddings E×V.
 */
export const tinyBytes = (shape: TinyModelShape, vocab: number) => {
  const e = shape.embeddingLength;
  const ekv = (e / shape.headCount) * shape.headCountKv;
  const layer = 4 * (2 * e + 2 * e * e + 2 * e * ekv + 3 * e * shape.feedForwardLength);
  return {
    layer,
    output: 4 * (e + e * vocab),
    input: 4 * e * vocab,
    /** K and V values per token per layer. */
    kvValues: 2 * ekv,
  };
};

/** A launch of every layer on one GPU with an f16 cache: what both harnesses do by default. */
export const fullOffload = (overrides: Partial<LaunchShape> = {}): LaunchShape => ({
  contextTotal: 4096,
  gpuLayers: null,
  cacheK: 1,
  cacheV: 1,
  flashAttention: false,
  ubatch: 512,
  gpus: 1,
  ...overrides,
});

/** A harness as neuron.yaml defines it; throws on a config with problems. */
export const harnessFor = (name: string, config: HarnessConfig = {}): Harness => {
  const harness = defineHarness(name, config, { node: "node", entry: "worker.js" });
  if ("problems" in harness) throw new Error(harness.problems.join("; "));
  return harness;
};

/** The node's harnesses in these tests, by the names neuron.yaml gives them. */
export const testHarnesses = (): Map<string, Harness> =>
  new Map([
    ["llamacpp", harnessFor("llamacpp")],
    ["llama-server", harnessFor("llama-server")],
    ["vllm", harnessFor("vllm")],
  ]);
