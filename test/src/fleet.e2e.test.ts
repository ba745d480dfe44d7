import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTinyModel } from "@cortex/harness-llamacpp";
import { FleetSnapshot, ModelsAnswer } from "@cortex/protocol";
import { openAIProblems } from "@cortex/protocol/openai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type AppProcess, CORTEX_CLI, startApp, stopApp } from "./support/app-process.js";
import { type NeuronProcess, startNeuron } from "./support/neuron-process.js";
import { processesMentioning, waitFor } from "./support/processes.js";

// The built cortex and two built neurons as processes on loopback, serving the tiny model
// through the real llama.cpp harness, driven with the official openai client.

const KEY = "sk-e2e";
const ADMIN = "admin-e2e";
const NEURON_TOKEN = "neuron-e2e";

let dir: string;
let cortex: AppProcess;
const neurons: NeuronProcess[] = [];
let openai: OpenAI;

const CATALOGUE = {
  models: [
    {
      id: "tiny",
      aliases: ["tiny-chat"],
      harness: "llamacpp",
      source: "tiny.gguf",
      runs_on: "cpu",
      vram_mb: 0,
      max_concurrency: 2,
      context_length: 512,
      idle_ttl_s: 0,
      pinned_on: ["small"],
    },
    {
      id: "tiny-embed",
      harness: "llamacpp",
      source: "tiny-embed.gguf",
      runs_on: "cpu",
      vram_mb: 0,
      context_length: 256,
      idle_ttl_s: 0,
      capabilities: ["embeddings"],
    },
  ],
};

const fleet = async () => FleetSnapshot.parse(await (await cortex.api("/api/fleet")).json());

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fleet-e2e-"));
  await mkdir(join(dir, "catalogue"));
  await writeFile(join(dir, "catalogue", "models.yaml"), stringify(CATALOGUE));
  const specs = [
    { name: "big", devices: [{ vram_total_mb: 24_576 }, { vram_total_mb: 24_576 }] },
    { name: "small", devices: [{ vram_total_mb: 8192 }] },
  ];
  for (const spec of specs) {
    const models = join(dir, spec.name, "models");
    await writeTinyModel(join(models, "tiny.gguf"), { seed: 1 });
    await writeTinyModel(join(models, "tiny-embed.gguf"), { seed: 2, variant: "embedding" });
    neurons.push(
      await startNeuron(dir, {
        name: spec.name,
        token: NEURON_TOKEN,
        models_dir: models,
        state_dir: join(dir, spec.name, "state"),
        devices: spec.devices,
        stop_grace_ms: 2000,
      }),
    );
  }
  cortex = await startApp({
    cli: CORTEX_CLI,
    dir,
    file: "cortex.yaml",
    token: ADMIN,
    config: {
      catalogue: join(dir, "catalogue"),
      data_dir: join(dir, "cortex-data"),
      poll_interval_ms: 200,
      unhealthy_after_failures: 2,
      api_keys: [KEY],
      admin_token: ADMIN,
      neurons: neurons.map((neuron, index) => ({
        name: specs[index]?.name,
        url: neuron.url,
        token: NEURON_TOKEN,
      })),
    },
  });
  openai = new OpenAI({ baseURL: `${cortex.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
  await waitFor("both neurons healthy in cortex", async () =>
    (await fleet()).nodes.every((node) => node.healthy),
  );
});

afterAll(async () => {
  if (cortex) await stopApp(cortex);
  for (const neuron of neurons) await stopApp(neuron);
  for (const { pid } of processesMentioning(dir)) process.kill(pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("a fleet of cortex and two neurons", () => {
  it("cold-loads the pinned model on its node on the first request, then answers warm", async () => {
    const first = await openai.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(openAIProblems("CreateChatCompletionResponse", first)).toEqual([]);
    expect(first.usage?.completion_tokens).toBe(8);
    const snapshot = await fleet();
    const holders = snapshot.nodes.filter((node) => node.models.some((m) => m.id === "tiny"));
    expect(holders.map((node) => node.name)).toEqual(["small"]);

    const chunks: string[] = [];
    for await (const chunk of await openai.chat.completions.create({
      model: "tiny-chat",
      messages: [{ role: "user", content: "Stream" }],
      max_tokens: 6,
      stream: true,
    })) {
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
      chunks.push(chunk.choices[0]?.delta.content ?? "");
    }
    expect(chunks.length).toBeGreaterThan(1);
    const completion = await openai.completions.create({
      model: "tiny",
      prompt: "Once",
      max_tokens: 4,
    });
    expect(openAIProblems("CreateCompletionResponse", completion)).toEqual([]);
  });

  it("serves embeddings from a cold-loaded embedding model", async () => {
    const answer = await openai.embeddings.create({
      model: "tiny-embed",
      input: ["first", "second"],
      encoding_format: "float",
    });
    expect(openAIProblems("CreateEmbeddingResponse", answer)).toEqual([]);
    expect(answer.data).toHaveLength(2);
  });

  it("lists the models with their status and locations", async () => {
    const list = (await (
      await fetch(`${cortex.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })
    ).json()) as { data: { id: string; status: string; locations: { node: string }[] }[] };
    expect(list.data.find((model) => model.id === "tiny")).toMatchObject({
      status: "loaded",
      locations: [{ node: "small", status: "loaded" }],
    });
  });

  it("answers bad requests with the right envelope", async () => {
    const post = (body: string, key = KEY) =>
      fetch(`${cortex.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body,
      });
    const cases: [Response, number, string][] = [
      [await post("{nope"), 400, "invalid_request_error"],
      [await post(JSON.stringify({ messages: [] })), 400, "missing_model"],
      [await post(JSON.stringify({ model: "nope", messages: [] })), 404, "model_not_found"],
      [
        await post(JSON.stringify({ model: "tiny", messages: [] }), "wrong"),
        401,
        "invalid_api_key",
      ],
    ];
    for (const [answer, status, code] of cases) {
      expect(answer.status).toBe(status);
      const body = await answer.json();
      expect(openAIProblems("ErrorResponse", body)).toEqual([]);
      expect((body as { error: { code: string } }).error.code).toBe(code);
    }
  });

  it("ends with nothing in flight anywhere", async () => {
    for (const neuron of neurons) {
      const models = ModelsAnswer.parse(await (await neuron.api("/models")).json());
      for (const model of models) expect(model).toMatchObject({ in_flight: 0, queued: 0 });
    }
    const metrics = await (await fetch(`${cortex.url}/metrics`)).text();
    for (const line of metrics.split("\n").filter((l) => l.startsWith("cortex_in_flight{")))
      expect(line.endsWith(" 0")).toBe(true);
  });
});
