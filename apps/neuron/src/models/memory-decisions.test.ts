import type { Device, LoadRequest } from "@cortex/protocol";
import { gpuDevice } from "@cortex/testkit";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DiscoveryCache } from "../discovery/discovery-cache.js";
import type { GpuProcess } from "../discovery/gpu-processes.js";
import type { NeuronError } from "../errors.js";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { type Scripted, scripted } from "../supervisor/harness-supervisor.fixtures.js";
import { testManager } from "./model-manager.fixtures.js";
import type { ModelManager } from "./model-manager.js";

// Loads decided on the GPUs as they are, not as they were: the real discovery cache over a GPU
// source whose reads the test answers one by one (as a slow nvidia-smi would), scripted harness
// processes, and measured memory per process group. Nothing sleeps.

const BUS = "00000000:01:00.0";
const gpu = (free: number): Device => gpuDevice(0, 24_000, free, { bus_id: BUS });

const fake = defineHarness(
  "fake",
  { command: ["fake-harness", "--model", "{model_path}", "--port", "{port}"] },
  { node: process.execPath, entry: "unused" },
) as Harness;

/** Device reads wait here until the test answers them. */
let pending: ((devices: Device[]) => void)[];
let reads: number;
/** What per-process reads report. */
let apps: GpuProcess[];
let started: Scripted[];
/** The output the next harness prints before exiting at start, if it should fail. */
let failWith: string | null;
let cache: DiscoveryCache;
let managers: ModelManager[];

const request = (id: string, fields: Partial<LoadRequest> = {}): LoadRequest => ({
  model_id: id,
  harness: "fake",
  source: `${id}.gguf`,
  devices: [0],
  vram_mb: 16_000,
  ...fields,
});

/** Answers the device read under way (waiting for one to start) with `free` MB free. */
const answer = async (free: number): Promise<void> => {
  await vi.waitFor(() => expect(pending.length).toBeGreaterThan(0));
  pending.shift()?.([gpu(free)]);
};

/** Reads the GPUs now, answering with `free`. */
const readNow = async (free: number): Promise<void> => {
  const reading = cache.refresh();
  await answer(free);
  await reading;
};

/** A manager over the cache; `measured: false` is the neuron before this change. */
const managerWith = (measured: boolean): ModelManager => {
  const manager = testManager({
    harnesses: new Map([["fake", fake]]),
    runner: {
      start: () => {
        const process = scripted(100 + started.length * 10);
        started.push(process);
        if (failWith !== null) {
          process.child.output.write(failWith);
          process.crash(1);
        }
        return process.child;
      },
    },
    sources: { check: () => {}, prepare: async (source) => `/srv/models/${source}` },
    devices: () => cache.current().devices,
    ...(measured ? { gpuMemory: cache } : {}),
    probe: async () => true,
  });
  managers.push(manager);
  return manager;
};

const refusal = (loading: Promise<unknown>) =>
  loading.then(
    () => expect.unreachable("it loaded"),
    (error: unknown) => error as NeuronError,
  );

beforeEach(async () => {
  pending = [];
  reads = 0;
  apps = [];
  started = [];
  failWith = null;
  managers = [];
  cache = new DiscoveryCache({
    name: "gpu-1",
    source: {
      read: () => {
        reads += 1;
        return new Promise<Device[]>((resolve) => pending.push(resolve));
      },
    },
    processes: { read: async () => apps },
    host: async () => ({
      name: "gpu-1",
      hostname: "gpu-1",
      os: "Linux",
      kernel: "6.8",
      cpu: "test",
      memory_mb: 65_536,
    }),
    harnesses: [],
    // Only the reads a test asks for, or an exit causes, happen.
    refreshMs: 3_600_000,
    onWarning: () => {},
  });
  await readNow(24_000);
});

afterEach(async () => {
  vi.useRealTimers();
  for (const manager of managers) {
    const stopping = manager.shutdown();
    // Every exit asks for a read: answer them all.
    while (pending.length > 0) pending.shift()?.([gpu(24_000)]);
    await stopping;
  }
  cache.stop();
});

