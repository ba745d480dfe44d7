import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CortexConfig, type CortexConfigInput, FleetAnswer } from "@cortex/protocol";
import { type FakeNeuron, gpuDevice, neuronModel, startFakeNeuron } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type Cortex, startCortex } from "./cortex.js";
import { silentLog } from "./log.js";

// Drain and labels end to end: cortex in-process against two fake neurons on loopback. A
// drained node finishes its requests, takes no new ones, unloads its models and says so; the
// drain survives a restart on the same data_dir; a catalogue node_selector keeps a model on
// the nodes whose neuron.yaml labels match, and is refused clearly when none does.

const ADMIN = "drain-admin";
const KEY = "sk-drain";
const NEURON_TOKEN = "drain-neuron";

const CATALOGUE = {
  models: [
    { id: "chat", harness: "llamacpp", source: "chat.gguf", vram_mb: 6000, max_concurrency: 4 },
    {
      id: "on-a100",
      harness: "llamacpp",
      source: "a100.gguf",
      vram_mb: 4000,
      node_selector: { gpu: "a100" },
    },
    {
      id: "on-tpu",
      harness: "llamacpp",
      source: "tpu.gguf",
      vram_mb: 4000,
      node_selector: { gpu: "tpu" },
    },
  ],
};

const chatModel = () => neuronModel("chat", { devices: [0], vram_mb: 6000, max_concurrency: 4 });

let dir: string;
let neurons: FakeNeuron[] = [];
const running = new Set<Cortex>();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cortex-drain-"));
  await writeFile(join(dir, "models.yaml"), stringify(CATALOGUE));
  neurons = await Promise.all([
    startFakeNeuron({
      name: "a",
      token: NEURON_TOKEN,
      devices: [gpuDevice(0, 24_000)],
      models: [chatModel()],
      labels: { gpu: "h100", zone: "eu" },
      loadDelayMs: 50,
    }),
    startFakeNeuron({
      name: "b",
      token: NEURON_TOKEN,
      devices: [gpuDevice(0, 24_000)],
      labels: { gpu: "a100" },
      loadDelayMs: 50,
    }),
  ]);
});

afterEach(async () => {
  for (const cortex of running) await cortex.stop(0);
  running.clear();
  await Promise.all(neurons.map((neuron) => neuron.close()));
  neurons = [];
  await rm(dir, { recursive: true, force: true });
});

const neuron = (name: string): FakeNeuron => {
  const found = neurons.find((entry) => entry.name === name);
  if (!found) throw new Error(`no fake neuron ${name}`);
  return found;
};

const configOf = (overrides: Partial<CortexConfigInput> = {}) =>
  CortexConfig.parse({
    listen: "127.0.0.1:0",
    catalogue: dir,
    data_dir: ":memory:",
    poll_interval_ms: 100,
    discovery_interval_ms: 5000,
    poll_timeout_ms: 500,
    unhealthy_after_failures: 2,
    api_keys: [KEY],
    admin_token: ADMIN,
    queue_timeout_ms: 5000,
    neurons: neurons.map((entry) => ({ name: entry.name, url: entry.url, token: NEURON_TOKEN })),
    ...overrides,
  });

const start = async (overrides: Partial<CortexConfigInput> = {}): Promise<Cortex> => {
  const cortex = await startCortex(configOf(overrides), silentLog);
  running.add(cortex);
  await expect
    .poll(() => cortex.store.snapshot.nodes.every((node) => node.healthy && node.labels), {
      timeout: 5000,
    })
    .toBe(true);
  return cortex;
};

const admin = (cortex: Cortex, method: string, path: string, token = ADMIN) =>
  fetch(`${cortex.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });

const fleet = async (cortex: Cortex) =>
  FleetAnswer.parse(await (await admin(cortex, "GET", "/api/fleet")).json());

const drainOf = async (cortex: Cortex, node: string) =>
  (await fleet(cortex)).nodes.find((entry) => entry.name === node)?.drain;

const chat = (cortex: Cortex, model: string) =>
  fetch(`${cortex.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });

