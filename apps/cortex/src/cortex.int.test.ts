import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, request as httpRequest, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CortexConfig, type Device, type FleetEvent, type NeuronModel } from "@cortex/protocol";
import { type FakeNeuron, gpuDevice, neuronModel, startFakeNeuron } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import OpenAI from "openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type Cortex, startCortex } from "./cortex.js";
import { silentLog } from "./log.js";
import type { TrafficBucket, TrafficOverallBucket } from "./state/queries.js";

// Cortex in-process against fake neurons (real HTTP servers on loopback): every resolution
// branch, the proxy and the admin API, driven over HTTP and with the official openai client.

const ADMIN = "admin-secret";
const KEY = "sk-client";
const NEURON_TOKEN = "neuron-secret";

const gpu = (index: number, totalMb: number, freeMb = totalMb): Device =>
  gpuDevice(index, totalMb, freeMb, {
    utilization_pct: 0,
    temperature_c: 40,
    bus_id: `00000000:0${index}:00.0`,
    driver_version: "550.0",
  });

const resident = (id: string, fields: Partial<NeuronModel> = {}): NeuronModel =>
  neuronModel(id, { devices: [0], vram_mb: 4000, ...fields });

const CATALOGUE = {
  models: [
    {
      id: "chat-small",
      aliases: ["small", "org/chat-small"],
      harness: "llamacpp",
      source: "small.gguf",
      vram_mb: 6000,
      max_concurrency: 2,
    },
    {
      id: "pinned-big",
      harness: "llamacpp",
      source: "big.gguf",
      vram_mb: 20_000,
      pinned_on: ["b"],
    },
    { id: "too-big", harness: "llamacpp", source: "huge.gguf", vram_mb: 90_000 },
    {
      id: "embedder",
      harness: "llamacpp",
      source: "embed.gguf",
      vram_mb: 1000,
      capabilities: ["embeddings"],
    },
  ],
};

let dir: string;
let neurons: FakeNeuron[] = [];
let cortex: Cortex | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cortex-int-"));
  await writeFile(join(dir, "models.yaml"), stringify(CATALOGUE));
});

afterEach(async () => {
  await cortex?.stop(0);
  cortex = undefined;
  await Promise.all(neurons.map((neuron) => neuron.close()));
  neurons = [];
  await rm(dir, { recursive: true, force: true });
});

const fleet = async (
  specs: { name: string; devices: Device[]; models?: NeuronModel[]; loadDelayMs?: number }[],
  overrides: Record<string, unknown> = {},
) => {
  neurons = await Promise.all(
    specs.map((spec) =>
      startFakeNeuron({
        name: spec.name,
        token: NEURON_TOKEN,
        devices: spec.devices,
        models: spec.models ?? [],
        loadDelayMs: spec.loadDelayMs ?? 50,
      }),
    ),
  );
  const config = CortexConfig.parse({
    listen: "127.0.0.1:0",
    catalogue: dir,
    data_dir: ":memory:",
    poll_interval_ms: 100,
    discovery_interval_ms: 5000,
    poll_timeout_ms: 500,
    unhealthy_after_failures: 2,
    api_keys: [KEY],
    admin_token: ADMIN,
    queue_timeout_ms: 2000,
    neurons: neurons.map((neuron) => ({ name: neuron.name, url: neuron.url, token: NEURON_TOKEN })),
    ...overrides,
  });
  const started = await startCortex(config, silentLog);
  cortex = started;
  await expect
    .poll(() => started.store.snapshot.nodes.every((node) => node.healthy), { timeout: 5000 })
    .toBe(true);
  return started;
};

const neuron = (name: string): FakeNeuron => {
  const found = neurons.find((entry) => entry.name === name);
  if (!found) throw new Error(`no fake neuron ${name}`);
  return found;
};

const client = (c: Cortex, apiKey = KEY) =>
  new OpenAI({ baseURL: `${c.url}/v1`, apiKey, maxRetries: 0, timeout: 20_000 });

