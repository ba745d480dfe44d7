import {
  type Device,
  DiscoveryAnswer,
  ErrorEnvelope,
  HealthAnswer,
  LoadAnswer,
  LoadProgress,
  ModelsAnswer,
} from "@cortex/protocol";
import OpenAI from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { type FakeNeuron, type FakeNeuronOptions, startFakeNeuron } from "./fake-neuron.js";
import { neuronModel } from "./fixtures.js";
import { openAIProblems } from "./openai.js";

// The fake neuron stands in for the real one in every cortex test: its answers must match the
// protocol schemas, and its inference answers the official OpenAI ones.

const TOKEN = "fake-token";

const running: FakeNeuron[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((neuron) => neuron.close()));
});

const start = async (options: Partial<FakeNeuronOptions> = {}) => {
  const neuron = await startFakeNeuron({ name: "gpu-a", token: TOKEN, ...options });
  running.push(neuron);
  return neuron;
};

const call = (
  neuron: FakeNeuron,
  path: string,
  init: { method?: string; body?: unknown; token?: string | null; accept?: string } = {},
) => {
  const headers: Record<string, string> = {};
  if (init.token !== null) headers.authorization = `Bearer ${init.token ?? TOKEN}`;
  if (init.accept) headers.accept = init.accept;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  return fetch(`${neuron.url}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers,
    ...(init.body === undefined
      ? {}
      : { body: typeof init.body === "string" ? init.body : JSON.stringify(init.body) }),
  });
};

const expectError = async (response: Response, status: number, code: string) => {
  expect(response.status).toBe(status);
  const body: unknown = await response.json();
  expect(ErrorEnvelope.parse(body).error.code).toBe(code);
  expect(openAIProblems("ErrorResponse", body)).toEqual([]);
};

const model = neuronModel;

const device = (index: number, vram: number): Device => ({
  index,
  vendor: "NVIDIA",
  name: "Fake GPU",
  vram_total_mb: vram,
  vram_free_mb: vram,
  utilization_pct: null,
  temperature_c: null,
  bus_id: null,
  driver_version: null,
});

const load = { model_id: "m1", harness: "llamacpp", source: "hf:x/y/m1.gguf" };

/** Reads a whole SSE body into `[event, data]` pairs. */
const events = async (response: Response): Promise<[string, unknown][]> => {
  const text = await response.text();
  return text
    .split("\n\n")
    .filter((block) => block.trim() !== "")
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.find((line) => line.startsWith("event: "))?.slice(7) ?? "message";
      const data = lines.find((line) => line.startsWith("data: "))?.slice(6) ?? "null";
      return [event, JSON.parse(data) as unknown];
    });
};

describe("the fake neuron: neuron API", () => {
  it("answers /health without a token and everything else only with it", async () => {
    const neuron = await start({ devices: [device(0, 24_000)] });
    const health = await call(neuron, "/health", { token: null });
    expect(HealthAnswer.parse(await health.json()).status).toBe("ok");
    await expectError(await call(neuron, "/models", { token: null }), 401, "invalid_api_key");
    await expectError(await call(neuron, "/discovery", { token: "wrong" }), 401, "invalid_api_key");
    const discovery = DiscoveryAnswer.parse(await (await call(neuron, "/discovery")).json());
    expect(discovery.node.name).toBe("gpu-a");
    expect(discovery.devices).toHaveLength(1);
    expect(discovery.harnesses).toEqual([{ name: "llamacpp", kind: "builtin" }]);
    await expectError(await call(neuron, "/nowhere"), 404, "not_found");
  });

  it("loads single-flight, reports loading meanwhile, then already_loaded", async () => {
    const neuron = await start({ loadDelayMs: 100 });
    const first = call(neuron, "/models/load", { body: load });
    const second = call(neuron, "/models/load", { body: load });
    await expect
      .poll(async () => ModelsAnswer.parse(await (await call(neuron, "/models")).json()))
      .toMatchObject([{ id: "m1", status: "loading" }]);
    const answers = await Promise.all([first, second]);
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(LoadAnswer.parse(await answer.json())).toMatchObject({
        id: "m1",
        already_loaded: false,
        url: `http://localhost:${neuron.port}`,
      });
    }
    expect(neuron.loads).toHaveLength(2);
    expect(neuron.loadsStarted.get("m1")).toBe(1);
    const again = LoadAnswer.parse(
      await (await call(neuron, "/models/load", { body: load })).json(),
    );
    expect(again.already_loaded).toBe(true);
    const models = ModelsAnswer.parse(await (await call(neuron, "/models")).json());
    expect(models).toMatchObject([{ id: "m1", status: "loaded", in_flight: 0 }]);
    expect(models[0]?.loaded_at).not.toBeNull();
  });

  it("streams load progress and then exactly one result or error", async () => {
    const neuron = await start({ loadDelayMs: 20 });
    const streamed = await events(
      await call(neuron, "/models/load", { body: load, accept: "text/event-stream" }),
    );
    expect(streamed.at(-1)?.[0]).toBe("result");
    LoadAnswer.parse(streamed.at(-1)?.[1]);
    const progress = streamed.slice(0, -1);
    expect(progress.length).toBeGreaterThan(0);
    for (const [name, data] of progress) {
      expect(name).toBe("progress");
      LoadProgress.parse(data);
    }

    neuron.failNextLoad("load_failed", "the harness exited with code 1");
    const failed = await events(
      await call(neuron, "/models/load", {
        body: { ...load, model_id: "m2" },
        accept: "text/event-stream",
      }),
    );
    expect(failed.filter(([name]) => name !== "progress")).toEqual([
      [
        "error",
        {
          error: {
            message: "the harness exited with code 1",
            type: "server_error",
            code: "load_failed",
            param: null,
          },
          status: 502,
        },
      ],
    ]);
    expect(neuron.models().find((m) => m.id === "m2")).toMatchObject({
      status: "failed",
      error: "the harness exited with code 1",
    });
  });

  it("refuses bad loads: invalid body, unknown harness, not enough memory", async () => {
    const neuron = await start({ devices: [device(0, 8000)] });
    await expectError(
      await call(neuron, "/models/load", { body: "{nope" }),
      400,
      "invalid_request_error",
    );
    await expectError(
      await call(neuron, "/models/load", { body: { ...load, extra: 1 } }),
      400,
      "invalid_request_error",
    );
    await expectError(
      await call(neuron, "/models/load", { body: { ...load, harness: "vllm" } }),
      400,
      "harness_not_found",
    );
    const tooBig = await call(neuron, "/models/load", { body: { ...load, vram_mb: 9000 } });
    expect(tooBig.headers.get("retry-after")).toBe("5");
    await expectError(tooBig, 409, "insufficient_vram");
    const fits = await call(neuron, "/models/load", { body: { ...load, vram_mb: 6000 } });
    expect(fits.status).toBe(200);
    expect(neuron.models()).toMatchObject([{ id: "m1", devices: [0], vram_mb: 6000 }]);
    await expectError(
      await call(neuron, "/models/load", { body: { ...load, model_id: "m2", vram_mb: 3000 } }),
      409,
      "insufficient_vram",
    );
  });

  it("answers endpoint and logs for known models, 404 otherwise", async () => {
    const neuron = await start({ models: [model("m1")] });
    expect(await (await call(neuron, "/models/m1/endpoint")).json()).toEqual({
      url: `http://localhost:${neuron.port}`,
    });
    expect(await (await call(neuron, "/models/m1/logs")).text()).toContain("m1");
    await expectError(await call(neuron, "/models/zz/endpoint"), 404, "model_not_found");
    await expectError(await call(neuron, "/models/zz/logs"), 404, "model_not_found");
  });
});

