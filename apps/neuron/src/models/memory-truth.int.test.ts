import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiscoveryAnswer, engineOutOfMemory, ModelsAnswer } from "@cortex/protocol";
import { type FakeBehaviourInput, fakeHarnessTemplate } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../api/neuron-app.fixtures.js";
import { DiscoveryCache } from "../discovery/discovery-cache.js";
import { type FakeApp, writeFakeNvidiaSmi } from "../discovery/fake-nvidia-smi.fixtures.js";
import { TWO_RTX_4090 } from "../discovery/gpu-hosts.fixtures.js";
import { nvidiaSmiProcesses, processGroupOf } from "../discovery/gpu-processes.js";
import { nvidiaSmiSource } from "../discovery/nvidia-smi.js";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { freeLoopbackPort, probeReady } from "../supervisor/net.js";
import { type RunningProcess, spawnRunner } from "../supervisor/process-runner.js";
import { processSettings, silent, testManager } from "./model-manager.fixtures.js";
import type { ModelManager } from "./model-manager.js";

// Issue 18, measured: real harness processes (the fake harness, under the real watchdog, in
// their own process groups), a fake `nvidia-smi` that reports each live process's memory and
// the free memory that leaves, the real discovery cache and the neuron's HTTP API.
//
// The cache re-reads only when asked (refreshMs is an hour): the moments right after an
// unload, when the neuron's last reading still counts the model that left.

/** One RTX 4090: 24564 MB, 24174 free with nothing loaded. */
const GPU = TWO_RTX_4090.gpus[0] ?? {};
const FREE = 24174;
/** How nvidia-smi's compute-apps rows may spell the bus (the device query says 00000000:…). */
const SHORT_BUS = "0000:01:00.0";

let dir: string;
let smi: string;
let cache: DiscoveryCache;
let started: RunningProcess[];
let stops: (() => Promise<void>)[];

const behaviour = async (name: string, fields: FakeBehaviourInput = {}): Promise<string> => {
  await writeFile(join(dir, `${name}.json`), JSON.stringify(fields));
  return `${name}.json`;
};

/** What the fake nvidia-smi reports from now on. */
const report = async (apps: FakeApp[]): Promise<void> => {
  await writeFakeNvidiaSmi(dir, { gpus: [GPU], apps });
};

/** The processes of a harness's group but its watchdog (the group's leader): the engine. */
const engineOf = async (manager: ModelManager, id: string): Promise<number[]> => {
  const group = manager.get(id)?.harness.pid;
  if (!group) throw new Error(`${id} has no process`);
  const members: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === group) continue;
    if ((await processGroupOf(Number(name))) === group) members.push(Number(name));
  }
  return members;
};

/** A neuron: its manager and API. `measured: false` is the neuron before this change. */
const neuron = async (measured: boolean) => {
  const fake = defineHarness(
    "fake",
    fakeHarnessTemplate(["--host", "{host}", "--alias", "{model_id}"]),
    { node: process.execPath, entry: "unused" },
  ) as Harness;
  const real = spawnRunner({ parentPid: process.pid, watchdogGraceMs: 500 });
  const manager = testManager(
    {
      harnesses: new Map([["fake", fake]]),
      runner: {
        start: (launch, env) => {
          const child = real.start(launch, env);
          started.push(child);
          return child;
        },
      },
      sources: { check: () => {}, prepare: async (source) => join(dir, source) },
      devices: () => cache.current().devices,
      ...(measured ? { gpuMemory: cache } : {}),
      freePort: freeLoopbackPort,
      probe: probeReady,
    },
    processSettings(),
  );
  const app: TestApp = await startTestApp(manager, {
    token: "",
    discovery: () => cache.current(),
  });
  stops.push(async () => {
    await manager.shutdown();
    await app.close();
  });
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${app.base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
  const load = async (id: string, vramMb: number, fields: FakeBehaviourInput = {}) =>
    post("/models/load", {
      model_id: id,
      harness: "fake",
      source: await behaviour(id, fields),
      devices: [0],
      vram_mb: vramMb,
    });
  const models = async () => ModelsAnswer.parse(await (await fetch(`${app.base}/models`)).json());
  return { manager, app, post, load, models };
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-memory-"));
  started = [];
  stops = [];
  smi = await writeFakeNvidiaSmi(dir, { gpus: [GPU], apps: [] });
  cache = new DiscoveryCache({
    name: "gpu-1",
    source: nvidiaSmiSource({ command: smi }),
    processes: nvidiaSmiProcesses({ command: smi }),
    host: async () => ({
      name: "gpu-1",
      hostname: "gpu-1",
      os: "Linux",
      kernel: "6.8",
      cpu: "test",
      memory_mb: 65_536,
    }),
    harnesses: [{ name: "fake", kind: "template" }],
    refreshMs: 3_600_000,
    onWarning: (message) => silent.warn({}, message),
  });
  await cache.start();
});

