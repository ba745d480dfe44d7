import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FleetSnapshot, ModelsAnswer } from "@cortex/protocol";
import { processesMentioning, waitFor } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type AppProcess, startCortexProcess, stopApp } from "./support/app-process.js";
import { type NeuronProcess, startTinyNeuron } from "./support/neuron-process.js";

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
    // Unloads after 2 idle seconds; the next request reloads it where it was.
    {
      id: "ephemeral",
      harness: "llamacpp",
      source: "tiny.gguf",
      runs_on: "cpu",
      vram_mb: 0,
      context_length: 256,
      idle_ttl_s: 2,
    },
    // Two GPU models that cannot share the small node's 8 GB.
    ...["fill-a", "fill-b"].map((id) => ({
      id,
      harness: "llamacpp",
      source: "tiny.gguf",
      vram_mb: 5000,
      pinned_on: ["small"],
      max_concurrency: 1,
      context_length: 2048,
      idle_ttl_s: 0,
    })),
    {
      id: "burst",
      harness: "llamacpp",
      source: "tiny.gguf",
      runs_on: "cpu",
      vram_mb: 0,
      pinned_on: ["big"],
      context_length: 256,
      idle_ttl_s: 0,
    },
    {
      id: "anywhere",
      harness: "llamacpp",
      source: "tiny.gguf",
      runs_on: "cpu",
      vram_mb: 0,
      context_length: 256,
      idle_ttl_s: 0,
    },
  ],
};

const say = (model: string, maxTokens = 4) =>
  openai.chat.completions.create({
    model,
    messages: [{ role: "user", content: "Hello" }],
    max_tokens: maxTokens,
    temperature: 0,
  });

const statusOn = async (node: string, model: string) =>
  (await fleet()).nodes.find((n) => n.name === node)?.models.find((m) => m.id === model)?.status ??
  "absent";

/** The worker process serving `model` (its argv carries `--alias <model>`). */
const workerOf = (model: string) =>
  processesMentioning(`--alias ${model} `).filter((p) => !p.cmdline.includes("watchdog.js"));

const loadsOf = async (model: string): Promise<number> => {
  const metrics = await (await fetch(`${cortex.url}/metrics`)).text();
  let count = 0;
  for (const line of metrics.split("\n"))
    if (line.startsWith("cortex_load_duration_seconds_count{") && line.includes(`model="${model}"`))
      count += Number(line.split(" ").at(-1));
  return count;
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
  for (const spec of specs)
    neurons.push(await startTinyNeuron(dir, spec, NEURON_TOKEN, { embedding: true }));
  cortex = await startCortexProcess({
    dir,
    apiKey: KEY,
    adminToken: ADMIN,
    neurons: neurons.map((neuron, index) => ({
      name: specs[index]?.name,
      url: neuron.url,
      token: NEURON_TOKEN,
    })),
    config: { poll_interval_ms: 200, unhealthy_after_failures: 2 },
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
    // Warm requests (the alias included) caused no further load.
    expect(await loadsOf("tiny")).toBe(1);
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

  it("unloads an idle model after its TTL and reloads it lazily on the same node", async () => {
    await say("ephemeral");
    const node = (await fleet()).nodes.find((n) =>
      n.models.some((m) => m.id === "ephemeral"),
    )?.name;
    expect(node).toBeDefined();
    await waitFor(
      "the idle unload",
      async () => (await statusOn(node as string, "ephemeral")) === "unloaded",
      20_000,
    );
    await waitFor("its worker to exit", () => workerOf("ephemeral").length === 0, 10_000);
    expect(openAIProblems("CreateChatCompletionResponse", await say("ephemeral"))).toEqual([]);
    // Cortex sees the reload with its next poll.
    await waitFor(
      "the reload on the same node",
      async () => (await statusOn(node as string, "ephemeral")) === "loaded",
    );
    expect(await loadsOf("ephemeral")).toBe(1);
  });

  it("evicts an idle model to fit another, and waits for a busy one instead of evicting it", async () => {
    await say("fill-a");
    // fill-a busy with a long greedy generation: fill-b cannot have its memory yet.
    const long = say("fill-a", 1500);
    const small = neurons[1] as NeuronProcess;
    await waitFor("fill-a to be busy", async () => {
      const models = ModelsAnswer.parse(await (await small.api("/models")).json());
      return models.some((m) => m.id === "fill-a" && m.in_flight > 0);
    });
    // Issue 15: fill-b waits for the swap (it was 503 no_capacity before).
    const waiting = say("fill-b");
    expect(await statusOn("small", "fill-a")).toBe("loaded");
    // The busy model finishes its answer, never cut; then it makes room.
    expect((await long).choices).toHaveLength(1);
    expect((await waiting).choices).toHaveLength(1);
    expect(await statusOn("small", "fill-a")).toBe("absent");
    expect(await statusOn("small", "fill-b")).toBe("loaded");
  });

  it("loads a cold model once for 50 concurrent first requests and answers all of them", async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, () => say("burst", 2)));
    expect(answers).toHaveLength(50);
    for (const answer of answers) expect(answer.choices[0]?.finish_reason).toBeDefined();
    expect(await loadsOf("burst")).toBe(1);
  });

  it("recovers a model whose harness is killed with -9", async () => {
    await say("tiny");
    const [worker] = workerOf("tiny");
    expect(worker).toBeDefined();
    process.kill(worker?.pid as number, "SIGKILL");
    // Right after the crash a request either waits or gets a retryable error; soon it works.
    const first = await fetch(`${cortex.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "tiny",
        messages: [{ role: "user", content: "x" }],
        max_tokens: 2,
      }),
    });
    if (first.status !== 200) {
      expect([502, 503]).toContain(first.status);
      expect(first.headers.get("retry-after")).toBeTruthy();
    }
    await waitFor(
      "the model to serve again",
      async () => {
        try {
          await say("tiny", 2);
          return true;
        } catch {
          return false;
        }
      },
      30_000,
    );
    expect(workerOf("tiny").map((p) => p.pid)).not.toContain(worker?.pid);
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

  it("sends requests to the other neuron when one is killed with -9, and marks it unhealthy", async () => {
    for (const node of ["big", "small"]) {
      const load = await cortex.api("/api/models/load", { body: { model: "anywhere", node } });
      expect(load.status).toBe(200);
    }
    const small = neurons[1] as NeuronProcess;
    small.child.kill("SIGKILL");
    await small.exited;
    const answers = await Promise.all(Array.from({ length: 6 }, () => say("anywhere", 2)));
    expect(answers).toHaveLength(6);
    // unhealthy_after_failures: 2 polls of 200 ms, plus the time a refused poll takes.
    await waitFor(
      "cortex to mark the dead neuron unhealthy",
      async () => (await fleet()).nodes.find((n) => n.name === "small")?.healthy === false,
      5000,
    );
    // Its harnesses went with it (their watchdogs saw the neuron die).
    await waitFor(
      "the dead neuron's harnesses to exit",
      () => processesMentioning(join(dir, "small", "models")).length === 0,
      10_000,
    );
  });

  it("leaves no process behind when everything stops", async () => {
    await stopApp(cortex);
    for (const neuron of neurons) await stopApp(neuron);
    expect(processesMentioning(dir)).toEqual([]);
  });
});
