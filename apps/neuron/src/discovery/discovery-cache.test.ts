import { type Device, DiscoveryAnswer, type NodeInfo } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DiscoveryCache, type DiscoveryCacheOptions } from "./discovery-cache.js";
import type { GpuProcess, GpuProcessSource } from "./gpu-processes.js";
import type { GpuSource } from "./gpu-source.js";

const gpu = (index: number, free: number): Device => ({
  index,
  vendor: "NVIDIA",
  name: "NVIDIA H100 80GB HBM3",
  vram_total_mb: 81559,
  vram_free_mb: free,
  utilization_pct: 0,
  temperature_c: 30,
  bus_id: null,
  driver_version: "535.154.05",
});

const HOST: NodeInfo = {
  name: "gpu-1",
  hostname: "gpu-1.lab",
  os: "Ubuntu 22.04.4 LTS",
  kernel: "5.15.0-105-generic",
  cpu: "Intel Xeon Platinum 8480+",
  memory_mb: 2_063_872,
};

/** A source whose reads stay pending until the test answers them, one by one. */
const controlled = () => {
  const pending: { resolve: (devices: Device[]) => void; reject: (error: Error) => void }[] = [];
  const source: GpuSource & { reads: number } = {
    reads: 0,
    read: () => {
      source.reads += 1;
      return new Promise<Device[]>((resolve, reject) => pending.push({ resolve, reject }));
    },
  };
  const next = () => {
    const read = pending.shift();
    if (!read) throw new Error("no read is pending");
    return read;
  };
  return { source, next };
};

const cacheWith = (source: GpuSource, fields: Partial<DiscoveryCacheOptions> = {}) => {
  const warnings: string[] = [];
  const cache = new DiscoveryCache({
    name: "gpu-1",
    source,
    host: async () => HOST,
    harnesses: [{ name: "llamacpp", kind: "llama-server" }],
    refreshMs: 5000,
    onWarning: (message) => warnings.push(message),
    ...fields,
  });
  return { cache, warnings };
};

let caches: DiscoveryCache[] = [];
const track = <T extends { cache: DiscoveryCache }>(made: T): T => {
  caches.push(made.cache);
  return made;
};

beforeEach(() => {
  vi.useFakeTimers();
  caches = [];
});

afterEach(() => {
  for (const cache of caches) cache.stop();
  vi.useRealTimers();
});

