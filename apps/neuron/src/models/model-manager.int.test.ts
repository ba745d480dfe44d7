import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Device, LoadRequest } from "@cortex/protocol";
import { type FakeBehaviourInput, fakeHarnessTemplate, gpuDevice } from "@cortex/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { freeLoopbackPort, probeReady } from "../supervisor/net.js";
import {
  type ProcessRunner,
  type RunningProcess,
  spawnRunner,
} from "../supervisor/process-runner.js";
import { processSettings, testManager } from "./model-manager.fixtures.js";
import type { ModelManager } from "./model-manager.js";

// The lifecycle against real child processes: a scripted fake harness per model, spawned under
// the real watchdog in its own process group, probed over loopback.

const gpu = (index: number, total: number, free = total): Device => gpuDevice(index, total, free);

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

let dir: string;
let manager: ModelManager;
let started: RunningProcess[];
let spawns: number;
/** What discovery reports now; a test may change it as a real GPU's free memory would. */
let gpus: Device[];

const settings = processSettings({
  restartDelaysMs: [50, 50],
  queueTimeoutMs: 2000,
  harnessEnv: { CUDA_DEVICE_ORDER: "PCI_BUS_ID" },
});

const behaviour = async (name: string, fields: FakeBehaviourInput = {}): Promise<string> => {
  await writeFile(join(dir, `${name}.json`), JSON.stringify(fields));
  return `${name}.json`;
};

const request = (id: string, source: string, fields: Partial<LoadRequest> = {}): LoadRequest => ({
  model_id: id,
  harness: "fake",
  source,
  ...fields,
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-manager-"));
  started = [];
  spawns = 0;
  gpus = [gpu(0, 24_000), gpu(1, 24_000)];
  const fake = defineHarness(
    "fake",
    fakeHarnessTemplate(["--host", "{host}", "--alias", "{model_id}"]),
    { node: process.execPath, entry: "unused" },
  ) as Harness;
  const real = spawnRunner({ parentPid: process.pid, watchdogGraceMs: 500 });
  const runner: ProcessRunner = {
    start: (launch, env) => {
      spawns += 1;
      const child = real.start(launch, env);
      started.push(child);
      return child;
    },
  };
  manager = testManager(
    {
      harnesses: new Map([["fake", fake]]),
      runner,
      sources: { check: () => {}, prepare: async (source) => join(dir, source) },
      devices: () => gpus,
      freePort: freeLoopbackPort,
      probe: probeReady,
    },
    settings,
  );
});

afterEach(async () => {
  await manager.shutdown();
  for (const child of started) child.killNow();
  await rm(dir, { recursive: true, force: true });
});

const ask = (id: string, signal?: AbortSignal) =>
  manager.run(id, signal, async (base) => {
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: id, messages: [{ role: "user", content: "hi" }] }),
      ...(signal ? { signal } : {}),
    });
    return res.status;
  });

const statusOf = (id: string) => manager.list().find((model) => model.id === id)?.status;