describe("the fake neuron: inference", () => {
  const client = (neuron: FakeNeuron) =>
    new OpenAI({ baseURL: `${neuron.url}/v1`, apiKey: TOKEN, maxRetries: 0 });

  it("answers chat, streams, completions and embeddings in valid OpenAI shapes", async () => {
    const neuron = await start({ models: [model("m1")], streamChunks: 3 });
    const openai = client(neuron);
    const chat = await openai.chat.completions.create({
      model: "m1",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(openAIProblems("CreateChatCompletionResponse", chat)).toEqual([]);
    const chunks = [];
    for await (const chunk of await openai.chat.completions.create({
      model: "m1",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    })) {
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
      chunks.push(chunk);
    }
    expect(chunks).toHaveLength(3);
    const completion = await openai.completions.create({ model: "m1", prompt: "hi" });
    expect(openAIProblems("CreateCompletionResponse", completion)).toEqual([]);
    const embeddings = await openai.embeddings.create({ model: "m1", input: ["a", "b"] });
    expect(openAIProblems("CreateEmbeddingResponse", embeddings)).toEqual([]);
    expect(neuron.requests.get("m1")).toBe(4);
    expect(neuron.headers?.authorization).toBe(`Bearer ${TOKEN}`);
    expect(neuron.inFlight("m1")).toBe(0);
  });

  it("answers unknown models, bad JSON and a missing model with envelopes", async () => {
    const neuron = await start({ models: [model("m1")] });
    await expectError(
      await call(neuron, "/v1/chat/completions", { body: { model: "nope", messages: [] } }),
      404,
      "model_not_found",
    );
    await expectError(
      await call(neuron, "/v1/chat/completions", { body: "{bad" }),
      400,
      "invalid_request_error",
    );
    await expectError(
      await call(neuron, "/v1/chat/completions", { body: { messages: [] } }),
      400,
      "missing_model",
    );
    await expectError(
      await call(neuron, "/v1/chat/completions", { body: { model: "m1" }, token: null }),
      401,
      "invalid_api_key",
    );
  });

  it("reloads an unloaded model lazily, counting one load", async () => {
    const neuron = await start({ models: [model("m1", { status: "unloaded" })], loadDelayMs: 30 });
    const openai = client(neuron);
    const answers = await Promise.all(
      [1, 2, 3].map(() =>
        openai.chat.completions.create({ model: "m1", messages: [{ role: "user", content: "x" }] }),
      ),
    );
    expect(answers).toHaveLength(3);
    expect(neuron.loadsStarted.get("m1")).toBe(1);
    expect(neuron.models()).toMatchObject([{ id: "m1", status: "loaded", in_flight: 0 }]);
  });

  it("queues beyond max_concurrency and frees every slot after a client disconnects", async () => {
    const neuron = await start({
      models: [model("m1", { max_concurrency: 1 })],
      latencyMs: 50,
      streamChunks: 50,
    });
    const controllers = [1, 2, 3].map(() => new AbortController());
    const streams = controllers.map((controller) =>
      fetch(`${neuron.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ model: "m1", messages: [], stream: true }),
        signal: controller.signal,
      }).then(
        (response) => response.text(),
        () => null,
      ),
    );
    await expect.poll(() => neuron.models()[0]).toMatchObject({ in_flight: 1, queued: 2 });
    const busy = await call(neuron, "/models/unload", { body: { model_id: "m1" } });
    await expectError(busy, 409, "model_busy");
    // One queued request leaves, then the running one mid-stream, then the last.
    controllers[2]?.abort();
    await expect.poll(() => neuron.models()[0]).toMatchObject({ in_flight: 1, queued: 1 });
    controllers[0]?.abort();
    controllers[1]?.abort();
    await Promise.allSettled(streams);
    await expect.poll(() => neuron.inFlight("m1")).toBe(0);
    const unloaded = await call(neuron, "/models/unload", { body: { model_id: "m1" } });
    expect(await unloaded.json()).toEqual({ status: "unloaded" });
    expect(neuron.models()).toEqual([]);
    await expectError(
      await call(neuron, "/models/unload", { body: { model_id: "m1" } }),
      404,
      "model_not_found",
    );
  });
});

describe("the fake neuron: controls", () => {
  it("dies on kill and comes back on the same port on revive", async () => {
    const neuron = await start({ models: [model("m1")] });
    const port = neuron.port;
    await neuron.kill();
    await expect(call(neuron, "/health")).rejects.toThrow();
    await neuron.revive();
    expect(neuron.port).toBe(port);
    expect((await call(neuron, "/health")).status).toBe(200);
  });

  it("replaces models and statuses on request", async () => {
    const neuron = await start({ models: [model("m1")] });
    neuron.setModels([model("m2", { status: "unloaded" })]);
    neuron.setModelStatus("m2", "recovering");
    expect(ModelsAnswer.parse(await (await call(neuron, "/models")).json())).toMatchObject([
      { id: "m2", status: "recovering" },
    ]);
    await expectError(
      await call(neuron, "/v1/chat/completions", { body: { model: "m2", messages: [] } }),
      503,
      "service_unavailable",
    );
    expect(() => neuron.setModelStatus("zz", "loaded")).toThrow();
  });
});
