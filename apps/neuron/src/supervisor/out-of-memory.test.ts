import { ENGINE_OUT_OF_MEMORY, engineOutOfMemory } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { NeuronError } from "../errors.js";
import { systemTimers } from "../timers.js";
import { LAUNCH, type Scripted, scripted } from "./harness-supervisor.fixtures.js";
import { HarnessSupervisor } from "./harness-supervisor.js";
import {
  engineOutOfMemoryError,
  findOutOfMemory,
  MAX_OOM_LINE_CHARS,
  requestedMbOf,
} from "./out-of-memory.js";

// Engines' own words when a model does not fit, as they print them at start.

const LLAMA_CUDA = `llama_model_loader: loaded meta data with 33 key-value pairs and 291 tensors from /srv/models/qwen2.5-32b-q4_k_m.gguf (version GGUF V3 (latest))
load_tensors: offloading 64 repeating layers to GPU
ggml_backend_cuda_buffer_type_alloc_buffer: allocating 20480.00 MiB on device 0: cudaMalloc failed: out of memory
alloc_tensor_range: failed to allocate CUDA0 buffer of size 21474836480
llama_model_load: error loading model: unable to allocate CUDA0 buffer
llama_model_load_from_file_impl: failed to load model
main: exiting due to model loading error`;

const LLAMA_KV = `llama_context: n_ctx_per_seq = 131072
llama_kv_cache_unified: failed to allocate buffer for kv cache
llama_init_from_model: failed to initialize the context: failed to allocate buffer for kv cache`;

const LLAMA_CUDA_ERROR = `CUDA error: out of memory
  current device: 0, in function alloc at /app/ggml/src/ggml-cuda/ggml-cuda.cu:467
  cuMemCreate(&handle, reserve_size, &prop, 0)`;

const VLLM = `  File "/usr/local/lib/python3.12/dist-packages/torch/nn/modules/module.py", line 1355, in convert
    return t.to(
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 78.12 GiB memory in use.`;

const VLLM_KV = `INFO 06-01 12:00:00 [gpu_worker.py:227] Available KV cache memory: -1.52 GiB
ERROR 06-01 12:00:00 [core.py:586] ValueError: No available memory for the cache blocks. Try increasing \`gpu_memory_utilization\` when initializing the engine.`;

const VULKAN = `ggml_vulkan: Device memory allocation of size 4294967296 failed.
ggml_vulkan: vk::Device::allocateMemory: ErrorOutOfDeviceMemory
llama_model_load: error loading model: vk::Device::allocateMemory: ErrorOutOfDeviceMemory`;

const VULKAN_RAW = "VkResult VK_ERROR_OUT_OF_DEVICE_MEMORY while creating the buffer";

const ROCM = `RuntimeError: HIP error: hipErrorOutOfMemory
HIP kernel errors might be asynchronously reported at some other API call`;

const ROCM_TORCH =
  "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 1.50 GiB. GPU 0 has a total capacity of 23.98 GiB";

const METAL = `ggml_metal_graph_compute: command buffer 0 failed with status 5
error: Insufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)`;

const METAL_ALLOC =
  "ggml_backend_metal_buffer_type_alloc_buffer: error: failed to allocate buffer, size = 16384.00 MiB";

describe("findOutOfMemory", () => {
  it.each([
    [
      "llama.cpp on CUDA (the line with the size, of three)",
      LLAMA_CUDA,
      "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 20480.00 MiB on device 0: cudaMalloc failed: out of memory",
      20480,
    ],
    [
      "llama.cpp's KV cache",
      LLAMA_KV,
      "llama_kv_cache_unified: failed to allocate buffer for kv cache",
      null,
    ],
    ["a CUDA error in llama.cpp", LLAMA_CUDA_ERROR, "CUDA error: out of memory", null],
    [
      "vLLM's PyTorch",
      VLLM,
      "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 78.12 GiB memory in use.",
      2048,
    ],
    [
      "vLLM with no room for its KV cache",
      VLLM_KV,
      "ERROR 06-01 12:00:00 [core.py:586] ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.",
      null,
    ],
    [
      "llama.cpp on Vulkan",
      VULKAN,
      "ggml_vulkan: Device memory allocation of size 4294967296 failed.",
      4096,
    ],
    ["Vulkan's own constant", VULKAN_RAW, VULKAN_RAW, null],
    ["ROCm", ROCM, "RuntimeError: HIP error: hipErrorOutOfMemory", null],
    ["PyTorch on ROCm", ROCM_TORCH, ROCM_TORCH, 1536],
    [
      "Metal at run time",
      METAL,
      "error: Insufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)",
      null,
    ],
    ["Metal allocating", METAL_ALLOC, METAL_ALLOC, 16384],
  ])("finds %s", (_, output, line, requestedMb) => {
    expect(findOutOfMemory(output)).toEqual({ line, requestedMb });
  });

  it.each([
    [
      "a start that worked",
      "main: server is listening on http://127.0.0.1:8080 - starting the main loop",
    ],
    ["a bad argument", "error: invalid argument: --flash-attn-x"],
    ["another CUDA error", "CUDA error: invalid device ordinal"],
    [
      "a missing file",
      "gguf_init_from_file: failed to open GGUF file 'x.gguf' (No such file or directory)",
    ],
    ["nothing", ""],
  ])("finds nothing in %s", (_, output) => {
    expect(findOutOfMemory(output)).toBeNull();
  });

  it("matches case-insensitively and quotes a huge line only up to its bound", () => {
    const line = `cuda ERROR: Out Of Memory ${"x".repeat(10_000)}`;
    const found = findOutOfMemory(`starting\n${line}\n`);
    expect(found?.line).toHaveLength(MAX_OOM_LINE_CHARS);
    expect(found?.line.startsWith("cuda ERROR: Out Of Memory")).toBe(true);
  });

  it("looks only at the last lines: an engine's last words are at the end", () => {
    const old = "CUDA error: out of memory\n";
    expect(findOutOfMemory(old + "fine\n".repeat(500))).toBeNull();
    expect(findOutOfMemory(`${"fine\n".repeat(500)}${old}`)).not.toBeNull();
  });
});