describe("loading", () => {
  it("loads once, answers already_loaded after, and serves requests", async () => {
    const source = await behaviour("m");
    const answer = await manager.load(request("m", source, { devices: [0], vram_mb: 4000 }));
    expect(answer).toMatchObject({
      id: "m",
      status: "loaded",
      url: "http://localhost:13131",
      already_loaded: false,
    });
    expect(await manager.load(request("m", source, { devices: [0], vram_mb: 4000 }))).toMatchObject(
      { already_loaded: true },
    );
    expect(await ask("m")).toBe(200);
    expect(manager.list()).toEqual([
      expect.objectContaining({
        id: "m",
        status: "loaded",
        devices: [0],
        in_flight: 0,
        queued: 0,
        error: null,
      }),
    ]);
    expect(spawns).toBe(1);
  });

  it("shares one load among concurrent callers", async () => {
    const source = await behaviour("slow", { start_delay_ms: 300 });
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => manager.load(request("slow", source))),
    );
    expect(answers.every((answer) => answer.status === "loaded")).toBe(true);
    expect(spawns).toBe(1);
  });

  it("starts one harness when two loads with a changed spec race", async () => {
    const source = await behaviour("m");
    await manager.load(request("m", source, { devices: [0], vram_mb: 1000 }));
    const changed = request("m", source, { devices: [0], vram_mb: 2000 });
    const answers = await Promise.all([manager.load(changed), manager.load(changed)]);
    expect(answers.map((answer) => answer.status)).toEqual(["loaded", "loaded"]);
    expect(spawns).toBe(2);
    expect(started.filter((child) => !child.hasExited())).toHaveLength(1);
  });

  it("a load of a model being evicted waits for its stop and tracks the new process", async () => {
    const slow = await behaviour("slow-stop", { hang_on_sigterm: true });
    await manager.load(request("s", slow, { devices: [0], vram_mb: 1000 }));
    const unloading = manager.unload("s");
    // The id is free at once; the new load starts only after the old process is gone.
    const again = manager.load(request("s", slow, { devices: [0], vram_mb: 1000 }));
    await unloading;
    await again;
    expect(statusOf("s")).toBe("loaded");
    expect(started.filter((child) => !child.hasExited())).toHaveLength(1);
    await manager.unload("s", true);
    expect(started.every((child) => child.hasExited())).toBe(true);
  });

  it("keeps a loaded model on its devices when the same load comes again without devices", async () => {
    const source = await behaviour("m");
    const first = await manager.load(request("m", source, { vram_mb: 20_000 }));
    expect(first.already_loaded).toBe(false);
    // The GPU now reports the model's memory as used, as a real one does.
    const [on] = manager.list().find((model) => model.id === "m")?.devices ?? [];
    gpus = gpus.map((device) => (device.index === on ? gpu(device.index, 24_000, 4000) : device));
    const again = await manager.load(request("m", source, { vram_mb: 20_000 }));
    expect(again.already_loaded).toBe(true);
    expect(spawns).toBe(1);
  });

  it("reports a harness that exits before it is ready, with its output", async () => {
    const source = await behaviour("broken", { fail_start_code: 3 });
    await expect(manager.load(request("broken", source))).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringContaining("failing on purpose"),
    });
    expect(statusOf("broken")).toBe("failed");
  });

  it("refuses an unknown harness, bad args and unknown devices without starting anything", async () => {
    const source = await behaviour("m");
    await expect(manager.load({ ...request("m", source), harness: "nope" })).rejects.toMatchObject({
      code: "harness_not_found",
    });
    await expect(manager.load(request("m", source, { args: { evil: "x" } }))).rejects.toMatchObject(
      { code: "invalid_request_error" },
    );
    await expect(manager.load(request("m", source, { devices: [7] }))).rejects.toMatchObject({
      code: "invalid_request_error",
    });
    expect(spawns).toBe(0);
    expect(manager.list()).toEqual([]);
  });

  it("picks the device with most room when none is named", async () => {
    await manager.load(request("a", await behaviour("a"), { devices: [0], vram_mb: 10_000 }));
    await manager.load(request("b", await behaviour("b"), { vram_mb: 10_000 }));
    expect(manager.list().find((model) => model.id === "b")?.devices).toEqual([1]);
  });
});

describe("room on the GPU", () => {
  it("evicts an idle model of lower or equal priority, and forgets it", async () => {
    await manager.load(request("old", await behaviour("old"), { devices: [0], vram_mb: 16_000 }));
    await manager.load(
      request("new", await behaviour("new"), {
        devices: [0],
        vram_mb: 16_000,
        residency_priority: 5,
      }),
    );
    expect(manager.list().map((model) => model.id)).toEqual(["new"]);
  });

  it("never evicts a busy model: answers insufficient_vram with the numbers", async () => {
    await manager.load(
      request("busy", await behaviour("busy", { latency_ms: 1500 }), {
        devices: [0],
        vram_mb: 16_000,
      }),
    );
    const inFlight = ask("busy");
    await expect.poll(() => manager.list()[0]?.in_flight).toBe(1);
    await expect(
      manager.load(request("new", await behaviour("new"), { devices: [0], vram_mb: 16_000 })),
    ).rejects.toMatchObject({
      code: "insufficient_vram",
      message: expect.stringContaining("16000 MB"),
    });
    expect(await inFlight).toBe(200);
    expect(manager.list().map((model) => model.id)).toEqual(["busy"]);
  });

  it("never evicts a model of higher priority", async () => {
    await manager.load(
      request("vip", await behaviour("vip"), {
        devices: [0],
        vram_mb: 16_000,
        residency_priority: 10,
      }),
    );
    await expect(
      manager.load(
        request("new", await behaviour("new"), {
          devices: [0],
          vram_mb: 16_000,
          residency_priority: 9,
        }),
      ),
    ).rejects.toMatchObject({ code: "insufficient_vram" });
  });
});

