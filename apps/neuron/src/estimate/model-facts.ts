import { tensorBytes } from "./ggml-types.js";

// What a GGUF header says about a model's memory, reduced to a few numbers: the bytes of each
// layer's tensors, of the output and input tensors, and the KV cache's width per layer. Small
// enough to cache per source, and all the estimate needs whatever the context, slots and args.

/** One tensor as the header describes it. */
export interface TensorInfo {
  readonly name: string;
  /** GGUF order: the first dimension varies fastest. */
  readonly shape: readonly (number | bigint)[];
  /** GGML type id. */
  readonly dtype: number;
}

/** A parsed header: its key/values (read as own properties only) and tensor infos. */
export interface GgufHeader {
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly tensors: readonly TensorInfo[];
  /** Where tensor data starts in the file. */
  readonly dataOffset: number;
  /** The file's size when the reader learnt it (local size, Content-Range); null otherwise. */
  readonly fileSize: number | null;
}

/** The KV cache per token of one layer, in values: key_length × KV heads, value_length × KV heads. */
export interface LayerKv {
  readonly k: number;
  readonly v: number;
}

export interface ModelFacts {
  readonly architecture: string;
  /** `<arch>.block_count`: the repeating layers llama.cpp offloads one by one. */
  readonly blockCount: number;
  /** Bytes of `blk.<i>.*` for each layer i < blockCount. */
  readonly layerBytes: readonly number[];
  /**
   * Bytes llama.cpp places with the output layer: `output*`, any other tensor outside the
   * layers, and, for a model with tied embeddings (no `output.weight`), the copy of
   * `token_embd.weight` it uses as the output.
   */
  readonly outputBytes: number;
  /** Input layer (token and position embeddings), which llama.cpp always keeps on the CPU. */
  readonly inputBytes: number;
  readonly kv: readonly LayerKv[];
  /** The most attention heads of any layer: the attention scores of a micro-batch are per head. */
  readonly headCount: number;
  readonly vocabSize: number;
  /** `<arch>.context_length`, the trained context; null when the header has none. */
  readonly trainContext: number | null;
}

export type FactsResult =
  | { readonly kind: "facts"; readonly facts: ModelFacts }
  | { readonly kind: "reject"; readonly reason: string };

/** More than any real model has (DeepSeek-V3 has about 1,100); a count past it is a crafted file. */
export const MAX_TENSORS = 100_000;
/** Layers, likewise (the deepest published models have under 200). */
const MAX_LAYERS = 10_000;
/** A header claiming more weights than this (1 PiB) without a known file size is not believed. */
const MAX_PLAUSIBLE_BYTES = 2 ** 50;

const INPUT_TENSOR = /^(token_embd|position_embd|token_types|token_embd_norm)\./;
const LAYER_TENSOR = /^blk\.(\d{1,9})\./;

const own = (metadata: Readonly<Record<string, unknown>>, key: string): unknown =>
  Object.hasOwn(metadata, key) ? metadata[key] : undefined;

/** A non-negative safe integer from a number or bigint value; undefined otherwise. */
const count = (value: unknown): number | undefined => {
  const number = typeof value === "bigint" ? Number(value) : value;
  return typeof number === "number" && Number.isSafeInteger(number) && number >= 0
    ? number
    : undefined;
};

/** A per-layer value: one count for every layer, or an array of one per layer. */
const perLayer = (value: unknown, layers: number): number[] | undefined => {
  if (Array.isArray(value)) {
    if (value.length !== layers) return undefined;
    const counts = value.map(count);
    return counts.every((item) => item !== undefined) ? (counts as number[]) : undefined;
  }
  const single = count(value);
  return single === undefined ? undefined : Array<number>(layers).fill(single);
};

const dimsOf = (shape: readonly (number | bigint)[]): number[] | undefined => {
  const dims = shape.map(count);
  return dims.every((dim) => dim !== undefined) ? (dims as number[]) : undefined;
};

/** Everything after `<arch>.` that the estimate reads, or the first key missing. */
const architectureOf = (
  metadata: Readonly<Record<string, unknown>>,
): { arch: string; blocks: number; embedding: number; heads: number[] } | string => {
  const arch = own(metadata, "general.architecture");
  if (typeof arch !== "string" || arch === "") return "general.architecture is missing";
  const blocks = count(own(metadata, `${arch}.block_count`));
  if (blocks === undefined || blocks < 1 || blocks > MAX_LAYERS) {
    return `${arch}.block_count is missing or not a count of layers`;
  }
  const embedding = count(own(metadata, `${arch}.embedding_length`));
  if (embedding === undefined || embedding < 1) return `${arch}.embedding_length is missing`;
  const heads = perLayer(own(metadata, `${arch}.attention.head_count`), blocks);
  if (heads === undefined) return `${arch}.attention.head_count is missing`;
  return { arch, blocks, embedding, heads };
};