describe("drain", () => {
  it("lets the request in flight finish, sends new ones elsewhere, unloads, and resumes", async () => {
    const cortex = await start();
    neuron("a").setLatency(1500);
    const first = chat(cortex, "chat");
    await expect.poll(() => neuron("a").inFlight("chat")).toBe(1);

    const drained = await admin(cortex, "POST", "/api/nodes/a/drain");
    expect(drained.status).toBe(200);
    expect(await drained.json()).toEqual({
      node: "a",
      drain: "draining",
      since: expect.stringMatching(/^\d{4}-/),
    });
    expect(await drainOf(cortex, "a")).toBe("draining");

    // A new request does not go to the draining node: the model is loaded on the other one.
    const second = await chat(cortex, "chat");
    expect(second.status).toBe(200);
    expect(second.headers.get("x-cortex-node")).toBe("b");
    // The first request still runs on the draining node, whose model stays until it is done.
    expect(neuron("a").unloads).toEqual([]);
    expect(await drainOf(cortex, "a")).toBe("draining");

    const answer = await first;
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-cortex-node")).toBe("a");
    await expect.poll(() => drainOf(cortex, "a"), { timeout: 5000 }).toBe("drained");
    expect(neuron("a").unloads).toEqual([{ model_id: "chat", force: false }]);
    expect((await fleet(cortex)).nodes.find((node) => node.name === "a")?.models).toEqual([]);

    // Further requests keep going to b, and the history says what happened.
    expect((await chat(cortex, "chat")).headers.get("x-cortex-node")).toBe("b");
    const history = (await (await admin(cortex, "GET", "/api/history")).json()) as {
      events: { type: string; node: string | null }[];
    };
    const nodeEvents = history.events
      .filter((event) => /^node_(draining|drained|resumed)$/.test(event.type))
      .map((event) => `${event.type} ${event.node}`);
    expect(nodeEvents).toEqual(["node_drained a", "node_draining a"]);

    const resumed = await admin(cortex, "POST", "/api/nodes/a/resume");
    expect(await resumed.json()).toEqual({ node: "a", drain: null, since: null });
    expect(await drainOf(cortex, "a")).toBeNull();
    // Idempotent both ways.
    expect((await admin(cortex, "POST", "/api/nodes/a/resume")).status).toBe(200);
  });

  it("refuses a model left only on a draining node, naming the drain, when no other node can run it", async () => {
    const cortex = await start();
    await admin(cortex, "POST", "/api/nodes/b/drain");
    const selected = await chat(cortex, "on-a100");
    expect(selected.status).toBe(503);
    const body = (await selected.json()) as { error: { code: string; message: string } };
    expect(openAIProblems("ErrorResponse", body)).toEqual([]);
    expect(body.error.code).toBe("service_unavailable");
    expect(body.error.message).toContain('every node that can run model "on-a100" is draining: b');
    expect(selected.headers.get("retry-after")).not.toBeNull();
  });

  it("stays drained across a restart on the same data_dir, and unloads what shows up there", async () => {
    const dataDir = join(dir, "state");
    const first = await start({ data_dir: dataDir });
    await admin(first, "POST", "/api/nodes/a/drain");
    await expect.poll(() => drainOf(first, "a"), { timeout: 5000 }).toBe("drained");
    await first.stop(0);
    running.delete(first);

    // The neuron comes back from maintenance with a model preloaded.
    neuron("a").setModels([chatModel()]);
    const again = await start({ data_dir: dataDir });
    expect(["draining", "drained"]).toContain(await drainOf(again, "a"));
    const answer = await chat(again, "chat");
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-cortex-node")).toBe("b");
    await expect.poll(() => drainOf(again, "a"), { timeout: 5000 }).toBe("drained");
    expect(neuron("a").models()).toEqual([]);
  });

  it("answers 404 for an unknown node, 400 for a name that cannot be one, 401 without the token", async () => {
    const cortex = await start();
    const unknown = await admin(cortex, "POST", "/api/nodes/nope/drain");
    expect(unknown.status).toBe(404);
    const body = await unknown.json();
    expect(openAIProblems("ErrorResponse", body)).toEqual([]);
    expect(body).toMatchObject({
      error: { code: "not_found", message: 'node "nope" is not in the fleet' },
    });
    expect((await admin(cortex, "POST", "/api/nodes/nope/resume")).status).toBe(404);
    expect((await admin(cortex, "POST", `/api/nodes/${"x".repeat(300)}/drain`)).status).toBe(400);
    expect((await admin(cortex, "POST", "/api/nodes/-a/drain")).status).toBe(400);
    expect((await admin(cortex, "POST", "/api/nodes/a/drain", "wrong")).status).toBe(401);
    expect(await drainOf(cortex, "a")).toBeNull();
  });
});

describe("drain and min_replicas", () => {
  it("keeps the minimum on another node, never on the draining one", async () => {
    const kept = {
      id: "kept",
      harness: "llamacpp",
      source: "k.gguf",
      vram_mb: 4000,
      min_replicas: 1,
    };
    await writeFile(join(dir, "models.yaml"), stringify({ models: [kept] }));
    const cortex = await start();
    const holders = () =>
      cortex.store.snapshot.nodes
        .filter((node) => node.models.some((m) => m.id === "kept" && m.status === "loaded"))
        .map((node) => node.name);
    await expect.poll(holders, { timeout: 5000 }).toHaveLength(1);
    const [first = ""] = holders();
    const other = first === "a" ? "b" : "a";

    await admin(cortex, "POST", `/api/nodes/${first}/drain`);
    await expect.poll(holders, { timeout: 5000 }).toEqual([other]);
    await expect.poll(() => drainOf(cortex, first), { timeout: 5000 }).toBe("drained");
    // A second look later: still one replica, and only ever one load on the drained node.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(holders()).toEqual([other]);
    expect(neuron(first).loads.filter((load) => load.model_id === "kept")).toHaveLength(1);
  });
});

describe("labels and node_selector", () => {
  it("reports each node's labels and places a selected model only where they match", async () => {
    const cortex = await start();
    const labels = Object.fromEntries(
      (await fleet(cortex)).nodes.map((node) => [node.name, node.labels]),
    );
    expect(labels).toEqual({ a: { gpu: "h100", zone: "eu" }, b: { gpu: "a100" } });

    const answer = await chat(cortex, "on-a100");
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-cortex-node")).toBe("b");
    expect(neuron("a").loads).toEqual([]);
  });

  it("refuses a selector no node matches with 503 no_feasible_node naming it", async () => {
    const cortex = await start();
    const answer = await chat(cortex, "on-tpu");
    expect(answer.status).toBe(503);
    const body = (await answer.json()) as { error: { code: string; message: string } };
    expect(openAIProblems("ErrorResponse", body)).toEqual([]);
    expect(body.error).toMatchObject({
      code: "no_feasible_node",
      message:
        'no node can run model "on-tpu": node_selector {gpu: tpu} matches no node (a: gpu=h100, zone=eu; b: gpu=a100)',
    });
    // An operator's load says the same.
    const load = await fetch(`${cortex.url}/api/models/load`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "on-tpu" }),
    });
    expect(load.status).toBe(503);
    expect(((await load.json()) as { error: { message: string } }).error.message).toContain(
      "node_selector {gpu: tpu} matches no node",
    );
  });
});
