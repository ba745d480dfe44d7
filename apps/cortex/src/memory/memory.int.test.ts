import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CatalogueReport,
  CortexConfig,
  type EstimateAnswer,
  type FleetEvent,
} from "@cortex/protocol";
import { type FakeNeuron, gpuDevice, startFakeNeuron } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type Cortex, startCortex } from "../cortex.js";
import { silentLog } from "../log.js";

// Memory truth in-process (issue 18): cortex against fake neurons that answer estimates from a
// script and report what their models really hold. Entries without vram_mb are estimated and
// served, an unestimable one is a catalogue problem, a model bigger than it declares is placed
// by what it holds, an engine out of memory raises its figure, and all of it survives a restart.

const ADMIN = "admin-secret";
const KEY = "sk-client";

const estimate = (vramMb: number): EstimateAnswer => ({
  vram_mb: vramMb,
  breakdown: {
    weights_mb: vramMb * 0.75,
    kv_cache_mb: vramMb * 0.2,
    overhead_mb: vramMb * 0.05,
  },
  basis: "gguf header (fake)",
});

let dir: string;
let neurons: FakeNeuron[] = [];
let cortexes: Cortex[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cortex-memory-"));
});

afterEach(async () => {
  await Promise.all(cortexes.splice(0).map((cortex) => cortex.stop(0)));
  await Promise.all(neurons.splice(0).map((neuron) => neuron.close()));
  await rm(dir, { recursive: true, force: true });
});

/** Fake neurons, one per `{name: GPU MB}`, with a slow-ish load like a real one. */
const startNeurons = async (gpus: Record<string, number>, loadDelayMs = 30) => {
  neurons = await Promise.all(
    Object.entries(gpus).map(([name, mb]) =>
      startFakeNeuron({ name, devices: [gpuDevice(0, mb)], loadDelayMs }),
    ),
  );
  return neurons;
};

/** Cortex over the neurons with `models` as its catalogue; `dataDir` for a real database. */
const startOn = async (models: readonly unknown[], dataDir = ":memory:") => {
  await writeFile(join(dir, "models.yaml"), stringify({ models }));
  const config = CortexConfig.parse({
    listen: "127.0.0.1:0",
    catalogue: dir,
    data_dir: dataDir,
    poll_interval_ms: 100,
    // Discovery (and so the GPUs' free memory) rarely: placement must not depend on it.
    discovery_interval_ms: 60_000,
    poll_timeout_ms: 500,
    api_keys: [KEY],
    admin_token: ADMIN,
    queue_timeout_ms: 5000,
    neurons: neurons.map((neuron) => ({ name: neuron.name, url: neuron.url, token: "" })),
  });
  const cortex = await startCortex(config, silentLog);
  cortexes.push(cortex);
  await expect
    .poll(() => cortex.store.snapshot.nodes.every((node) => node.healthy), { timeout: 5000 })
    .toBe(true);
  return cortex;
};

const chat = (cortex: Cortex, model: string) =>
  fetch(`${cortex.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });

const catalogueOf = async (cortex: Cortex): Promise<CatalogueReport> => {
  const response = await fetch(`${cortex.url}/api/catalogue`, {
    headers: { authorization: `Bearer ${ADMIN}` },
  });
  expect(response.status).toBe(200);
  return CatalogueReport.parse(await response.json());
};

const vramOf = async (cortex: Cortex, id: string) =>
  (await catalogueOf(cortex)).models.find((model) => model.id === id)?.vram;

/** The first event of `/api/events` (replayed since `since`) that `match` accepts. */
const eventOf = async (
  cortex: Cortex,
  since: string,
  match: (event: FleetEvent) => boolean,
): Promise<FleetEvent> => {
  const stop = new AbortController();
  const response = await fetch(`${cortex.url}/api/events?since=${encodeURIComponent(since)}`, {
    headers: { authorization: `Bearer ${ADMIN}` },
    signal: stop.signal,
  });
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the event stream ended without the event: ${text}`);
      text += decoder.decode(value, { stream: true });
      for (const line of text.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const event = JSON.parse(line.slice(6)) as FleetEvent;
        if (match(event)) return event;
      }
    }
  } finally {
    stop.abort();
  }
};