const post = (
  c: Cortex,
  path: string,
  body: unknown,
  key = KEY,
  extra: Record<string, string> = {},
) =>
  fetch(`${c.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...extra },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

const chat = (c: Cortex, model: string) =>
  post(c, "/v1/chat/completions", { model, messages: [{ role: "user", content: "hi" }] });

const errorOf = async (response: Response) =>
  ((await response.json()) as { error: { code: string; message: string } }).error;

describe("routing a request", () => {
  it("routes to a loaded replica and proxies with the official client", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    const answer = await client(c).chat.completions.create({
      model: "chat-small",
      messages: [{ role: "user", content: "hello" }],
    });
    expect(openAIProblems("CreateChatCompletionResponse", answer)).toEqual([]);
    expect(neuron("a").requests.get("chat-small")).toBe(1);
    expect(neuron("a").loads).toHaveLength(0);
    // The client's key stays with cortex; the neuron gets its own token.
    expect(neuron("a").headers?.authorization).toBe(`Bearer ${NEURON_TOKEN}`);
    expect(c.dispatcher.reservations.total).toBe(0);
  });

  it("streams chunk by chunk, each a valid OpenAI chunk", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    const chunks = [];
    for await (const chunk of await client(c).chat.completions.create({
      model: "chat-small",
      messages: [{ role: "user", content: "hello" }],
      stream: true,
    })) {
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
      chunks.push(chunk);
    }
    expect(chunks.length).toBeGreaterThan(1);
  });

  it("resolves an alias and forwards the canonical id", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    const answer = await chat(c, "org/chat-small");
    expect(answer.status).toBe(200);
    expect(neuron("a").requests.get("chat-small")).toBe(1);
  });

  it("cold-loads a catalogue model once for many concurrent first requests", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)], loadDelayMs: 300 }]);
    const answers = await Promise.all(Array.from({ length: 30 }, () => chat(c, "chat-small")));
    expect(answers.map((answer) => answer.status)).toEqual(Array(30).fill(200));
    expect(neuron("a").loads).toHaveLength(1);
    expect(neuron("a").loads[0]).toMatchObject({ model_id: "chat-small", devices: [0] });
    expect(c.dispatcher.reservations.total).toBe(0);
  });

  it("places a pinned model only on its node, even when another has more room", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 80_000)] },
      { name: "b", devices: [gpu(0, 24_000)] },
    ]);
    expect((await chat(c, "pinned-big")).status).toBe(200);
    expect(neuron("a").loads).toHaveLength(0);
    expect(neuron("b").loads.map((load) => load.model_id)).toEqual(["pinned-big"]);
  });

  it("evicts an idle model to make room, and the snapshot drops it at once", async () => {
    const c = await fleet([
      {
        name: "b",
        devices: [gpu(0, 24_000, 4_000)],
        models: [resident("old", { vram_mb: 20_000, last_accessed: "2026-01-01T00:00:00.000Z" })],
      },
    ]);
    const events: FleetEvent[] = [];
    c.store.subscribe((event) => events.push(event));
    const answer = await chat(c, "pinned-big");
    expect(answer.status, JSON.stringify(await answer.clone().json())).toBe(200);
    expect(neuron("b").unloads.map((unload) => unload.model_id)).toEqual(["old"]);
    expect(c.store.snapshot.nodes[0]?.models.map((model) => model.id)).toEqual(["pinned-big"]);
    expect(events.map((event) => event.type)).toEqual(
      expect.arrayContaining(["load_started", "evicted", "load_finished"]),
    );
  });

  it("routes to a lazily unloaded replica without a cortex load", async () => {
    const c = await fleet([
      {
        name: "a",
        devices: [gpu(0, 24_000)],
        models: [resident("chat-small", { status: "unloaded" })],
      },
    ]);
    expect((await chat(c, "chat-small")).status).toBe(200);
    expect(neuron("a").loads).toHaveLength(0);
    expect(neuron("a").loadsStarted.get("chat-small")).toBe(1);
  });

  it("answers 503 with Retry-After while the only replica recovers", async () => {
    const c = await fleet([
      {
        name: "a",
        devices: [gpu(0, 24_000)],
        models: [resident("chat-small", { status: "recovering" })],
      },
    ]);
    const answer = await chat(c, "chat-small");
    expect(answer.status).toBe(503);
    expect(answer.headers.get("retry-after")).toBeTruthy();
    expect((await errorOf(answer)).code).toBe("service_unavailable");
  });

  it("says no_feasible_node for a model no node can hold, model_not_found for an unknown one", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)] }]);
    const big = await chat(c, "too-big");
    expect(big.status).toBe(503);
    expect((await errorOf(big)).code).toBe("no_feasible_node");
    const unknown = await chat(c, "nope");
    expect(unknown.status).toBe(404);
    expect((await errorOf(unknown)).code).toBe("model_not_found");
  });

  it("gives every waiter the same clear error when the cold load fails", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)], loadDelayMs: 200 }]);
    neuron("a").failNextLoad("load_failed", "the harness exited with code 1");
    const answers = await Promise.all(Array.from({ length: 5 }, () => chat(c, "chat-small")));
    expect(answers.map((answer) => answer.status)).toEqual(Array(5).fill(502));
    const messages = await Promise.all(
      answers.map(async (answer) => (await errorOf(answer)).message),
    );
    expect(new Set(messages).size).toBe(1);
    expect(messages[0]).toContain("harness exited");
    expect(neuron("a").loads).toHaveLength(1);
    expect(c.store.snapshot.nodes[0]?.models.find((m) => m.id === "chat-small")?.status).not.toBe(
      "loading",
    );
  });
});

describe("admission", () => {
  it("queues beyond max_concurrency and serves everyone, then reports a full queue and timeouts", async () => {
    const c = await fleet(
      [
        {
          name: "a",
          devices: [gpu(0, 24_000)],
          models: [resident("chat-small", { max_concurrency: 2 })],
        },
      ],
      { queue_max: 3, queue_timeout_ms: 1500 },
    );
    neuron("a").setLatency(100);
    // 2 run, 3 wait and are served in turn.
    const served = await Promise.all(Array.from({ length: 5 }, () => chat(c, "chat-small")));
    expect(served.map((answer) => answer.status)).toEqual(Array(5).fill(200));
    // 2 run, 3 wait, the 6th finds the line full.
    neuron("a").setLatency(2500);
    const burst = await Promise.all(Array.from({ length: 6 }, () => chat(c, "chat-small")));
    const statuses = burst.map((answer) => answer.status).sort();
    expect(statuses).toEqual([200, 200, 503, 504, 504, 504]);
    const full = burst.find((answer) => answer.status === 503);
    expect(full?.headers.get("retry-after")).toBeTruthy();
    expect((await errorOf(full as Response)).code).toBe("overloaded");
    await expect.poll(() => c.dispatcher.reservations.total).toBe(0);
    expect(c.dispatcher.admission.depth("chat-small")).toBe(0);
  });

  it("releases the reservation when a client disconnects mid-stream", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    neuron("a").setLatency(200);
    const controller = new AbortController();
    const streaming = fetch(`${c.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "chat-small", stream: true, messages: [] }),
      signal: controller.signal,
    });
    const response = await streaming;
    await response.body?.getReader().read();
    expect(c.dispatcher.reservations.total).toBe(1);
    controller.abort();
    await expect.poll(() => c.dispatcher.reservations.total).toBe(0);
    await expect.poll(() => neuron("a").inFlight("chat-small")).toBe(0);
  });
});

