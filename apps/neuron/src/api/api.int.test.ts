import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BodyBudget } from "@cortex/http-kit";
import { type DiscoveryAnswer, ModelsAnswer } from "@cortex/protocol";
import { fakeHarnessTemplate, gpuDevice } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { processSettings, testManager } from "../models/model-manager.fixtures.js";
import type { ModelManager } from "../models/model-manager.js";
import { freeLoopbackPort, probeReady } from "../supervisor/net.js";
import { spawnRunner } from "../supervisor/process-runner.js";
import { startTestApp, type TestApp } from "./neuron-app.fixtures.js";

// The neuron's HTTP API on loopback, with real fake-harness processes behind it.

const TOKEN = "s3cret-token";

const discovery: DiscoveryAnswer = {
  node: {
    name: "gpu-a",
    hostname: "gpu-a",
    os: "Linux",
    kernel: "6.1",
    cpu: "test",
    memory_mb: 1024,
  },
  devices: [gpuDevice(0, 24_000, 24_000, { name: "Test" })],
  harnesses: [{ name: "fake", kind: "template" }],
};

let dir: string;
let app: TestApp;
let manager: ModelManager;

const call = (path: string, init: RequestInit & { json?: unknown; token?: string | null } = {}) => {
  const headers = new Headers(init.headers);
  if (init.token !== null) headers.set("authorization", `Bearer ${init.token ?? TOKEN}`);
  if (init.json !== undefined) headers.set("content-type", "application/json");
  return fetch(`${app.base}${path}`, {
    ...init,
    headers,
    ...(init.json !== undefined
      ? { body: typeof init.json === "string" ? init.json : JSON.stringify(init.json) }
      : {}),
  });
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-api-"));
  await writeFile(
    join(dir, "fast.json"),
    JSON.stringify({ banner: "hello from the fake", stream_chunks: 8, latency_ms: 20 }),
  );
  const fake = defineHarness("fake", fakeHarnessTemplate(["--alias", "{model_id}"]), {
    node: process.execPath,
    entry: "unused",
  }) as Harness;
  manager = testManager(
    {
      harnesses: new Map([["fake", fake]]),
      runner: spawnRunner({ parentPid: process.pid, watchdogGraceMs: 500 }),
      sources: { check: () => {}, prepare: async (source) => join(dir, source) },
      devices: () => discovery.devices,
      freePort: freeLoopbackPort,
      probe: probeReady,
    },
    processSettings({ restartDelaysMs: [100], maxQueued: 4, queueTimeoutMs: 5000 }),
  );
  app = await startTestApp(manager, { token: TOKEN, discovery: () => discovery });
});

