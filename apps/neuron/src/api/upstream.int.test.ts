import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fakeHarnessTemplate, waitFor } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { processSettings, testManager } from "../models/model-manager.fixtures.js";
import type { ModelManager } from "../models/model-manager.js";
import { freeLoopbackPort, probeReady } from "../supervisor/net.js";
import { spawnRunner } from "../supervisor/process-runner.js";
import { startTestApp, type TestApp } from "./neuron-app.fixtures.js";

// `/upstream/<model>/…` on loopback, with real harness processes behind it: the fake harness
// (its `/health`, `/v1/models` and chat) and an echo server that answers what it was sent.

const TOKEN = "upstream-token";

/** A harness that answers `/health`, holds `/hold` open, and echoes every other request. */
const ECHO_HARNESS = `
import { createServer } from "node:http";
const server = createServer(async (req, res) => {
  if (req.url === "/health") return res.end('{"status":"ok"}');
  if (req.url === "/hold") {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write("data: open\\n\\n");
    return;
  }
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = JSON.stringify({
    method: req.method,
    url: req.url,
    headers: req.headers,
    body: Buffer.concat(chunks).toString("utf8"),
  });
  res.writeHead(201, {
    "content-type": "application/json",
    "x-harness": "echo",
    "set-cookie": "harness=1",
  });
  res.end(text);
});
server.listen(Number(process.argv[2]), "127.0.0.1");
`;

let dir: string;
let app: TestApp;
let manager: ModelManager;

const call = (path: string, init: RequestInit = {}, token: string | null = TOKEN) => {
  const headers = new Headers(init.headers);
  if (token !== null) headers.set("authorization", `Bearer ${token}`);
  return fetch(`${app.base}${path}`, { ...init, headers });
};

/** A request with its path as written: fetch would resolve dot segments before sending. */
const rawStatus = (path: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const url = new URL(app.base);
    const req = request(
      {
        hostname: url.hostname,
        port: url.port,
        path,
        headers: { authorization: `Bearer ${TOKEN}` },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end();
  });

const load = async (id: string, harness: string, extra: Record<string, unknown> = {}) => {
  const res = await call("/models/load", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model_id: id, harness, source: `${harness}.json`, ...extra }),
  });
  expect(res.status).toBe(200);
};

const statusOf = (id: string) => manager.list().find((model) => model.id === id)?.status;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-upstream-"));
  await writeFile(join(dir, "fake.json"), JSON.stringify({}));
  await writeFile(join(dir, "echo.json"), "{}");
  await writeFile(join(dir, "echo-harness.mjs"), ECHO_HARNESS);
  const worker = { node: process.execPath, entry: "unused" };
  const fake = defineHarness("fake", fakeHarnessTemplate(["--alias", "{model_id}"]), worker);
  const echo = defineHarness(
    "echo",
    { command: [process.execPath, join(dir, "echo-harness.mjs"), "{port}"] },
    worker,
  );
  manager = testManager(
    {
      harnesses: new Map([
        ["fake", fake as Harness],
        ["echo", echo as Harness],
      ]),
      runner: spawnRunner({ parentPid: process.pid, watchdogGraceMs: 500 }),
      sources: { check: () => {}, prepare: async (source) => join(dir, source) },
      devices: () => [],
      freePort: freeLoopbackPort,
      probe: probeReady,
    },
    processSettings({ maxQueued: 4, queueTimeoutMs: 5000 }),
  );
  app = await startTestApp(manager, { token: TOKEN });
  await load("fast", "fake");
  await load("echo", "echo");
}, 30_000);

afterAll(async () => {
  await manager.shutdown();
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

describe("/upstream/<model>/…", () => {
  it("reaches the harness's /health and /v1/models", async () => {
    const health = await call("/upstream/fast/health");
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const models = await call("/upstream/fast/v1/models");
    expect(((await models.json()) as { data: { id: string }[] }).data[0]?.id).toBe("fast");
  });

  it("passes a POST's body, and the harness's answer as it is", async () => {
    const res = await call("/upstream/fast/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "fast", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(res.status).toBe(200);
    expect(openAIProblems("CreateChatCompletionResponse", await res.json())).toEqual([]);
  });

  it("passes method, path, query and headers, but not the token, cookies or hop-by-hop ones", async () => {
    const res = await call("/upstream/echo/slots/0?action=save&x=%20y", {
      method: "PUT",
      headers: {
        "content-type": "text/plain",
        cookie: "a=1",
        "x-custom": "kept",
        "x-request-id": "req-9",
      },
      body: "hello",
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-harness")).toBe("echo");
    expect(res.headers.get("set-cookie")).toBeNull();
    const echo = (await res.json()) as {
      method: string;
      url: string;
      headers: Record<string, string>;
      body: string;
    };
    expect(echo).toMatchObject({
      method: "PUT",
      url: "/slots/0?action=save&x=%20y",
      body: "hello",
    });
    expect(echo.headers).toMatchObject({
      "content-length": "5",
      "x-custom": "kept",
      "x-request-id": "req-9",
    });
    expect(echo.headers).not.toHaveProperty("authorization");
    expect(echo.headers).not.toHaveProperty("cookie");
    for (const method of ["GET", "DELETE", "PATCH", "OPTIONS"]) {
      const each = await call("/upstream/echo/x", { method });
      expect(((await each.json()) as { method: string }).method).toBe(method);
    }
  });

  it("reloads a model its idle timer unloaded", async () => {
    await load("lazy", "fake", { idle_ttl_s: 1 });
    await waitFor("lazy to idle out", () => statusOf("lazy") === "unloaded", 10_000);
    const res = await call("/upstream/lazy/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
    expect(statusOf("lazy")).toBe("loaded");
  }, 20_000);

  it("frees the slot when the caller leaves mid-answer", async () => {
    const controller = new AbortController();
    const res = await call("/upstream/echo/hold", { signal: controller.signal });
    await res.body?.getReader().read();
    const echo = () => manager.list().find((model) => model.id === "echo");
    expect(echo()?.in_flight).toBe(1);
    controller.abort();
    await expect.poll(() => echo()?.in_flight).toBe(0);
  });

  it("refuses a wrong token, an unknown model and dot segments in the envelope", async () => {
    for (const token of [null, "wrong"]) {
      const res = await call("/upstream/fast/health", {}, token);
      expect(res.status).toBe(401);
      expect(openAIProblems("ErrorResponse", await res.json())).toEqual([]);
    }
    const unknown = await call("/upstream/ghost/health");
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe(
      "model_not_found",
    );
    for (const path of [
      "/upstream/fast/../models",
      "/upstream/fast/%2e%2e/models",
      "/upstream/fast/a%2Fb",
    ])
      expect(await rawStatus(path), path).toBe(400);
  });
});