describe("counting load", () => {
  it("does not keep a replica full after cortex's own requests finish, before the next poll", async () => {
    const c = await fleet(
      [
        {
          name: "a",
          devices: [gpu(0, 24_000)],
          models: [resident("chat-small", { max_concurrency: 2 })],
        },
      ],
      { poll_interval_ms: 100, queue_timeout_ms: 300 },
    );
    neuron("a").setLatency(800);
    // Two slow requests fill the replica while a poll sees both in flight; then polling stops,
    // so the snapshot keeps saying "2 in flight" after they are done.
    const slow = [chat(c, "chat-small"), chat(c, "chat-small")];
    await expect
      .poll(() => c.store.snapshot.nodes[0]?.models[0]?.in_flight, { timeout: 3000 })
      .toBe(2);
    await c.poller.stop();
    await Promise.all(slow);
    neuron("a").setLatency(0);
    expect(c.store.snapshot.nodes[0]?.models[0]?.in_flight).toBe(2);
    // Those two were cortex's own and have finished: the replica is free, not saturated (which
    // would leave this request waiting, with no poll to wake it, until its 504).
    expect(c.dispatcher.decide("chat-small").kind).toBe("route");
    expect((await chat(c, "chat-small")).status).toBe(200);
  });
});

describe("failures between polls", () => {
  it("fails over to another replica when a neuron refuses the connection", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
      { name: "b", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    await neuron("a").kill();
    const answers = await Promise.all(Array.from({ length: 4 }, () => chat(c, "chat-small")));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
    expect(neuron("b").requests.get("chat-small")).toBe(4);
    await expect
      .poll(() => c.store.snapshot.nodes.find((node) => node.name === "a")?.healthy, {
        timeout: 3000,
      })
      .toBe(false);
  });

  it("answers 503 when no node is healthy", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    await neuron("a").kill();
    await expect.poll(() => c.store.snapshot.nodes[0]?.healthy, { timeout: 3000 }).toBe(false);
    const answer = await chat(c, "chat-small");
    expect(answer.status).toBe(503);
    expect((await errorOf(answer)).code).toBe("service_unavailable");
  });
});