describe("a load right after an unload", () => {
  it("was refused on the reading that still counted the unloaded model", async () => {
    const manager = managerWith(false);
    await manager.load(request("a"));
    // The GPU shows a's 16 GB in use from the next reading on.
    await readNow(8_000);
    await manager.unload("a");
    const error = await refusal(manager.load(request("b")));
    expect(error.code).toBe("insufficient_vram");
    expect(error.message).toContain("free now: 0: 8000 MB");
  });

  it("now waits for a reading begun after the exit, and loads", async () => {
    const manager = managerWith(true);
    await manager.load(request("a"));
    await readNow(8_000);
    await manager.unload("a");
    // The exit asked for a read (nvidia-smi still running): the reading is stale meanwhile.
    expect(reads).toBe(3);
    expect(cache.fresh()).toBe(false);
    const loading = manager.load(request("b"));
    await answer(24_000);
    expect(await loading).toMatchObject({ id: "b", status: "loaded" });
    expect(reads).toBe(3);
    expect(manager.list().map((model) => [model.id, model.status])).toEqual([["b", "loaded"]]);
  });

  it("decides at once on a reading begun after the last exit", async () => {
    const manager = managerWith(true);
    await manager.load(request("a"));
    await readNow(8_000);
    // Even evicting a would not make room for 30 GB on a 24 GB GPU: refused, no new read.
    const error = await refusal(manager.load(request("b", { vram_mb: 30_000 })));
    expect(error.code).toBe("insufficient_vram");
    expect(reads).toBe(2);
    // Evicting for room on a fresh reading does not read again either; a's exit then does.
    expect(await manager.load(request("c"))).toMatchObject({ id: "c" });
    expect(manager.list().map((model) => model.id)).toEqual(["c"]);
    expect(reads).toBe(3);
  });

  it("does not evict for memory an exited harness already gave back", async () => {
    const manager = managerWith(true);
    await manager.load(request("a", { vram_mb: 8_000 }));
    await manager.load(request("b", { vram_mb: 8_000 }));
    // Something else on the GPU holds 2 GB besides a and b.
    await readNow(6_000);
    await manager.unload("a");
    // On the old reading c (8 GB) fits only by evicting b; on the new one it fits beside it.
    const loading = manager.load(request("c", { vram_mb: 8_000 }));
    await answer(14_000);
    await loading;
    expect(manager.list().map((model) => [model.id, model.status])).toEqual([
      ["b", "loaded"],
      ["c", "loaded"],
    ]);
  });
});

describe("a lazy reload right after another model left", () => {
  it("reads again before refusing it, and reloads", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const manager = managerWith(true);
    await manager.load(request("a", { idle_ttl_s: 1 }));
    await readNow(8_000);
    // a idles out (kept, unloaded); its exit's read says the GPU is free again.
    await vi.advanceTimersByTimeAsync(1000);
    await answer(24_000);
    await vi.waitFor(() => expect(cache.fresh()).toBe(true));
    await manager.load(request("b"));
    await readNow(8_000);
    await manager.unload("b");
    expect(cache.fresh()).toBe(false);
    // A request for a: on the reading that still counts b it could never fit.
    const served = manager.run("a", undefined, async (url) => url);
    await answer(24_000);
    expect(await served).toBe("http://127.0.0.1:9");
    expect(manager.list().map((model) => [model.id, model.status])).toEqual([["a", "loaded"]]);
  });
});

describe("measured memory", () => {
  it("lists what each resident model's process group holds, next to what it declared", async () => {
    const manager = managerWith(true);
    await manager.load(request("a", { vram_mb: 10_000 }));
    const group = manager.get("a")?.harness.pid;
    if (!group) throw new Error("a has no process");
    apps = [
      { pid: group + 1, group, usedMb: 20_000, busId: BUS },
      { pid: group, group, usedMb: 480, busId: BUS },
      { pid: 99_999, group: 99_999, usedMb: 1_000, busId: BUS },
    ];
    // Measured with the reading, not when asked.
    expect(manager.list()[0]).toMatchObject({ vram_mb: 10_000, vram_used_mb: null });
    await readNow(3_000);
    expect(manager.list()[0]).toMatchObject({
      id: "a",
      vram_mb: 10_000,
      vram_used_mb: 20_480,
      vram_used_by_device: [{ index: 0, used_mb: 20_480 }],
    });
  });

  it("lists null for a model not resident, and on a neuron that measures nothing", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const manager = managerWith(true);
    await manager.load(request("a", { idle_ttl_s: 1 }));
    const group = manager.get("a")?.harness.pid ?? 0;
    apps = [{ pid: group, group, usedMb: 16_000, busId: BUS }];
    await readNow(8_000);
    expect(manager.list()[0]?.vram_used_mb).toBe(16_000);
    await vi.advanceTimersByTimeAsync(1000);
    expect(manager.list()[0]).toMatchObject({
      status: "unloaded",
      vram_used_mb: null,
      vram_used_by_device: null,
    });
    const unmeasured = managerWith(false);
    await unmeasured.load(request("b", { devices: [], vram_mb: 0 }));
    expect(unmeasured.list()[0]).toMatchObject({ vram_used_mb: null, vram_used_by_device: null });
  });
});

describe("an engine that runs out of memory at start", () => {
  it("fails its load with insufficient_vram quoting the line, and is listed failed", async () => {
    failWith =
      "load_tensors: offloading 64 repeating layers to GPU\nggml_backend_cuda_buffer_type_alloc_buffer: allocating 20480.00 MiB on device 0: cudaMalloc failed: out of memory\n";
    const manager = managerWith(true);
    const error = await refusal(manager.load(request("big")));
    expect(error.code).toBe("insufficient_vram");
    expect(error.message).toContain(
      '(requested_mb=20480): "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 20480.00 MiB',
    );
    // Unlike the neuron's own refusal, something was tried: the operator sees why it failed.
    expect(manager.list()).toMatchObject([
      { id: "big", status: "failed", error: expect.stringContaining("cudaMalloc failed") },
    ]);
  });
});