describe("DiscoveryCache", () => {
  it("has the first read done when start resolves, and answers from memory after", async () => {
    const { source, next } = controlled();
    const { cache } = track(cacheWith(source));
    const started = cache.start();
    next().resolve([gpu(0, 81000)]);
    await started;
    const answer = cache.current();
    expect(DiscoveryAnswer.parse(answer)).toEqual(answer);
    expect(answer).toEqual({
      node: HOST,
      devices: [gpu(0, 81000)],
      harnesses: [{ name: "llamacpp", kind: "llama-server" }],
    });
    // Synchronous: a read in flight does not hold current() up.
    await vi.advanceTimersByTimeAsync(5000);
    expect(source.reads).toBe(2);
    expect(cache.current().devices).toEqual([gpu(0, 81000)]);
    next().resolve([gpu(0, 1000)]);
    await vi.waitFor(() => expect(cache.current().devices).toEqual([gpu(0, 1000)]));
  });

  it("never starts a read while one is still running", async () => {
    const { source, next } = controlled();
    const { cache } = track(cacheWith(source));
    const started = cache.start();
    next().resolve([gpu(0, 81000)]);
    await started;
    await vi.advanceTimersByTimeAsync(5000);
    expect(source.reads).toBe(2);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(source.reads).toBe(2);
    next().resolve([gpu(0, 70000)]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(source.reads).toBe(3);
    next().resolve([gpu(0, 60000)]);
    await vi.advanceTimersByTimeAsync(0);
    expect(cache.current().devices).toEqual([gpu(0, 60000)]);
  });

  it("joins a refresh already running instead of starting another", async () => {
    const { source, next } = controlled();
    const { cache } = track(cacheWith(source));
    const started = cache.start();
    const joined = cache.refresh();
    expect(source.reads).toBe(1);
    next().resolve([gpu(0, 5)]);
    await Promise.all([started, joined]);
    expect(cache.current().devices).toEqual([gpu(0, 5)]);
  });

  it("keeps the last good devices when a read fails, and warns once per distinct failure", async () => {
    const { source, next } = controlled();
    const { cache, warnings } = track(cacheWith(source));
    const started = cache.start();
    next().resolve([gpu(0, 81000)]);
    await started;
    for (let tick = 0; tick < 3; tick += 1) {
      await vi.advanceTimersByTimeAsync(5000);
      next().reject(new Error("nvidia-smi did not answer within 5000 ms"));
    }
    await vi.advanceTimersByTimeAsync(5000);
    next().reject(new Error("nvidia-smi exited with code 9"));
    await vi.advanceTimersByTimeAsync(0);
    expect(cache.current().devices).toEqual([gpu(0, 81000)]);
    expect(warnings).toEqual([
      "could not read the GPUs, keeping the last known list: nvidia-smi did not answer within 5000 ms",
      "could not read the GPUs, keeping the last known list: nvidia-smi exited with code 9",
    ]);
    // After a recovery the same failure is news again.
    await vi.advanceTimersByTimeAsync(5000);
    next().resolve([gpu(0, 42)]);
    await vi.advanceTimersByTimeAsync(5000);
    next().reject(new Error("nvidia-smi exited with code 9"));
    await vi.advanceTimersByTimeAsync(0);
    expect(cache.current().devices).toEqual([gpu(0, 42)]);
    expect(warnings).toHaveLength(3);
  });

  it("starts with no devices and a warning when the first read fails, and never rejects", async () => {
    const failing: GpuSource = { read: async () => Promise.reject(new Error("boom")) };
    const { cache, warnings } = track(
      cacheWith(failing, { host: async () => Promise.reject(new Error("no host")) }),
    );
    await cache.start();
    expect(cache.current()).toEqual({
      node: { name: "gpu-1", hostname: "", os: "", kernel: "", cpu: "", memory_mb: 0 },
      devices: [],
      harnesses: [{ name: "llamacpp", kind: "llama-server" }],
    });
    expect(warnings).toEqual([
      "could not describe the host: no host",
      "could not read the GPUs, keeping the last known list: boom",
    ]);
  });

  it("refuses a device list that would not pass the protocol, or has an index twice", async () => {
    const lists: Device[][] = [
      [gpu(0, 10)],
      [{ ...gpu(0, 10), vram_total_mb: Number.NaN }],
      [gpu(0, 10), gpu(0, 20)],
    ];
    const source: GpuSource = { read: async () => lists.shift() ?? [] };
    const { cache, warnings } = track(cacheWith(source));
    await cache.start();
    await cache.refresh();
    await cache.refresh();
    expect(cache.current().devices).toEqual([gpu(0, 10)]);
    expect(warnings).toEqual([
      expect.stringMatching(/^the GPU source returned an invalid device list \(0\.vram_total_mb: /),
      "the GPU source returned device index 0 twice; keeping the last known list",
    ]);
  });

  it("stops refreshing after stop, and its timer never keeps the process alive", async () => {
    const { source, next } = controlled();
    const { cache } = track(cacheWith(source));
    const started = cache.start();
    next().resolve([]);
    await started;
    expect(vi.getTimerCount()).toBe(1);
    cache.stop();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(source.reads).toBe(1);
  });

  it("does not restart the timer when a read in flight ends after stop", async () => {
    const { source, next } = controlled();
    const { cache } = track(cacheWith(source));
    const started = cache.start();
    next().resolve([]);
    await started;
    await vi.advanceTimersByTimeAsync(5000);
    cache.stop();
    next().resolve([gpu(0, 1)]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(source.reads).toBe(2);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("counts a reading begun before a change as stale until one begun after it ends", async () => {
    const { source, next } = controlled();
    const { cache } = track(cacheWith(source));
    const started = cache.start();
    next().resolve([gpu(0, 1000)]);
    await started;
    expect(cache.fresh()).toBe(true);
    cache.changed();
    expect(cache.fresh()).toBe(false);
    const reading = cache.refresh();
    expect(source.reads).toBe(2);
    next().resolve([gpu(0, 81000)]);
    await reading;
    expect(cache.fresh()).toBe(true);
    expect(cache.current().devices).toEqual([gpu(0, 81000)]);
  });

  it("after a change, waits out a read begun before it and shares one more read", async () => {
    const { source, next } = controlled();
    const { cache } = track(cacheWith(source));
    const started = cache.start();
    next().resolve([gpu(0, 1000)]);
    await started;
    // The timer's read is under way when a harness exits.
    await vi.advanceTimersByTimeAsync(5000);
    expect(source.reads).toBe(2);
    cache.changed();
    const first = cache.refresh();
    const second = cache.refresh();
    expect(source.reads).toBe(2);
    next().resolve([gpu(0, 1000)]);
    await vi.advanceTimersByTimeAsync(0);
    // That reading still counted the exited harness: not fresh, and one more read runs.
    expect(cache.fresh()).toBe(false);
    expect(source.reads).toBe(3);
    next().resolve([gpu(0, 81000)]);
    await Promise.all([first, second]);
    expect(source.reads).toBe(3);
    expect(cache.fresh()).toBe(true);
    expect(cache.current().devices).toEqual([gpu(0, 81000)]);
  });

  it("joins a read begun after the last change instead of starting another", async () => {
    const { source, next } = controlled();
    const { cache } = track(cacheWith(source));
    const started = cache.start();
    next().resolve([]);
    await started;
    cache.changed();
    const first = cache.refresh();
    const joined = cache.refresh();
    expect(source.reads).toBe(2);
    next().resolve([gpu(0, 5)]);
    await Promise.all([first, joined]);
    expect(source.reads).toBe(2);
    expect(cache.fresh()).toBe(true);
  });

  it("stays stale when the read after a change fails, keeping the last devices", async () => {
    const { source, next } = controlled();
    const { cache, warnings } = track(cacheWith(source));
    const started = cache.start();
    next().resolve([gpu(0, 1000)]);
    await started;
    cache.changed();
    const reading = cache.refresh();
    next().reject(new Error("nvidia-smi exited with code 9"));
    await reading;
    expect(cache.fresh()).toBe(false);
    expect(cache.current().devices).toEqual([gpu(0, 1000)]);
    expect(warnings).toHaveLength(1);
  });
});

describe("DiscoveryCache with per-process memory", () => {
  const row = (pid: number, group: number | null, usedMb: number | null): GpuProcess => ({
    pid,
    group,
    usedMb,
    busId: "00000000:01:00.0",
  });
  const device = { ...gpu(0, 60000), bus_id: "00000000:01:00.0" };

  /** A process source whose answers the test lines up. */
  const scripted = (...answers: (GpuProcess[] | null | Error)[]) => {
    const processes: GpuProcessSource & { reads: number } = {
      reads: 0,
      read: async () => {
        processes.reads += 1;
        const answer = answers.shift() ?? null;
        if (answer instanceof Error) throw answer;
        return answer;
      },
    };
    return processes;
  };

  it("reads them with the devices and answers what each process group holds", async () => {
    const processes = scripted(
      [row(101, 100, 20480), row(102, 100, 300), row(201, 200, null), row(301, null, 9000)],
      [],
    );
    const { cache } = track(cacheWith({ read: async () => [device] }, { processes }));
    await cache.start();
    expect(processes.reads).toBe(1);
    expect(cache.usedBy(100)).toEqual({ usedMb: 20780, byDevice: [{ index: 0, used_mb: 20780 }] });
    expect(cache.usedBy(200)).toEqual({ usedMb: null, byDevice: null });
    expect(cache.usedBy(300)).toBeNull();
    // Asking is answered from memory; only a read changes it.
    expect(processes.reads).toBe(1);
    await cache.refresh();
    expect(cache.usedBy(100)).toBeNull();
  });

  it("measures nothing where per-process figures cannot be had", async () => {
    const { cache } = track(
      cacheWith({ read: async () => [device] }, { processes: scripted(null) }),
    );
    await cache.start();
    expect(cache.usedBy(100)).toBeNull();
    const { cache: without } = track(cacheWith({ read: async () => [device] }));
    await without.start();
    expect(without.usedBy(100)).toBeNull();
  });

  it("forgets the figures when their read fails, warning once, apart from the devices' warnings", async () => {
    const failure = new Error(
      'nvidia-smi exited with code 2: Field "gpu_bus_id" is not a valid field to query.',
    );
    const processes = scripted(
      [row(101, 100, 512)],
      failure,
      failure,
      [row(101, 100, 64)],
      failure,
    );
    const { cache, warnings } = track(cacheWith({ read: async () => [device] }, { processes }));
    await cache.start();
    expect(cache.usedBy(100)?.usedMb).toBe(512);
    await cache.refresh();
    expect(cache.usedBy(100)).toBeNull();
    expect(cache.current().devices).toEqual([device]);
    await cache.refresh();
    await cache.refresh();
    expect(cache.usedBy(100)?.usedMb).toBe(64);
    await cache.refresh();
    const said = `could not read each process's GPU memory, so no model's use is measured: ${failure.message}`;
    expect(warnings).toEqual([said, said]);
  });
});