afterEach(async () => {
  for (const stop of stops) await stop();
  for (const child of started) child.killNow();
  cache.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("GET /models", () => {
  it("reports what each harness really holds, next to what it declared", async () => {
    const { manager, load, models, app } = await neuron(true);
    expect((await load("a", 10_000)).status).toBe(200);
    // Declared 10 GB, holds 20 GB; the neuron itself (not a harness) holds 300 MB.
    const [engine] = await engineOf(manager, "a");
    if (engine === undefined) throw new Error("a's engine was not found");
    await report([
      { pid: engine, used_memory: "20480", gpu_bus_id: SHORT_BUS },
      { pid: process.pid, used_memory: "300", gpu_bus_id: SHORT_BUS },
      { pid: "[N/A]", used_memory: "5", gpu_bus_id: SHORT_BUS },
    ]);
    // Measured with the discovery reading, not on each request.
    expect(await models()).toMatchObject([{ id: "a", vram_mb: 10_000, vram_used_mb: null }]);
    await cache.refresh();
    expect(await models()).toMatchObject([
      {
        id: "a",
        status: "loaded",
        vram_mb: 10_000,
        vram_used_mb: 20_480,
        vram_used_by_device: [{ index: 0, used_mb: 20_480 }],
      },
    ]);
    const discovery = DiscoveryAnswer.parse(await (await fetch(`${app.base}/discovery`)).json());
    expect(discovery.devices[0]?.vram_free_mb).toBe(FREE - 20_480 - 300 - 5);
  });

  it("reports null for a model with no process on a GPU (a CPU model)", async () => {
    const { load, models } = await neuron(true);
    expect((await load("cpu", 0)).status).toBe(200);
    await cache.refresh();
    expect(await models()).toMatchObject([
      { id: "cpu", vram_used_mb: null, vram_used_by_device: null },
    ]);
  });
});

describe("a load right after an unload", () => {
  /** Loads a (declares 10 GB, holds 20 GB), reads the GPU, unloads a, loads b (16 GB) at once. */
  const swap = async (measured: boolean) => {
    const node = await neuron(measured);
    expect((await node.load("a", 10_000)).status).toBe(200);
    await report(
      (await engineOf(node.manager, "a")).map((pid) => ({
        pid,
        used_memory: "20480",
        gpu_bus_id: SHORT_BUS,
      })),
    );
    await cache.refresh();
    expect(cache.current().devices[0]?.vram_free_mb).toBe(FREE - 20_480);
    expect((await node.post("/models/unload", { model_id: "a" })).status).toBe(200);
    return { node, answer: await node.load("b", 16_000) };
  };

  it("was refused on a reading that still counted the unloaded model", async () => {
    const { answer } = await swap(false);
    expect(answer.status).toBe(409);
    const body = await answer.json();
    expect(openAIProblems("ErrorResponse", body)).toEqual([]);
    expect(body).toMatchObject({
      error: {
        code: "insufficient_vram",
        message: expect.stringContaining(`free now: 0: ${FREE - 20_480} MB`),
      },
    });
  });

  it("now succeeds: a reading begun after the exit decides", async () => {
    const { node, answer } = await swap(true);
    expect(answer.status).toBe(200);
    expect(await node.models()).toMatchObject([{ id: "b", status: "loaded" }]);
    expect(cache.current().devices[0]?.vram_free_mb).toBe(FREE);
  });
});

describe("an engine out of memory at start", () => {
  const LINE =
    "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 20480.00 MiB on device 0: cudaMalloc failed: out of memory";

  it("fails the load with insufficient_vram, quoting its line and what it asked for", async () => {
    const { load, models } = await neuron(true);
    const answer = await load("big", 10_000, {
      out_of_memory_line: `load_tensors: offloading 64 repeating layers to GPU\n${LINE}\nllama_model_load: error loading model: unable to allocate CUDA0 buffer`,
    });
    expect(answer.status).toBe(409);
    const body = (await answer.json()) as { error: { code: string; message: string } };
    expect(openAIProblems("ErrorResponse", body)).toEqual([]);
    expect(body.error.code).toBe("insufficient_vram");
    expect(body.error.message).toContain(`"${LINE}"`);
    expect(engineOutOfMemory(body.error.message)).toEqual({ requested_mb: 20_480 });
    expect(await models()).toMatchObject([
      { id: "big", status: "failed", error: expect.stringContaining(LINE), vram_used_mb: null },
    ]);
  });

  it("sends the same as the error event of a streamed load", async () => {
    const { post } = await neuron(true);
    const res = await post(
      "/models/load",
      {
        model_id: "big",
        harness: "fake",
        source: await behaviour("big", { out_of_memory_line: LINE }),
        devices: [0],
        vram_mb: 10_000,
      },
      { accept: "text/event-stream" },
    );
    const text = await res.text();
    const data = /event: error\ndata: (.*)\n/.exec(text)?.[1];
    if (!data) throw new Error(`no error event in ${text}`);
    const event = JSON.parse(data) as { status: number; error: { code: string; message: string } };
    expect(event.status).toBe(409);
    expect(event.error.code).toBe("insufficient_vram");
    expect(engineOutOfMemory(event.error.message)).toEqual({ requested_mb: 20_480 });
  });
});
