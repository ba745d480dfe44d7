import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { NeuronConfig, type NeuronConfigInput, type NeuronModel } from "@cortex/protocol";
import { type FakeBehaviourInput, fakeHarnessTemplate, waitFor } from "@cortex/testkit";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Neuron, startNeuron } from "./neuron.js";

// The neuron's own lazy reload under contention, on loopback: one static 24000 MB device, three
// 16000 MB fake-harness models (only one fits at a time), each loaded once and left to its 1 s
// idle TTL so that all three start `unloaded`. Loads are counted from the neuron's log.

const TOKEN = "swap-token";
const MODELS = ["a", "b", "c"] as const;

let dir: string;
let neuron: Neuron | undefined;
/** `model loaded` log lines, per model id. */
let loads: Map<string, number>;

const capture = () =>
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line) continue;
        const record = JSON.parse(line) as { msg?: string; model?: string };
        if (record.msg === "model loaded" && record.model)
          loads.set(record.model, (loads.get(record.model) ?? 0) + 1);
      }
      done();
    },
  });

const call = (path: string, body?: unknown) =>
  fetch(`${neuron?.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

const models = async (): Promise<NeuronModel[]> =>
  (await (await call("/models")).json()) as NeuronModel[];

const modelOf = async (id: string) => (await models()).find((model) => model.id === id);

/** One chat completion; its HTTP status (and the error code, when it failed; 0: no answer). */
const chat = async (model: string): Promise<{ status: number; code?: string }> => {
  try {
    const res = await call("/v1/chat/completions", {
      model,
      messages: [{ role: "user", content: "hi" }],
    });
    const body = (await res.json()) as { error?: { code?: string } };
    return { status: res.status, ...(body.error?.code ? { code: body.error.code } : {}) };
  } catch (error) {
    return { status: 0, code: String(error) };
  }
};

/**
 * A neuron with the three models known and `unloaded`; `behaviour` scripts each model's harness.
 * `loads` counts from zero once they are.
 */
const startWithUnloaded = async (
  behaviour: FakeBehaviourInput,
  config: Partial<NeuronConfigInput> = {},
  maxConcurrency = 2,
): Promise<void> => {
  neuron = await startNeuron(
    NeuronConfig.parse({
      name: "swap-test",
      listen: "127.0.0.1:0",
      token: TOKEN,
      models_dir: dir,
      state_dir: join(dir, "state"),
      devices: [{ vram_total_mb: 24_000 }],
      harnesses: { fake: fakeHarnessTemplate(["--alias", "{model_id}"]) },
      stop_grace_ms: 2000,
      queue_timeout_ms: 15_000,
      ...config,
    }),
    pino({ level: "info" }, capture()),
  );
  for (const id of MODELS) {
    await writeFile(join(dir, `${id}.json`), JSON.stringify(behaviour));
    const res = await call("/models/load", {
      model_id: id,
      harness: "fake",
      source: `${id}.json`,
      vram_mb: 16_000,
      max_concurrency: maxConcurrency,
      idle_ttl_s: 1,
    });
    expect(res.status).toBe(200);
    await waitFor(`${id} to idle out`, async () => (await modelOf(id))?.status === "unloaded");
  }
  loads.clear();
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-swap-"));
  loads = new Map();
});

afterEach(async () => {
  await neuron?.stop(0);
  neuron = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe("a lazy reload short of memory held by busy models", () => {
  it("waits for the busy model to finish, then swaps it out (kept unloaded) and serves", async () => {
    await startWithUnloaded({ latency_ms: 1500 });
    const first = chat("a");
    await waitFor("a to run its request", async () => (await modelOf("a"))?.in_flight === 1);
    // a holds 16000 of the 24000 MB and is busy: b can come only once a has finished.
    const second = await chat("b");
    expect(second).toEqual({ status: 200 });
    expect(await first).toEqual({ status: 200 });
    // Swapped out by the neuron's own reload: kept, to come back on its next turn.
    expect(await modelOf("a")).toMatchObject({ status: "unloaded" });
    expect((await models()).map((model) => model.id).sort()).toEqual(["a", "b", "c"]);
    expect(Object.fromEntries(loads)).toEqual({ a: 1, b: 1 });
  }, 30_000);

  it("collates requests by model: a b c a b c costs one reload per model", async () => {
    await startWithUnloaded({ latency_ms: 200 });
    const answers = await Promise.all(["a", "b", "c", "a", "b", "c"].map((id) => chat(id)));
    expect(answers).toEqual(Array.from({ length: 6 }, () => ({ status: 200 })));
    expect(Object.fromEntries(loads)).toEqual({ a: 1, b: 1, c: 1 });
  }, 30_000);

  it("drains a model that never runs out of work after swap_max_wait_ms, losing none of its requests", async () => {
    await startWithUnloaded({ latency_ms: 150 }, { swap_max_wait_ms: 500 }, 1);
    let bServed = false;
    const answers: { status: number; code?: string }[] = [];
    // Two clients keep a busy: one request runs, the next is always queued behind it.
    const client = async () => {
      while (!bServed) answers.push(await chat("a"));
      // One more each, after b's turn: a comes back for them.
      answers.push(await chat("a"));
    };
    const clients = [client(), client()];
    await waitFor("a to be loaded and busy", async () => (await modelOf("a"))?.status === "loaded");
    const b = await chat("b");
    bServed = true;
    await Promise.all(clients);
    expect(b).toEqual({ status: 200 });
    expect(answers.length).toBeGreaterThanOrEqual(4);
    expect(answers.filter((answer) => answer.status !== 200)).toEqual([]);
    // a was swapped out while it still had requests, and back in for them.
    expect(loads.get("a")).toBeGreaterThanOrEqual(2);
    expect(loads.get("b")).toBe(1);
  }, 40_000);
});