/**
 * The KV width of each layer. KV heads default to the attention heads (llama.cpp's
 * `n_head_kv_arr`); key and value lengths to embedding_length / heads when the header has no
 * `key_length` / `value_length`. A layer without attention (0 heads, as in hybrid models) has none.
 */
const kvOf = (
  metadata: Readonly<Record<string, unknown>>,
  arch: string,
  blocks: number,
  embedding: number,
  heads: readonly number[],
): LayerKv[] | string => {
  const kvKey = `${arch}.attention.head_count_kv`;
  const kvHeads = Object.hasOwn(metadata, kvKey)
    ? perLayer(own(metadata, kvKey), blocks)
    : [...heads];
  if (kvHeads === undefined) return `${kvKey} is not a count of heads`;
  const keyLength = count(own(metadata, `${arch}.attention.key_length`));
  const valueLength = count(own(metadata, `${arch}.attention.value_length`));
  return heads.map((head, layer) => {
    const kvHead = kvHeads[layer] ?? 0;
    if (head === 0 || kvHead === 0) return { k: 0, v: 0 };
    const fallback = Math.floor(embedding / head);
    return { k: (keyLength ?? fallback) * kvHead, v: (valueLength ?? fallback) * kvHead };
  });
};

/**
 * Reduces a header to the facts the estimate needs, or says why it cannot: metadata missing,
 * a tensor type or name it cannot place, or tensor shapes whose bytes exceed the file itself
 * (a truncated or crafted header).
 */
export const factsOf = (header: GgufHeader): FactsResult => {
  const reject = (reason: string): FactsResult => ({ kind: "reject", reason });
  const { metadata, tensors } = header;
  if (tensors.length > MAX_TENSORS) {
    return reject(`the header lists ${tensors.length} tensors (at most ${MAX_TENSORS})`);
  }
  const described = architectureOf(metadata);
  if (typeof described === "string") return reject(described);
  const { arch, blocks, embedding, heads } = described;
  const kv = kvOf(metadata, arch, blocks, embedding, heads);
  if (typeof kv === "string") return reject(kv);

  const layerBytes = Array<number>(blocks).fill(0);
  let outputBytes = 0;
  let inputBytes = 0;
  let embeddingBytes = 0;
  let tiedOutput = true;
  let vocabSize = 0;
  for (const tensor of tensors) {
    const dims = dimsOf(tensor.shape);
    const bytes = dims === undefined ? null : tensorBytes(tensor.dtype, dims);
    if (bytes === null) {
      return reject(`tensor "${tensor.name}" has GGML type ${tensor.dtype}, which is not known`);
    }
    const layer = LAYER_TENSOR.exec(tensor.name);
    const index = layer?.[1] === undefined ? -1 : Number(layer[1]);
    if (index >= 0 && index < blocks) {
      layerBytes[index] = (layerBytes[index] ?? 0) + bytes;
    } else if (INPUT_TENSOR.test(tensor.name)) {
      inputBytes += bytes;
      if (tensor.name === "token_embd.weight") {
        embeddingBytes = bytes;
        vocabSize = dims?.[1] ?? 0;
      }
    } else {
      if (tensor.name === "output.weight") tiedOutput = false;
      outputBytes += bytes;
    }
  }
  // Tied embeddings: llama.cpp loads token_embd a second time as the output layer.
  if (tiedOutput) outputBytes += embeddingBytes;

  const total = layerBytes.reduce((sum, bytes) => sum + bytes, 0) + outputBytes + inputBytes;
  const room = header.fileSize === null ? MAX_PLAUSIBLE_BYTES : header.fileSize - header.dataOffset;
  const stored = total - (tiedOutput ? embeddingBytes : 0);
  if (!Number.isFinite(stored) || stored > room) {
    return reject(
      `its tensors would take ${stored} bytes, more than the ${Math.max(0, room)} bytes of data the file holds; the file is truncated or not a model`,
    );
  }
  if (vocabSize === 0) {
    vocabSize =
      count(own(metadata, `${arch}.vocab_size`)) ??
      (Array.isArray(own(metadata, "tokenizer.ggml.tokens"))
        ? (own(metadata, "tokenizer.ggml.tokens") as unknown[]).length
        : 0);
  }
  return {
    kind: "facts",
    facts: {
      architecture: arch,
      blockCount: blocks,
      layerBytes,
      outputBytes,
      inputBytes,
      kv,
      headCount: Math.max(...heads),
      vocabSize,
      trainContext: count(own(metadata, `${arch}.context_length`)) ?? null,
    },
  };
};