describe("bad input and auth", () => {
  it.each([
    ["{not json", 400, "invalid_request_error"],
    [JSON.stringify({ messages: [] }), 400, "missing_model"],
    [JSON.stringify({ model: 5 }), 400, "invalid_request_error"],
    [JSON.stringify([1, 2]), 400, "invalid_request_error"],
  ])("answers %s with %i %s", async (body, status, code) => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)] }]);
    const answer = await post(c, "/v1/chat/completions", body);
    expect(answer.status).toBe(status);
    const json = await answer.json();
    expect(openAIProblems("ErrorResponse", json)).toEqual([]);
    expect((json as { error: { code: string } }).error.code).toBe(code);
    expect(answer.headers.get("x-request-id")).toBeTruthy();
  });

  it("refuses a wrong client key on /v1 and a wrong admin token on /api", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)] }]);
    const refused = await post(c, "/v1/chat/completions", { model: "chat-small" }, "wrong");
    expect(refused.status).toBe(401);
    // A refusal carries its request id like every answer.
    expect(refused.headers.get("x-request-id")).toBeTruthy();
    expect((await fetch(`${c.url}/v1/models`)).status).toBe(401);
    expect(
      (await fetch(`${c.url}/api/fleet`, { headers: { authorization: `Bearer ${KEY}` } })).status,
    ).toBe(401);
    expect((await fetch(`${c.url}/health`)).status).toBe(200);
    expect(neuron("a").requests.size).toBe(0);
  });
});

/** A POST with the path exactly as given (fetch would resolve dot segments itself). */
const rawPost = (c: Cortex, path: string, body: unknown): Promise<number> =>
  new Promise((resolve, reject) => {
    const url = new URL(c.url);
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });

/**
 * A reverse proxy that cuts any answer silent for `idleMs`, like nginx's proxy_read_timeout or a
 * load balancer's idle timeout.
 */
const idleProxy = async (
  target: string,
  idleMs: number,
): Promise<{ url: string; server: Server }> => {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    let timer: NodeJS.Timeout | undefined;
    const out = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.on("data", (chunk: Buffer) => {
          arm();
          res.write(chunk);
        });
        answer.on("end", () => {
          clearTimeout(timer);
          res.end();
        });
      },
    );
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        out.destroy();
        res.destroy();
      }, idleMs);
    };
    out.on("error", () => res.destroy());
    req.pipe(out);
    arm();
  });
  server.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
};

