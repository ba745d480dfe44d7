import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTinyModel } from "@cortex/harness-llamacpp";
import { FAKE_HARNESS_TEMPLATE, processesMentioning, waitFor } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  modelsOf,
  type NeuronProcess,
  startNeuron,
  statusOf,
  stopNeurons,
  testNeuronConfig,
} from "./support/neuron-process.js";

// The built neuron as an operator runs it, serving the tiny model through the real llama.cpp
// harness: load, infer, idle unload, lazy reload, a harness killed with -9, and shutdowns that
// leave no process behind. Every process started here mentions `dir` on its command line, which
// is how the test proves none survives.

let dir: string;
const running: NeuronProcess[] = [];

const TOKEN = "e2e-secret";

const LOAD = {
  model_id: "tiny",
  harness: "llamacpp",
  source: "tiny.gguf",
  max_concurrency: 2,
  context_length: 512,
  idle_ttl_s: 0,
};

const neuron = async (name: string, extra: Record<string, unknown> = {}) => {
  const started = await startNeuron(
    dir,
    testNeuronConfig(dir, name, TOKEN, { stop_grace_ms: 2000, ...extra }),
  );
  running.push(started);
  return started;
};

/** The harness workers serving the tiny model (not the watchdogs that sit above them). */
const harnessPids = () =>
  processesMentioning(join(dir, "models", "tiny.gguf"))
    .filter((process) => !process.cmdline.includes("watchdog.js"))
    .map((process) => process.pid);

const clientOf = (node: NeuronProcess) =>
  new OpenAI({ baseURL: `${node.url}/v1`, apiKey: TOKEN, maxRetries: 0, timeout: 60_000 });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-e2e-"));
  await writeTinyModel(join(dir, "models", "tiny.gguf"), { seed: 1 });
});

afterEach(async () => {
  await stopNeurons(running);
});