afterAll(async () => {
  await manager.shutdown();
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

describe("auth", () => {
  it("lets /health through without a token", async () => {
    const res = await call("/health", { token: null });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok", version: "0.1.0" });
  });

  it.each([null, "wrong", ""])(
    "refuses token %j everywhere else with 401 in the envelope",
    async (token) => {
      for (const path of ["/discovery", "/models"]) {
        const res = await call(path, { token });
        expect(res.status).toBe(401);
        expect(openAIProblems("ErrorResponse", await res.json())).toEqual([]);
      }
      const inference = await call("/v1/chat/completions", {
        method: "POST",
        token,
        json: { model: "fast" },
      });
      expect(inference.status).toBe(401);
    },
  );
});

describe("models", () => {
  it("loads by hand with curl's JSON, then lists the model", async () => {
    const res = await call("/models/load", {
      method: "POST",
      json: { model_id: "fast", harness: "fake", source: "fast.json", devices: [0], vram_mb: 1000 },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      id: "fast",
      status: "loaded",
      url: "http://localhost:13131",
      already_loaded: false,
    });
    const models = ModelsAnswer.parse(await (await call("/models")).json());
    expect(models).toEqual([
      expect.objectContaining({ id: "fast", status: "loaded", devices: [0], in_flight: 0 }),
    ]);
  });

  it("streams load progress as server-sent events, ending with the result", async () => {
    const res = await call("/models/load", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      json: { model_id: "fast", harness: "fake", source: "fast.json", devices: [0], vram_mb: 1000 },
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const text = await res.text();
    expect(text).toContain("event: result");
    expect(text).toContain('"already_loaded":true');
  });

  it("serves the endpoint and the harness's logs", async () => {
    expect(await (await call("/models/fast/endpoint")).json()).toEqual({
      url: "http://localhost:13131",
    });
    expect(await (await call("/models/fast/logs")).text()).toContain("hello from the fake");
  });

  it.each([
    ["not JSON", "{nope", 400],
    ["unknown harness", { model_id: "x", harness: "sh", source: "x.json" }, 400],
    ["path traversal in the id", { model_id: "../../etc", harness: "fake", source: "x.json" }, 400],
    [
      "a command smuggled as a key",
      { model_id: "x", harness: "fake", source: "x.json", command: "rm -rf /" },
      400,
    ],
    ["wrong types", { model_id: 5, harness: "fake", source: "x.json", devices: "0" }, 400],
    [
      "a device the node lacks",
      { model_id: "x", harness: "fake", source: "x.json", devices: [9] },
      400,
    ],
  ])("refuses a load with %s and changes nothing", async (_why, body, status) => {
    const before = await (await call("/models")).json();
    const res = await call("/models/load", { method: "POST", json: body });
    expect(res.status).toBe(status);
    expect(openAIProblems("ErrorResponse", await res.json())).toEqual([]);
    expect(await (await call("/models")).json()).toEqual(before);
  });

  it("404s logs and endpoints of unknown or traversing ids", async () => {
    for (const path of [
      "/models/nope/logs",
      "/models/..%2F..%2Fetc%2Fpasswd/logs",
      "/models/nope/endpoint",
    ]) {
      const res = await call(path);
      expect(res.status).toBe(404);
    }
  });

  it("answers an oversized body with 413", async () => {
    const res = await call("/models/load", {
      method: "POST",
      json: JSON.stringify({ model_id: "x".repeat(2_000_000) }),
    });
    expect(res.status).toBe(413);
  });
});

describe("inference", () => {
  it("proxies a chat completion to the harness", async () => {
    const client = new OpenAI({ baseURL: `${app.base}/v1`, apiKey: TOKEN, maxRetries: 0 });
    const completion = await client.chat.completions.create({
      model: "fast",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(openAIProblems("CreateChatCompletionResponse", completion)).toEqual([]);
  });

  it("streams chunk by chunk through the official client", async () => {
    const client = new OpenAI({ baseURL: `${app.base}/v1`, apiKey: TOKEN, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: "fast",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    const arrivals: number[] = [];
    for await (const chunk of stream) {
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
      arrivals.push(performance.now());
    }
    expect(arrivals).toHaveLength(8);
    // Chunks arrive spread over the harness's 20 ms gaps, not in one buffered burst.
    expect((arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0)).toBeGreaterThan(60);
  });

  it("frees the slot when the client disconnects mid-stream", async () => {
    const controller = new AbortController();
    const res = await call("/v1/chat/completions", {
      method: "POST",
      json: { model: "fast", stream: true, messages: [] },
      signal: controller.signal,
    });
    await res.body?.getReader().read();
    controller.abort();
    await expect.poll(() => manager.list()[0]?.in_flight).toBe(0);
    expect(manager.list()[0]?.queued).toBe(0);
  });

  it.each([
    ["not JSON", "{", 400, "invalid_request_error"],
    ["no model", { messages: [] }, 400, "missing_model"],
    ["an unknown model", { model: "ghost" }, 404, "model_not_found"],
  ])("answers %s in the envelope", async (_why, body, status, code) => {
    const res = await call("/v1/chat/completions", { method: "POST", json: body });
    expect(res.status).toBe(status);
    const envelope = (await res.json()) as { error: { code: string } };
    expect(envelope.error.code).toBe(code);
  });

  it("unloads, and then 404s a second unload", async () => {
    const res = await call("/models/unload", { method: "POST", json: { model_id: "fast" } });
    expect(res.status).toBe(200);
    expect(await (await call("/models")).json()).toEqual([]);
    expect(
      (await call("/models/unload", { method: "POST", json: { model_id: "fast" } })).status,
    ).toBe(404);
  });
});

describe("limits", () => {
  const KiB = 1024;
  let limited: TestApp;
  const budget = new BodyBudget(300 * KiB);

  beforeAll(async () => {
    await writeFile(
      join(dir, "heavy.json"),
      JSON.stringify({ stream_chunks: 1_000_000, stream_padding_bytes: 16 * KiB }),
    );
    limited = await startTestApp(manager, {
      token: TOKEN,
      discovery: () => discovery,
      limits: { bodyLimitBytes: 200 * KiB, bodyBudget: budget, clientStallTimeoutMs: 300 },
    });
    const res = await call("/models/load", {
      method: "POST",
      json: { model_id: "heavy", harness: "fake", source: "heavy.json", max_concurrency: 1 },
    });
    expect(res.status).toBe(200);
  });

  afterAll(async () => {
    await limited.close();
  });

  const infer = (body: string) =>
    fetch(`${limited.base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body,
    });
  const heavy = (bytes: number) =>
    JSON.stringify({ model: "heavy", messages: [{ role: "user", content: "x".repeat(bytes) }] });

  /** A streamed request to the heavy model whose client reads nothing (its socket is paused). */
  const stalledStream = () => {
    const { port } = new URL(limited.base);
    const socket = connect(Number(port), "127.0.0.1");
    const body = JSON.stringify({ model: "heavy", stream: true, messages: [] });
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    socket.pause();
    return socket;
  };

  it("refuses a body over max_body_mb with 413 and one nested past 64 levels with 400", async () => {
    expect((await infer(heavy(210 * KiB))).status).toBe(413);
    const deep = await infer(`{"model":"heavy","x":${"[".repeat(5000)}${"]".repeat(5000)}}`);
    expect(deep.status).toBe(400);
    expect(((await deep.json()) as { error: { message: string } }).error.message).toContain(
      "deeper than 64 levels",
    );
  });

  it("cuts a client that stops reading, which frees the model's only slot", async () => {
    const socket = stalledStream();
    const heavyModel = () => manager.list().find((model) => model.id === "heavy");
    try {
      await expect.poll(() => heavyModel()?.in_flight, { timeout: 10_000 }).toBe(1);
      await expect.poll(() => heavyModel()?.in_flight, { timeout: 10_000 }).toBe(0);
    } finally {
      socket.destroy();
    }
  });

  it("holds bodies up to the budget while they wait for the slot, and refuses the rest with 503", async () => {
    // This stream holds the only slot while its client reads nothing (until the stall cut).
    const socket = stalledStream();
    try {
      await expect.poll(() => budget.used).toBeGreaterThan(0);
      const waiting = await Promise.all(
        Array.from({ length: 4 }, () => infer(heavy(120 * KiB)).then((res) => res.status)),
      );
      // 300 KiB hold two bodies of 120 KiB beside the stream's; two are refused. The two held
      // wait in the admission queue and get the slot once the stalled stream is cut.
      expect(waiting.sort()).toEqual([200, 200, 503, 503]);
    } finally {
      socket.destroy();
    }
    await expect.poll(() => budget.used).toBe(0);
  });
});