describe("requestedMbOf", () => {
  it.each([
    ["allocating 20480.00 MiB on device 0", 20480],
    ["Tried to allocate 2.00 GiB.", 2048],
    ["Tried to allocate 20.00 MiB (GPU 0; 23.65 GiB total capacity)", 20],
    ["failed to allocate CUDA0 buffer of size 21474836480", 20480],
    ["failed to allocate buffer, size = 1024.50 MiB", 1025],
    ["Tried to allocate 512.00 KiB", 1],
    ["Tried to allocate 1.00 TiB", 1_048_576],
    ["failed to allocate compute buffers", null],
    ["allocating 9999999999999999 GiB", null],
  ])("reads %j as %j MB", (line, mb) => {
    expect(requestedMbOf(line)).toBe(mb);
  });
});

describe("engineOutOfMemoryError", () => {
  it("is insufficient_vram, in the protocol's words, quoting the line and the size", () => {
    const found = findOutOfMemory(LLAMA_CUDA);
    if (!found) throw new Error("no line found");
    const error = engineOutOfMemoryError("qwen", found, "exited with code 1 before it was ready");
    expect(error).toBeInstanceOf(NeuronError);
    expect(error.code).toBe("insufficient_vram");
    expect(error.retryAfterS).toBe(5);
    expect(error.message).toBe(
      `model "qwen": ${ENGINE_OUT_OF_MEMORY} (requested_mb=20480): "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 20480.00 MiB on device 0: cudaMalloc failed: out of memory"; the harness exited with code 1 before it was ready`,
    );
    expect(engineOutOfMemory(error.message)).toEqual({ requested_mb: 20480 });
  });

  it("says nothing of a size its line did not state; other messages are not engine failures", () => {
    const error = engineOutOfMemoryError(
      "m",
      { line: "CUDA error: out of memory", requestedMb: null },
      "was not ready within 60000 ms",
    );
    expect(engineOutOfMemory(error.message)).toEqual({ requested_mb: null });
    expect(
      engineOutOfMemory(
        'model "m" needs 16000 MB on each of device(s) 0; free now: 0: 8000 MB; evicting every idle model of priority ≤ 0 would not make enough room',
      ),
    ).toBeNull();
  });
});

describe("a harness that runs out of memory while starting", () => {
  let processes: Scripted[];
  let ready: boolean;

  beforeEach(() => {
    vi.useFakeTimers();
    processes = [];
    ready = false;
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const supervisor = (readyTimeoutMs = 60_000) =>
    new HarnessSupervisor(
      {
        id: "qwen",
        prepare: async () => () => ({ launch: LAUNCH, env: {} }),
        readyTimeoutMs: () => readyTimeoutMs,
        onState: () => {},
      },
      {
        runner: {
          start: () => {
            const process = scripted(2000 + processes.length);
            processes.push(process);
            return process.child;
          },
        },
        freePort: async () => 40_000,
        probe: async () => ready,
        onRecordError: () => {},
        now: () => Date.now(),
        timers: systemTimers,
      },
      {
        stopGraceMs: 100,
        readyPollMs: 200,
        restartDelaysMs: [],
        stableAfterMs: 60_000,
        healthIntervalMs: 0,
        unhealthyAfterFailures: 3,
      },
    );

  const started = async (harness: HarnessSupervisor) => {
    const failure = harness.start().then(
      () => expect.unreachable("it became ready"),
      (error: unknown) => error as NeuronError,
    );
    await vi.waitFor(() => expect(processes).toHaveLength(1));
    const [process] = processes;
    if (!process) throw new Error("nothing started");
    return { failure, process };
  };

  it("fails its start with insufficient_vram quoting the line, when it exits", async () => {
    const { failure, process } = await started(supervisor());
    process.child.output.write(`${LLAMA_CUDA}\n`);
    process.crash(1);
    const error = await failure;
    expect(error.code).toBe("insufficient_vram");
    expect(error.message).toContain("(requested_mb=20480)");
    expect(error.message).toMatch(/; the harness exited with code 1 before it was ready$/);
  });

  it("and when it hangs after saying so, at its readiness deadline", async () => {
    const { failure, process } = await started(supervisor(1000));
    process.child.output.write(`${VLLM_KV}\n`);
    await vi.advanceTimersByTimeAsync(1400);
    const error = await failure;
    expect(error.code).toBe("insufficient_vram");
    expect(error.message).toContain("No available memory for the cache blocks");
    expect(error.message).toMatch(/the harness was not ready within 1000 ms$/);
  });

  it("fails any other start as load_failed with the last output, as before", async () => {
    const { failure, process } = await started(supervisor());
    process.child.output.write("error: invalid argument: --flash-attn-x\n");
    process.crash(1);
    const error = await failure;
    expect(error.code).toBe("load_failed");
    expect(error.message).toMatch(/^harness exited with code 1 before it was ready; last output:/);
  });
});