afterAll(async () => {
  for (const { pid } of processesMentioning(dir)) process.kill(pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("neuron with the real llama.cpp harness", () => {
  it("loads on request, serves the OpenAI API, unloads when idle and reloads lazily", async () => {
    const node = await neuron("lifecycle");
    expect((await fetch(`${node.url}/health`)).status).toBe(200);
    expect((await fetch(`${node.url}/models`)).status).toBe(401);

    const load = await node.api("/models/load", { body: { ...LOAD, idle_ttl_s: 2 } });
    expect(load.status).toBe(200);
    expect(await load.json()).toMatchObject({ id: "tiny", status: "loaded", url: node.url });
    expect(harnessPids()).toHaveLength(1);

    const client = clientOf(node);
    const chat = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Hello there" }],
      max_tokens: 12,
    });
    expect(openAIProblems("CreateChatCompletionResponse", chat)).toEqual([]);
    expect(chat.usage?.completion_tokens).toBeGreaterThan(0);

    const chunks: string[] = [];
    for await (const chunk of await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Stream please" }],
      max_tokens: 8,
      stream: true,
    })) {
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
      chunks.push(chunk.choices[0]?.delta.content ?? "");
    }
    expect(chunks.length).toBeGreaterThan(1);
    expect((await modelsOf(node))[0]).toMatchObject({ in_flight: 0, queued: 0 });

    // Idle TTL (2 s from the end of the last request): the process stops, the spec stays.
    await waitFor("the idle unload", async () => (await statusOf(node, "tiny")) === "unloaded");
    await waitFor("the harness to exit", () => harnessPids().length === 0, 10_000);

    // The next request reloads it on its own.
    const again = await client.completions.create({ model: "tiny", prompt: "Once", max_tokens: 4 });
    expect(openAIProblems("CreateCompletionResponse", again)).toEqual([]);
    expect(await statusOf(node, "tiny")).toBe("loaded");
    expect(harnessPids()).toHaveLength(1);
  });

  it("recovers from a harness killed with -9", async () => {
    const node = await neuron("recovery");
    expect((await node.api("/models/load", { body: LOAD })).status).toBe(200);
    const [pid] = harnessPids();
    expect(pid).toBeDefined();
    process.kill(pid as number, "SIGKILL");

    await waitFor("the restart", async () => {
      const pids = harnessPids();
      return (await statusOf(node, "tiny")) === "loaded" && pids.length === 1 && pids[0] !== pid;
    });
    const answer = await clientOf(node).chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "still there?" }],
      max_tokens: 4,
    });
    expect(answer.choices).toHaveLength(1);
    const logs = await (await node.api("/models/tiny/logs")).text();
    expect(logs).toContain("ready in");
  });

  it("leaves no harness behind on SIGTERM", async () => {
    const node = await neuron("sigterm");
    expect((await node.api("/models/load", { body: LOAD })).status).toBe(200);
    expect(harnessPids()).toHaveLength(1);
    node.child.kill("SIGTERM");
    expect(await node.exited).toEqual({ code: 0, signal: null });
    expect(processesMentioning(dir)).toEqual([]);
  });

  it("leaves no harness behind when it is killed with -9", async () => {
    const node = await neuron("crash");
    expect((await node.api("/models/load", { body: LOAD })).status).toBe(200);
    expect(harnessPids()).toHaveLength(1);
    node.child.kill("SIGKILL");
    await node.exited;
    // The harness's watchdog sees its parent gone and ends the process group.
    await waitFor(
      "the orphaned harness to exit",
      () => processesMentioning(dir).length === 0,
      10_000,
    );
    // A neuron started again on the same state directory starts clean and works.
    const again = await neuron("crash");
    expect(await modelsOf(again)).toEqual([]);
    expect((await again.api("/models/load", { body: LOAD })).status).toBe(200);
  });

  it("reaps a harness that outlived its neuron and its watchdog when it starts again", async () => {
    // The fake harness, unlike the built-in one, does not watch its parent: like llama-server,
    // it would run on forever once both the neuron and the watchdog are gone.
    await writeFile(join(dir, "models", "stubborn.json"), JSON.stringify({ banner: "stubborn" }));
    const config = { harnesses: { fake: FAKE_HARNESS_TEMPLATE } };
    const node = await neuron("reaper", config);
    const load = { model_id: "stubborn", harness: "fake", source: "stubborn.json" };
    expect((await node.api("/models/load", { body: load })).status).toBe(200);
    const stubborn = () =>
      processesMentioning(join(dir, "models", "stubborn.json")).filter(
        (process) => !process.cmdline.includes("watchdog.js"),
      );
    const watchdogs = processesMentioning("watchdog.js").filter((process) =>
      process.cmdline.includes("stubborn.json"),
    );
    expect(stubborn()).toHaveLength(1);
    expect(watchdogs).toHaveLength(1);
    node.child.kill("SIGKILL");
    process.kill(watchdogs[0]?.pid as number, "SIGKILL");
    await node.exited;
    expect(stubborn()).toHaveLength(1);

    const again = await neuron("reaper", config);
    await waitFor("the leftover harness to be reaped", () => stubborn().length === 0, 10_000);
    expect(again.output()).toContain("left over from an earlier run");
  });

  it("refuses hostile loads with a 4xx and changes nothing", async () => {
    const node = await neuron("hostile");
    for (const body of [
      { ...LOAD, source: "../../etc/passwd" },
      { ...LOAD, source: "/etc/passwd" },
      { ...LOAD, model_id: "../x" },
      { ...LOAD, harness: "bash" },
      { ...LOAD, args: { threads: "1; rm -rf /" } },
      { ...LOAD, surprise: true },
    ]) {
      const answer = await node.api("/models/load", { body });
      expect(answer.status, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
      expect(answer.status, JSON.stringify(body)).toBeLessThan(500);
      expect(((await answer.json()) as { error: { message: string } }).error.message).toBeTruthy();
    }
    expect(await modelsOf(node)).toEqual([]);
    expect(harnessPids()).toEqual([]);
  });
});
