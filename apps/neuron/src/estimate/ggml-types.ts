// Bytes per tensor from its GGML type: how many elements one block holds and how many bytes the
// block takes. @huggingface/gguf keeps such a table (GGML_QUANT_SIZES) but does not export it,
// so it is written out here from the block structs of ggml (ggml/src/ggml-common.h and
// `type_traits` in ggml/src/ggml.c), by type id as GGUF files carry it (`enum ggml_type`).
// A type missing here makes a file not estimable rather than guessed at.

interface BlockLayout {
  /** Elements per block. */
  readonly block: number;
  /** Bytes per block. */
  readonly bytes: number;
}

const QK_K = 256;

const LAYOUTS: ReadonlyMap<number, BlockLayout> = new Map([
  [0, { block: 1, bytes: 4 }], // F32
  [1, { block: 1, bytes: 2 }], // F16
  [2, { block: 32, bytes: 2 + 16 }], // Q4_0: half scale + 32 nibbles
  [3, { block: 32, bytes: 2 + 2 + 16 }], // Q4_1: scale, min, 32 nibbles
  [6, { block: 32, bytes: 2 + 4 + 16 }], // Q5_0
  [7, { block: 32, bytes: 2 + 2 + 4 + 16 }], // Q5_1
  [8, { block: 32, bytes: 2 + 32 }], // Q8_0
  [9, { block: 32, bytes: 4 + 32 }], // Q8_1: half2 (scale, sum) + 32 bytes
  [10, { block: QK_K, bytes: 2 + 2 + QK_K / 16 + QK_K / 4 }], // Q2_K
  [11, { block: QK_K, bytes: 2 + QK_K / 4 + QK_K / 8 + 12 }], // Q3_K
  [12, { block: QK_K, bytes: 2 + 2 + 12 + QK_K / 2 }], // Q4_K
  [13, { block: QK_K, bytes: 2 + 2 + 12 + QK_K / 8 + QK_K / 2 }], // Q5_K
  [14, { block: QK_K, bytes: 2 + QK_K / 2 + QK_K / 4 + QK_K / 16 }], // Q6_K
  [15, { block: QK_K, bytes: 4 + QK_K + (QK_K / 16) * 2 }], // Q8_K
  [16, { block: QK_K, bytes: 2 + QK_K / 4 }], // IQ2_XXS
  [17, { block: QK_K, bytes: 2 + QK_K / 4 + QK_K / 32 }], // IQ2_XS
  [18, { block: QK_K, bytes: 2 + (3 * QK_K) / 8 }], // IQ3_XXS
  [19, { block: QK_K, bytes: 2 + QK_K / 8 + QK_K / 16 }], // IQ1_S
  [20, { block: 32, bytes: 2 + 16 }], // IQ4_NL
  [21, { block: QK_K, bytes: 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4 }], // IQ3_S
  [22, { block: QK_K, bytes: 2 + QK_K / 4 + QK_K / 16 }], // IQ2_S
  [23, { block: QK_K, bytes: 2 + 2 + QK_K / 2 + QK_K / 64 }], // IQ4_XS
  [24, { block: 1, bytes: 1 }], // I8
  [25, { block: 1, bytes: 2 }], // I16
  [26, { block: 1, bytes: 4 }], // I32
  [27, { block: 1, bytes: 8 }], // I64
  [28, { block: 1, bytes: 8 }], // F64
  [29, { block: QK_K, bytes: QK_K / 8 + QK_K / 16 + QK_K / 32 }], // IQ1_M
  [30, { block: 1, bytes: 2 }], // BF16
  [34, { block: QK_K, bytes: 2 + 4 * 13 }], // TQ1_0
  [35, { block: QK_K, bytes: 2 + QK_K / 4 }], // TQ2_0
  [39, { block: 32, bytes: 1 + 16 }], // MXFP4: E8M0 scale + 32 nibbles
]);

/**
 * Bytes a tensor of GGML type `type` with dimensions `shape` (GGUF order, the first varying
 * fastest) takes: whole blocks along the first dimension, times the other dimensions, as
 * `ggml_nbytes` counts a contiguous tensor. Null for a type this table does not know.
 */
export const tensorBytes = (type: number, shape: readonly number[]): number | null => {
  const layout = LAYOUTS.get(type);
  if (layout === undefined) return null;
  const [first = 1, ...rest] = shape;
  const rows = rest.reduce((product, dim) => product * dim, 1);
  return Math.ceil(first / layout.block) * layout.bytes * rows;
};

/**
 * KV cache types llama.cpp accepts for `--cache-type-k` / `--cache-type-v` (common/arg.cpp,
 * `kv_cache_types`), by name, as GGML type ids. f16 is the default; q8_0 takes 34 bytes per 32
 * values (1.0625 bytes each), q4_0 18 bytes per 32 (0.5625).
 */
export const CACHE_TYPES: ReadonlyMap<string, number> = new Map([
  ["f32", 0],
  ["f16", 1],
  ["bf16", 30],
  ["q8_0", 8],
  ["q4_0", 2],
  ["q4_1", 3],
  ["iq4_nl", 20],
  ["q5_0", 6],
  ["q5_1", 7],
]);

/** The GGML type id of f16, every engine's default KV cache type. */
export const F16 = 1;