const unload = (cortex: Cortex, model: string) =>
  fetch(`${cortex.url}/api/models/unload`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ model }),
  });

describe("memory truth", () => {
  it("estimates an entry without vram_mb, lists it meanwhile, and serves a request that waited for it", async () => {
    const [a] = await startNeurons({ a: 24_000 });
    a?.scriptEstimate("hf:org/est/est.gguf", estimate(5000));
    a?.setEstimateDelay(400);
    const cortex = await startOn([
      { id: "est", harness: "llamacpp", source: "hf:org/est/est.gguf", context_length: 8192 },
    ]);
    const listed = await fetch(`${cortex.url}/v1/models`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(
      ((await listed.json()) as { data: { id: string }[] }).data.map((model) => model.id),
    ).toEqual(["est"]);

    const answer = await chat(cortex, "est");
    expect(answer.status).toBe(200);
    expect(openAIProblems("CreateChatCompletionResponse", await answer.json())).toEqual([]);
    expect(a?.estimates).toHaveLength(1);
    expect(a?.estimates[0]).toMatchObject({
      model_id: "est",
      source: "hf:org/est/est.gguf",
      context_length: 8192,
      tensor_parallel: 1,
    });
    expect(a?.estimates[0]).not.toHaveProperty("vram_mb");
    expect(a?.loads[0]?.vram_mb).toBe(5000);

    const report = await catalogueOf(cortex);
    expect(report.models[0]).toMatchObject({
      id: "est",
      vram_mb: 5000,
      min_device_vram_mb: 5000,
      vram: { declared_mb: null, estimated_mb: 5000, observed_mb: null, effective_mb: 5000 },
      estimate: { basis: "gguf header (fake)", breakdown: estimate(5000).breakdown },
      vram_flag: null,
    });
    expect(report.problems).toEqual([]);
  });

  it("reports an entry it cannot estimate as a catalogue problem, and refuses requests for it saying why", async () => {
    await startNeurons({ a: 24_000 });
    const started = new Date().toISOString();
    const cortex = await startOn([
      { id: "declared", harness: "llamacpp", source: "declared.bin", vram_mb: 1000 },
      { id: "raw", harness: "llamacpp", source: "raw.safetensors" },
    ]);
    await expect
      .poll(async () => (await catalogueOf(cortex)).problems, { timeout: 5000 })
      .toEqual([
        {
          file: join(dir, "models.yaml"),
          path: "models[1].vram_mb",
          message: expect.stringMatching(/"raw.safetensors" cannot be estimated \(.*not a GGUF/),
        },
      ]);
    expect(
      await eventOf(cortex, started, (event) => event.type === "catalogue_problem"),
    ).toMatchObject({
      model: "raw",
      error: expect.stringContaining("models[1].vram_mb: required"),
    });
    const refused = await chat(cortex, "raw");
    expect(refused.status).toBe(503);
    const { error } = (await refused.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("no_feasible_node");
    expect(error.message).toMatch(/declares no vram_mb .*not a GGUF file.*declare vram_mb/);
    // An entry that declares its figure is served whether or not it could be estimated.
    expect((await chat(cortex, "declared")).status).toBe(200);
  });

  it("places a model that declares 10 GB but holds 20 GB by what it holds, so nothing is loaded beside it that does not fit", async () => {
    const [a] = await startNeurons({ a: 24_000 });
    a?.setVramUsed("big", 20_000);
    const cortex = await startOn([
      { id: "big", harness: "llamacpp", source: "big.gguf", vram_mb: 10_000 },
      { id: "other", harness: "llamacpp", source: "other.gguf", vram_mb: 10_000 },
    ]);
    expect((await chat(cortex, "big")).status).toBe(200);
    await expect
      .poll(() => vramOf(cortex, "big"), { timeout: 5000 })
      .toEqual({
        declared_mb: 10_000,
        estimated_mb: null,
        observed_mb: 20_000,
        effective_mb: 21_000,
      });
    expect((await catalogueOf(cortex)).models[0]?.vram_flag).toBe("declared_off");

    // Big, resident and idle, holds 20 of the GPU's 24 GB: other (10 GB) goes in its place.
    expect((await chat(cortex, "other")).status).toBe(200);
    expect(a?.unloads.map((request) => request.model_id)).toEqual(["big"]);

    // Placed again by its effective figure, big now needs other's room too.
    expect((await chat(cortex, "big")).status).toBe(200);
    expect(a?.unloads.map((request) => request.model_id)).toEqual(["big", "other"]);
    expect(a?.loads.map((request) => [request.model_id, request.vram_mb])).toEqual([
      ["big", 10_000],
      ["other", 10_000],
      ["big", 21_000],
    ]);
  });

  it("raises a model's figure after the engine ran out of GPU memory and places the request again", async () => {
    const [a, b] = await startNeurons({ a: 16_000, b: 24_000 });
    const cortex = await startOn([
      { id: "tight", harness: "llamacpp", source: "tight.gguf", vram_mb: 10_000 },
    ]);
    // Both nodes fit 10 GB; the first placement goes to the one with more room (b).
    b?.failNextLoadOutOfMemory(
      "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4096.00 MiB on device 0: cudaMalloc failed: out of memory",
      4096,
    );
    const answer = await chat(cortex, "tight");
    expect(answer.status).toBe(200);
    expect(b?.loads.map((request) => request.vram_mb)).toEqual([10_000, 14_096]);
    expect(a?.loads).toEqual([]);
    expect((await vramOf(cortex, "tight"))?.effective_mb).toBe(14_096);
  });

  it("answers 503 no_capacity quoting the engine's line when the raised figure fits nowhere", async () => {
    const [a] = await startNeurons({ a: 16_000 });
    const cortex = await startOn([
      { id: "huge", harness: "llamacpp", source: "huge.gguf", vram_mb: 12_000 },
    ]);
    a?.failNextLoadOutOfMemory("CUDA error: out of memory");
    const answer = await chat(cortex, "huge");
    expect(answer.status).toBe(503);
    const { error } = (await answer.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("no_capacity");
    expect(error.message).toContain("CUDA error: out of memory");
    expect(a?.loads).toHaveLength(1);
    // Raised by half (the line names no size): 18 GB, more than the GPU has.
    expect((await vramOf(cortex, "huge"))?.effective_mb).toBe(18_000);
  });

  it("keeps estimates and measurements across a restart on the same data_dir", async () => {
    const [a] = await startNeurons({ a: 24_000 });
    const dataDir = join(dir, "data");
    const models = [
      { id: "est", harness: "llamacpp", source: "hf:org/est/est.gguf" },
      { id: "measured", harness: "llamacpp", source: "measured.gguf", vram_mb: 4000 },
    ];
    a?.scriptEstimate("hf:org/est/est.gguf", estimate(5000));
    a?.setVramUsed("measured", 6000);
    const first = await startOn(models, dataDir);
    expect((await chat(first, "measured")).status).toBe(200);
    await expect
      .poll(async () => (await vramOf(first, "measured"))?.observed_mb, { timeout: 5000 })
      .toBe(6000);
    await expect
      .poll(async () => (await vramOf(first, "est"))?.estimated_mb, { timeout: 5000 })
      .toBe(5000);
    expect((await unload(first, "measured")).status).toBe(200);
    await first.stop(0);
    cortexes = [];

    // Nothing resident to measure, and the neuron would not estimate it any more.
    a?.scriptEstimate("hf:org/est/est.gguf", null);
    const second = await startOn(models, dataDir);
    expect(await vramOf(second, "measured")).toEqual({
      declared_mb: 4000,
      estimated_mb: null,
      observed_mb: 6000,
      effective_mb: 6300,
    });
    expect(await vramOf(second, "est")).toMatchObject({ estimated_mb: 5000, effective_mb: 5000 });
    expect((await chat(second, "est")).status).toBe(200);
    // Asked once, before the restart; the declared model (not estimable here) is asked again.
    expect(a?.estimates.filter((request) => request.model_id === "est")).toHaveLength(1);
  });
});