describe("lifecycle", () => {
  it("unloads after the idle TTL and reloads lazily on the next request", async () => {
    const source = await behaviour("idle");
    await manager.load(request("idle", source, { idle_ttl_s: 1 }));
    const firstPid = started[0]?.pid ?? 0;
    await expect.poll(() => statusOf("idle"), { timeout: 5000 }).toBe("unloaded");
    await expect.poll(() => alive(firstPid), { timeout: 5000 }).toBe(false);
    expect(await ask("idle")).toBe(200);
    expect(statusOf("idle")).toBe("loaded");
    expect(spawns).toBe(2);
  });

  it("restarts a harness that crashes, then gives up after repeated crashes", async () => {
    const source = await behaviour("crashy", { crash_after_ms: 200 });
    await manager.load(request("crashy", source));
    await expect.poll(() => statusOf("crashy"), { timeout: 5000, interval: 10 }).toBe("recovering");
    await expect.poll(() => statusOf("crashy"), { timeout: 5000, interval: 10 }).toBe("failed");
    expect(spawns).toBe(3);
    expect(manager.list()[0]?.error).toContain("gave up after 3 crashes");
    await expect(ask("crashy")).rejects.toMatchObject({ code: "load_failed" });
  });

  it("unloads a recovering model at once, and the pending restart never starts", async () => {
    const source = await behaviour("crashy", { crash_after_ms: 200 });
    await manager.load(request("crashy", source));
    await expect.poll(() => statusOf("crashy"), { timeout: 5000, interval: 5 }).toBe("recovering");
    await manager.unload("crashy", true);
    expect(statusOf("crashy")).toBeUndefined();
    // Longer than the first restart delay: nothing was started again.
    await new Promise((resolve) => setTimeout(resolve, (settings.restartDelaysMs[0] ?? 0) + 300));
    expect(spawns).toBe(1);
  });

  it("recovers from a kill -9 of the harness", async () => {
    const source = await behaviour("victim");
    await manager.load(request("victim", source));
    const first = started[0];
    if (!first) throw new Error("no process");
    process.kill(-first.pid, "SIGKILL");
    await expect.poll(() => spawns, { timeout: 5000 }).toBe(2);
    await expect.poll(() => statusOf("victim"), { timeout: 5000 }).toBe("loaded");
    expect(await ask("victim")).toBe(200);
  });

  it("refuses to unload a busy model unless forced, and kills one that ignores SIGTERM", async () => {
    const source = await behaviour("stubborn", { hang_on_sigterm: true, latency_ms: 3000 });
    await manager.load(request("stubborn", source));
    const pid = started[0]?.pid ?? 0;
    const inFlight = ask("stubborn").catch(() => "failed");
    await expect.poll(() => manager.list()[0]?.in_flight).toBe(1);
    await expect(manager.unload("stubborn")).rejects.toMatchObject({ code: "model_busy" });
    await manager.unload("stubborn", true);
    expect(alive(pid)).toBe(false);
    expect(manager.list()).toEqual([]);
    await inFlight;
    await expect(manager.unload("stubborn")).rejects.toMatchObject({ code: "model_not_found" });
  });
});

describe("admission", () => {
  it("queues beyond max_concurrency, refuses beyond the queue, and returns to zero", async () => {
    const source = await behaviour("one", { latency_ms: 400 });
    await manager.load(request("one", source, { max_concurrency: 1 }));
    const first = ask("one");
    const second = ask("one");
    await expect.poll(() => manager.list()[0]?.queued).toBe(1);
    await expect(ask("one")).rejects.toMatchObject({ code: "overloaded" });
    const controller = new AbortController();
    await Promise.all([first, second]);
    const third = ask("one", controller.signal);
    controller.abort();
    await third.catch(() => {});
    await expect
      .poll(() => [manager.list()[0]?.in_flight, manager.list()[0]?.queued])
      .toEqual([0, 0]);
  });
});

describe("shutdown", () => {
  it("leaves no process behind", async () => {
    await manager.load(request("a", await behaviour("a")));
    await manager.load(request("b", await behaviour("b", { hang_on_sigterm: true })));
    const pids = started.map((child) => child.pid);
    await manager.shutdown();
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });
});