describe("cold-load feedback", () => {
  it("keeps a waiting stream alive with comments the official client ignores, through a proxy's idle timeout", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)], loadDelayMs: 3500 }]);
    const proxy = await idleProxy(c.url, 2000);
    try {
      // Control: a non-streaming cold request through the same proxy is cut while it waits.
      await expect(
        new OpenAI({
          baseURL: `${proxy.url}/v1`,
          apiKey: KEY,
          maxRetries: 0,
        }).chat.completions.create({
          model: "embedder",
          messages: [{ role: "user", content: "hi" }],
        }),
      ).rejects.toThrow();
      const client = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: KEY, maxRetries: 0 });
      const chunks = [];
      for await (const chunk of await client.chat.completions.create({
        model: "chat-small",
        messages: [{ role: "user", content: "hello" }],
        stream: true,
      })) {
        expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
        chunks.push(chunk);
      }
      expect(chunks.length).toBeGreaterThan(1);
    } finally {
      proxy.server.closeAllConnections();
      proxy.server.close();
    }
  });

  it("says what it waits for in the comments, and nothing for a request answered at once", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], loadDelayMs: 1800, models: [resident("chat-small")] },
    ]);
    const cold = await post(c, "/v1/chat/completions", {
      model: "embedder",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    const text = await cold.text();
    expect(text).toMatch(/^: loading embedder/m);
    expect(text).toContain("data: [DONE]");
    const warm = await post(c, "/v1/chat/completions", {
      model: "chat-small",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(await warm.text()).not.toMatch(/^: /m);
  });

  it("puts a failure after the stream started into the stream, where the official client raises it", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)], loadDelayMs: 1800 }]);
    neuron("a").failNextLoad("load_failed", "the harness exited with code 3");
    const client = new OpenAI({ baseURL: `${c.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const consume = async () => {
      for await (const _chunk of await client.chat.completions.create({
        model: "chat-small",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      })) {
        // nothing arrives
      }
    };
    await expect(consume()).rejects.toThrow(/harness exited with code 3/);
    expect(c.dispatcher.reservations.total).toBe(0);
  });
});

describe("paths", () => {
  it.each([
    "/v1/../models/load",
    "/v1/%2e%2e/models/unload",
    "/v1/chat/%2E%2E/%2e%2e/models/load",
    "/v1/a%2fb",
  ])("refuses %s without reaching a neuron", async (path) => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    expect(await rawPost(c, path, { model: "chat-small", model_id: "x" })).toBe(400);
    expect(neuron("a").loads).toHaveLength(0);
    expect(neuron("a").unloads).toHaveLength(0);
  });
});

describe("the admin API and model list", () => {
  it("lists catalogue and loaded models with status and locations", async () => {
    const c = await fleet([
      {
        name: "a",
        devices: [gpu(0, 24_000)],
        models: [resident("chat-small"), resident("by-hand")],
      },
    ]);
    const list = await client(c).models.list();
    const ids = list.data.map((model) => model.id);
    expect(ids).toEqual(
      expect.arrayContaining(["chat-small", "by-hand", "pinned-big", "embedder"]),
    );
    const raw = (await (
      await fetch(`${c.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })
    ).json()) as {
      data: { id: string; status: string; locations: unknown[] }[];
    };
    expect(raw.data.find((model) => model.id === "chat-small")).toMatchObject({
      status: "loaded",
      locations: [{ node: "a", status: "loaded" }],
    });
    expect(raw.data.find((model) => model.id === "pinned-big")?.status).toBe("available");
  });

  it("pre-places a model by hand, then unloads it", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)] },
      { name: "b", devices: [gpu(0, 24_000)] },
    ]);
    const admin = { authorization: `Bearer ${ADMIN}` };
    const load = await post(c, "/api/models/load", { model: "small", node: "b" }, ADMIN);
    expect(load.status).toBe(200);
    expect(await load.json()).toMatchObject({
      model: "chat-small",
      node: "b",
      status: "loaded",
      already_loaded: false,
    });
    const again = await post(c, "/api/models/load", { model: "chat-small" }, ADMIN);
    expect(await again.json()).toMatchObject({ node: "b", already_loaded: true });
    const fleetAnswer = (await (await fetch(`${c.url}/api/fleet`, { headers: admin })).json()) as {
      nodes: { name: string; models: { id: string }[] }[];
    };
    expect(fleetAnswer.nodes.find((node) => node.name === "b")?.models.map((m) => m.id)).toEqual([
      "chat-small",
    ]);
    const unload = await post(c, "/api/models/unload", { model: "chat-small" }, ADMIN);
    expect(await unload.json()).toEqual({ model: "chat-small", status: "unloaded", nodes: ["b"] });
    expect((await post(c, "/api/models/unload", { model: "chat-small" }, ADMIN)).status).toBe(404);
    expect((await post(c, "/api/models/load", { model: "x", surprise: 1 }, ADMIN)).status).toBe(
      400,
    );
    // Logs come from the node that has the model.
    await post(c, "/api/models/load", { model: "chat-small", node: "a" }, ADMIN);
    const logs = await fetch(`${c.url}/api/models/chat-small/logs`, { headers: admin });
    expect(logs.status).toBe(200);
    expect(logs.headers.get("content-type")).toContain("text/plain");
    expect((await fetch(`${c.url}/api/models/nope/logs`, { headers: admin })).status).toBe(404);
  });

  it("serves the lifecycle history and the nodes it has seen", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)] }]);
    const admin = { authorization: `Bearer ${ADMIN}` };
    await post(c, "/api/models/load", { model: "chat-small" }, ADMIN);
    await post(c, "/api/models/unload", { model: "chat-small" }, ADMIN);
    const answer = await fetch(`${c.url}/api/history?limit=50`, { headers: admin });
    expect(answer.status).toBe(200);
    const history = (await answer.json()) as {
      events: { type: string; model: string | null; duration_ms: number | null; at: string }[];
      nodes: { name: string; healthy: boolean; last_ok_at: string | null }[];
    };
    // Newest first: the unload, then the load that finished with its duration.
    const types = history.events.filter((e) => e.model === "chat-small").map((e) => e.type);
    expect(types.indexOf("unloaded")).toBeLessThan(types.indexOf("load_finished"));
    expect(types).toContain("load_started");
    const finished = history.events.find((e) => e.type === "load_finished");
    expect(finished?.duration_ms).toBeGreaterThanOrEqual(0);
    expect(Number.isNaN(Date.parse(finished?.at ?? ""))).toBe(false);
    expect(history.nodes).toEqual([expect.objectContaining({ name: "a", healthy: true })]);
    for (const limit of ["0", "1001", "x", "-1"]) {
      const refused = await fetch(`${c.url}/api/history?limit=${limit}`, { headers: admin });
      expect(refused.status).toBe(400);
      expect((await errorOf(refused)).code).toBe("invalid_request_error");
    }
    expect((await fetch(`${c.url}/api/history`)).status).toBe(401);
  });

  it("aggregates the request log into traffic buckets", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    await chat(c, "chat-small");
    await chat(c, "chat-small");
    await chat(c, "nope");
    const admin = { authorization: `Bearer ${ADMIN}` };
    const traffic = (await (
      await fetch(`${c.url}/api/traffic?window=600&bucket=600`, { headers: admin })
    ).json()) as {
      bucket_s: number;
      buckets: TrafficBucket[];
      overall: TrafficOverallBucket[];
    };
    expect(traffic.bucket_s).toBe(600);
    // Percentiles per model and overall, in order; ttft only where something was answered.
    for (const row of [...traffic.buckets, ...traffic.overall]) {
      const { p50LatencyMs, p95LatencyMs, p99LatencyMs, maxLatencyMs } = row;
      expect(p50LatencyMs).toBeGreaterThan(0);
      expect(p50LatencyMs).toBeLessThanOrEqual(p95LatencyMs);
      expect(p95LatencyMs).toBeLessThanOrEqual(p99LatencyMs);
      expect(p99LatencyMs).toBeLessThanOrEqual(maxLatencyMs);
      expect(row).toHaveProperty("p99TtftMs");
    }
    expect(traffic.buckets.find((row) => row.model === "chat-small")?.p50TtftMs).toEqual(
      expect.any(Number),
    );
    expect(traffic.overall.reduce((sum, row) => sum + row.requests, 0)).toBe(3);
    expect(traffic.overall.reduce((sum, row) => sum + row.errors, 0)).toBe(1);
    const byModel = new Map<string, { requests: number; errors: number }>();
    for (const bucket of traffic.buckets) {
      const sum = byModel.get(bucket.model) ?? { requests: 0, errors: 0 };
      byModel.set(bucket.model, {
        requests: sum.requests + bucket.requests,
        errors: sum.errors + bucket.errors,
      });
    }
    expect(byModel.get("chat-small")).toEqual({ requests: 2, errors: 0 });
    expect(byModel.get("unknown")).toEqual({ requests: 1, errors: 1 });
    // One model: `overall` holds that model's numbers.
    const one = (await (
      await fetch(`${c.url}/api/traffic?window=600&bucket=600&model=chat-small`, {
        headers: admin,
      })
    ).json()) as typeof traffic;
    expect(one.buckets.map((row) => row.model)).toEqual(one.buckets.map(() => "chat-small"));
    expect(one.overall).toEqual(one.buckets.map(({ model: _model, ...rest }) => rest));
    expect((await fetch(`${c.url}/api/traffic?bucket=0`, { headers: admin })).status).toBe(400);
    expect((await fetch(`${c.url}/api/traffic?window=abc`, { headers: admin })).status).toBe(400);
  });

  it("exposes Prometheus metrics", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    await chat(c, "chat-small");
    const text = await (await fetch(`${c.url}/metrics`)).text();
    expect(text).toContain('cortex_requests_total{model="chat-small",node="a",status="200"} 1');
    expect(text).toContain('cortex_node_healthy{node="a"} 1');
  });
});
