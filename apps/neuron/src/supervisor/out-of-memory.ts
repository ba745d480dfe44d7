import { ENGINE_OUT_OF_MEMORY, requestedMbText } from "@cortex/protocol";
import { NeuronError } from "../errors.js";

// An engine that dies at start because the GPU could not hold it says so in its output, each
// in its own words. Recognising the words turns a generic load failure into insufficient_vram,
// quoting the line, so cortex learns the model needs more memory than it thought.

/**
 * Out-of-memory lines, case-insensitive, by engine:
 * - CUDA runtime and llama.cpp's CUDA backend: `CUDA error: out of memory`,
 *   `cudaMalloc failed: out of memory`;
 * - PyTorch, so vLLM and SGLang: `CUDA out of memory` (`torch.OutOfMemoryError`);
 * - vLLM when the weights fit but no KV cache does: `No available memory for the cache blocks`;
 * - llama.cpp (every backend): `ggml_backend_<backend>_buffer_type_alloc_buffer: allocating …
 *   failed`, and its `failed to allocate …` (buffers, compute buffers, the KV cache);
 * - Vulkan: `ErrorOutOfDeviceMemory`, `VK_ERROR_OUT_OF_DEVICE_MEMORY`, and llama.cpp's
 *   `Device memory allocation of size … failed`;
 * - ROCm: `hipErrorOutOfMemory`, `HIP out of memory`;
 * - Metal: `Insufficient Memory` (`kIOGPUCommandBufferCallbackErrorOutOfMemory`).
 */
export const OUT_OF_MEMORY_SIGNATURES: readonly RegExp[] = [
  /CUDA error: out of memory/i,
  /cudaMalloc failed: out of memory/i,
  /CUDA out of memory/i,
  /No available memory for the cache blocks/i,
  /ggml_backend_\w{1,40}_buffer_type_alloc_buffer: allocating .{0,200}failed/i,
  /failed to allocate\b/i,
  /Device memory allocation of size \d{1,20} failed/i,
  /ErrorOutOfDeviceMemory/i,
  /VK_ERROR_OUT_OF_DEVICE_MEMORY/i,
  /hipErrorOutOfMemory/i,
  /HIP out of memory/i,
  /Insufficient Memory/i,
  /kIOGPUCommandBufferCallbackErrorOutOfMemory/i,
];

/** The lines of output looked at: an engine's last words are at the end. */
const LINES_SCANNED = 200;
/** Longer lines are looked at (and quoted) only up to here. */
export const MAX_OOM_LINE_CHARS = 500;

/** MiB per unit; a size with no unit is in bytes (llama.cpp's `buffer of size 21474836480`). */
const UNIT_MB: Readonly<Record<string, number>> = {
  b: 1 / 2 ** 20,
  byte: 1 / 2 ** 20,
  bytes: 1 / 2 ** 20,
  kb: 1 / 1024,
  kib: 1 / 1024,
  mb: 1,
  mib: 1,
  gb: 1024,
  gib: 1024,
  tb: 1024 * 1024,
  tib: 1024 * 1024,
};

/**
 * `allocating 20480.00 MiB`, `Tried to allocate 2.00 GiB`, `of size 21474836480`,
 * `size = 1024.00 MiB`, `allocation of size 4294967296`.
 */
const SIZE =
  /(?:allocat(?:e|ing)|of size|size\s*=)\s*(\d{1,16}(?:\.\d{1,6})?)\s*(bytes?|[kmgt]i?b|b)?\b/i;

/** The size an out-of-memory line says was asked for, in MiB (rounded up); null if none. */
export const requestedMbOf = (line: string): number | null => {
  const match = SIZE.exec(line);
  if (!match?.[1]) return null;
  const unit = (match[2] ?? "bytes").toLowerCase();
  const perUnit = Object.hasOwn(UNIT_MB, unit) ? UNIT_MB[unit] : undefined;
  if (perUnit === undefined) return null;
  const mb = Math.ceil(Number(match[1]) * perUnit);
  return Number.isSafeInteger(mb) && mb > 0 && mb <= 999_999_999 ? mb : null;
};

export interface OutOfMemory {
  /** The line quoted, trimmed and at most MAX_OOM_LINE_CHARS long. */
  readonly line: string;
  readonly requestedMb: number | null;
}

/**
 * The out-of-memory line in an engine's output, or null. Of several (llama.cpp prints three for
 * one failure), the first that states a size, else the first.
 */
export const findOutOfMemory = (output: string): OutOfMemory | null => {
  const lines = output.split("\n").slice(-LINES_SCANNED);
  let first: OutOfMemory | null = null;
  for (const raw of lines) {
    const line = raw.trim().slice(0, MAX_OOM_LINE_CHARS);
    if (!OUT_OF_MEMORY_SIGNATURES.some((signature) => signature.test(line))) continue;
    const found = { line, requestedMb: requestedMbOf(line) };
    if (found.requestedMb !== null) return found;
    first ??= found;
  }
  return first;
};

/**
 * The load failure of an engine that ran out of memory while starting: insufficient_vram,
 * with the protocol's words (ENGINE_OUT_OF_MEMORY, `requested_mb=` when the line says) and the
 * line quoted, then what the harness did.
 */
export const engineOutOfMemoryError = (id: string, found: OutOfMemory, what: string): NeuronError =>
  new NeuronError(
    "insufficient_vram",
    `model "${id}": ${ENGINE_OUT_OF_MEMORY}${
      found.requestedMb === null ? "" : ` (${requestedMbText(found.requestedMb)})`
    }: "${found.line}"; the harness ${what}`,
    { retryAfterS: 5 },
  );
