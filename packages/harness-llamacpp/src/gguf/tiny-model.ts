import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { SeededRandom } from "./prng.js";
import { buildSpmVocab } from "./vocab.js";
import { encodeGguf, type GgufTensor, type GgufValue } from "./writer.js";

/**
 * `chat` generates text; `embedding` is the same network marked as an embedding model (mean
 * pooling), which is what `/v1/embeddings` serves.
 */
export type TinyModelVariant = "chat" | "embedding";

/** The network's dimensions. */
export interface TinyModelShape {
  readonly embeddingLength: number;
  readonly feedForwardLength: number;
  readonly blockCount: number;
  readonly headCount: number;
  readonly headCountKv: number;
  readonly contextLength: number;
}

export interface TinyModelOptions {
  /** Same seed, same bytes. Default 1. */
  readonly seed?: number;
  readonly variant?: TinyModelVariant;
  /**
   * Overrides of TINY_MODEL_SHAPE, for a model big enough that its compute shows (benchmarks of
   * prompt evaluation): e.g. 512 wide with 8 layers is about 26 million parameters, ~100 MB.
   */
  readonly shape?: Partial<TinyModelShape>;
}

/** The shape of every tiny model: small enough to load in milliseconds on one CPU core. */
export const TINY_MODEL_SHAPE = {
  embeddingLength: 64,
  feedForwardLength: 128,
  blockCount: 2,
  headCount: 4,
  headCountKv: 2,
  contextLength: 4096,
} as const satisfies TinyModelShape;

/** The shape with `overrides` applied; throws when llama.cpp could not load it. */
const resolveShape = (overrides: Partial<TinyModelShape> = {}): TinyModelShape => {
  const shape = { ...TINY_MODEL_SHAPE, ...overrides };
  for (const [name, value] of Object.entries(shape)) {
    if (!Number.isInteger(value) || value < 1)
      throw new Error(`shape.${name} must be a positive integer, got ${value}`);
  }
  if (shape.embeddingLength % shape.headCount !== 0)
    throw new Error("shape.embeddingLength must be a multiple of shape.headCount");
  if (shape.headCount % shape.headCountKv !== 0)
    throw new Error("shape.headCount must be a multiple of shape.headCountKv");
  return shape;
};

const isDefaultShape = (shape: TinyModelShape): boolean =>
  (Object.keys(TINY_MODEL_SHAPE) as (keyof TinyModelShape)[]).every(
    (key) => shape[key] === TINY_MODEL_SHAPE[key],
  );

// A plain-text chat template (no special tokens), so prompts tokenize with the byte vocabulary.
const CHAT_TEMPLATE =
  "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}" +
  "{% if add_generation_prompt %}assistant: {% endif %}";

const u32 = (value: number): GgufValue => ({ type: "uint32", value });

/** Builds the whole file in memory (about 0.6 MB with the default shape). */
export const buildTinyModel = (options: TinyModelOptions = {}): Buffer => {
  const seed = options.seed ?? 1;
  const variant = options.variant ?? "chat";
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new Error(`seed must be an integer from 0 to 4294967295, got ${seed}`);
  }
  const shape = resolveShape(options.shape);
  const vocab = buildSpmVocab();
  const nVocab = vocab.tokens.length;
  const nEmbd = shape.embeddingLength;
  const nFf = shape.feedForwardLength;
  const nEmbdKv = (nEmbd / shape.headCount) * shape.headCountKv;

  const metadata = new Map<string, GgufValue>([
    ["general.architecture", { type: "string", value: "llama" }],
    [
      "general.name",
      {
        type: "string",
        value: `tiny-${variant}-seed${seed}${isDefaultShape(shape) ? "" : `-${nEmbd}x${shape.blockCount}`}`,
      },
    ],
    ["general.file_type", u32(0)], // all F32
    ["llama.context_length", u32(shape.contextLength)],
    ["llama.embedding_length", u32(nEmbd)],
    ["llama.block_count", u32(shape.blockCount)],
    ["llama.feed_forward_length", u32(nFf)],
    ["llama.attention.head_count", u32(shape.headCount)],
    ["llama.attention.head_count_kv", u32(shape.headCountKv)],
    ["llama.attention.layer_norm_rms_epsilon", { type: "float32", value: 1e-5 }],
    ["llama.rope.dimension_count", u32(nEmbd / shape.headCount)],
    ["llama.rope.freq_base", { type: "float32", value: 10_000 }],
    ["llama.vocab_size", u32(nVocab)],
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "string[]", value: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: "float32[]", value: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: "int32[]", value: vocab.types }],
    ["tokenizer.ggml.unknown_token_id", u32(vocab.unknownId)],
    ["tokenizer.ggml.bos_token_id", u32(vocab.bosId)],
    ["tokenizer.ggml.eos_token_id", u32(vocab.eosId)],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
  ]);
  if (variant === "chat") {
    metadata.set("tokenizer.chat_template", { type: "string", value: CHAT_TEMPLATE });
  } else {
    metadata.set("llama.pooling_type", u32(1)); // LLAMA_POOLING_TYPE_MEAN
  }

  // Weights small enough that activations stay finite through the layers; norms start at one.
  // Wider models get proportionally smaller weights (1 / sqrt(width)), so their activations and
  // logits stay the size the default shape's are.
  const widthScale = Math.sqrt(TINY_MODEL_SHAPE.embeddingLength / nEmbd);
  const random = new SeededRandom(seed);
  const weights = (
    name: string,
    dims: readonly number[],
    scale = 0.08 * widthScale,
  ): GgufTensor => ({
    name,
    dims,
    data: random.uniform(
      dims.reduce((product, dim) => product * dim, 1),
      scale,
    ),
  });
  const ones = (name: string, length: number): GgufTensor => ({
    name,
    dims: [length],
    data: new Float32Array(length).fill(1),
  });

  const tensors: GgufTensor[] = [weights("token_embd.weight", [nEmbd, nVocab], 1)];
  for (let block = 0; block < shape.blockCount; block++) {
    const prefix = `blk.${block}`;
    tensors.push(
      ones(`${prefix}.attn_norm.weight`, nEmbd),
      weights(`${prefix}.attn_q.weight`, [nEmbd, nEmbd]),
      weights(`${prefix}.attn_k.weight`, [nEmbd, nEmbdKv]),
      weights(`${prefix}.attn_v.weight`, [nEmbd, nEmbdKv]),
      weights(`${prefix}.attn_output.weight`, [nEmbd, nEmbd]),
      ones(`${prefix}.ffn_norm.weight`, nEmbd),
      weights(`${prefix}.ffn_gate.weight`, [nEmbd, nFf]),
      weights(`${prefix}.ffn_down.weight`, [nFf, nEmbd]),
      weights(`${prefix}.ffn_up.weight`, [nEmbd, nFf]),
    );
  }
  tensors.push(
    ones("output_norm.weight", nEmbd),
    weights("output.weight", [nEmbd, nVocab], 0.5 * widthScale),
  );
  return encodeGguf(metadata, tensors);
};

/**
 * Writes a tiny model to `path` atomically: a reader never sees a half-written file, and two
 * writers racing for one path both leave a complete one.
 */
export const writeTinyModel = async (
  path: string,
  options: TinyModelOptions = {},
): Promise<void> => {
  const bytes = buildTinyModel(options);
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${randomBytes(6).toString("hex")}.partial`;
  try {
    await writeFile(temporary, bytes);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
};
