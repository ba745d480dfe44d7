import {
  DiscoveryAnswer,
  ErrorEnvelope,
  EstimateAnswer,
  engineOutOfMemory,
  ModelsAnswer,
} from "@cortex/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { type FakeNeuron, startFakeNeuron } from "../fake-neuron.js";
import { gpuDevice } from "../fixtures.js";

// The fake neuron's memory controls (issue 18): scripted estimates, measured footprints that
// discovery's free memory follows, and loads failing as an engine out of GPU memory does.

const running: FakeNeuron[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((neuron) => neuron.close()));
});

const start = async () => {
  const neuron = await startFakeNeuron({ name: "gpu-a", devices: [gpuDevice(0, 24_000)] });
  running.push(neuron);
  return neuron;
};

const post = (neuron: FakeNeuron, path: string, body: unknown) =>
  fetch(`${neuron.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

const request = { model_id: "m1", harness: "llamacpp", source: "hf:org/repo/m1.gguf" };

const answer: EstimateAnswer = {
  vram_mb: 5000,
  breakdown: { weights_mb: 4000, kv_cache_mb: 700, overhead_mb: 300 },
  basis: "gguf header (fake)",
};

describe("the fake neuron: memory truth", () => {
  it("answers estimates from the table tests script, and 422 for a source not in it", async () => {
    const neuron = await start();
    neuron.scriptEstimate(request.source, answer);
    const estimated = await post(neuron, "/models/estimate", request);
    expect(estimated.status).toBe(200);
    expect(EstimateAnswer.parse(await estimated.json())).toEqual(answer);

    const refused = await post(neuron, "/models/estimate", { ...request, source: "other.bin" });
    expect(refused.status).toBe(422);
    expect(ErrorEnvelope.parse(await refused.json()).error.code).toBe("not_estimable");

    neuron.scriptEstimate(request.source, { code: "upstream_error", message: "hf is down" });
    expect((await post(neuron, "/models/estimate", request)).status).toBe(502);
    expect(neuron.estimates.map((body) => body.source)).toEqual([
      request.source,
      "other.bin",
      request.source,
    ]);
  });

  it("reports a measured footprint once loaded, and counts it in the free memory", async () => {
    const neuron = await start();
    neuron.setVramUsed("m1", 20_000);
    expect((await post(neuron, "/models/load", { ...request, vram_mb: 10_000 })).status).toBe(200);
    const models = ModelsAnswer.parse(await (await fetch(`${neuron.url}/models`)).json());
    expect(models[0]).toMatchObject({ id: "m1", vram_mb: 10_000, vram_used_mb: 20_000 });
    const discovery = DiscoveryAnswer.parse(await (await fetch(`${neuron.url}/discovery`)).json());
    expect(discovery.devices[0]?.vram_free_mb).toBe(4000);

    // A second model that fits the declared figure but not the real one is refused.
    const second = await post(neuron, "/models/load", {
      ...request,
      model_id: "m2",
      vram_mb: 10_000,
    });
    expect(second.status).toBe(409);
  });

  it("fails the next load as an engine out of GPU memory, in the neuron's words", async () => {
    const neuron = await start();
    neuron.failNextLoadOutOfMemory("cudaMalloc failed: out of memory", 20_480);
    const failed = await post(neuron, "/models/load", { ...request, vram_mb: 10_000 });
    expect(failed.status).toBe(409);
    const { error } = ErrorEnvelope.parse(await failed.json());
    expect(error.code).toBe("insufficient_vram");
    expect(error.message).toContain("cudaMalloc failed: out of memory");
    expect(engineOutOfMemory(error.message)).toEqual({ requested_mb: 20_480 });
    // The failure was for that load only.
    expect((await post(neuron, "/models/load", { ...request, vram_mb: 10_000 })).status).toBe(200);
  });
});
