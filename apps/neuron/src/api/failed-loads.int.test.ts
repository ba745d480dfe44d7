import { mkdtemp, realpath, rm } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listen } from "@cortex/http-kit";
import type { DiscoveryAnswer } from "@cortex/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_MESSAGE_CHARS } from "../bounded-text.js";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { MAX_FAILED_ENTRIES, ModelManager } from "../models/model-manager.js";
import { localSources } from "../sources/preparer.js";
import { createNeuronApp } from "./app.js";

// Issue 13: loads with a 1 MB source, retried under new ids, once left hundreds of failed
// models each carrying a megabyte of error; GET /models grew to 229 MB and cortex's polls timed
// out. Here the real API and the real source preparer take the same beating.

const silent = { info: () => {}, warn: () => {}, error: () => {} };
/** As long a source as a load request may name (longer ones are refused at the door). */
const SOURCE = "s".repeat(4096);
/** A megabyte, as the attack sent. */
const HUGE = "s".repeat(1_000_000);
const LOADS = MAX_FAILED_ENTRIES + 8;

const discovery: DiscoveryAnswer = {
  node: { name: "n", hostname: "n", os: "Linux", kernel: "6.1", cpu: "test", memory_mb: 1024 },
  devices: [],
  harnesses: [{ name: "fake", kind: "template" }],
};

let dir: string;
let server: Server;
let base: string;
let manager: ModelManager;

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });

beforeAll(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "neuron-failed-loads-")));
  const fake = defineHarness(
    "fake",
    { command: ["fake-harness", "--model", "{model_path}", "--port", "{port}"] },
    { node: process.execPath, entry: "unused" },
  ) as Harness;
  manager = new ModelManager(
    {
      harnesses: new Map([["fake", fake]]),
      runner: {
        start: () => {
          throw new Error("no harness may start in this test");
        },
      },
      sources: localSources({ modelsDir: dir, hfEndpoint: "http://127.0.0.1:9" }),
      devices: () => [],
      freePort: async () => 9,
      probe: async () => false,
      log: silent,
    },
    {
      selfUrl: "http://localhost:13131",
      defaultIdleTtlS: 0,
      stopGraceMs: 100,
      readyTimeoutMs: () => 1000,
      readyPollMs: 10,
      restartDelaysMs: [],
      stableAfterMs: 60_000,
      maxQueued: 1,
      queueTimeoutMs: 1000,
      harnessEnv: {},
    },
  );
  const app = createNeuronApp({
    token: "",
    version: "0.1.0",
    startedAtMs: Date.now(),
    selfUrl: "http://localhost:13131",
    manager,
    discovery: () => discovery,
    status: () => "ok",
    log: silent,
  });
  server = await listen(app, 0, "127.0.0.1");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await manager.shutdown();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe("failed loads with a long source", () => {
  it(`answer small errors, and GET /models keeps only the last ${MAX_FAILED_ENTRIES}, small`, async () => {
    for (let i = 0; i < LOADS; i++) {
      const res = await post("/models/load", {
        model_id: `m${i}`,
        harness: "fake",
        source: SOURCE,
      });
      expect(res.status).toBe(502);
      const text = await res.text();
      expect(text.length).toBeLessThan(MAX_MESSAGE_CHARS + 200);
      expect(JSON.parse(text)).toMatchObject({
        error: {
          code: "load_failed",
          message: expect.stringMatching(/^loading model "m\d+" failed: /),
        },
      });
    }
    const res = await fetch(`${base}/models`);
    const text = await res.text();
    const models = JSON.parse(text) as { id: string; status: string; error: string }[];
    expect(models.map((model) => model.id)).toEqual(
      Array.from({ length: MAX_FAILED_ENTRIES }, (_, i) => `m${i + LOADS - MAX_FAILED_ENTRIES}`),
    );
    expect(models.every((model) => model.status === "failed")).toBe(true);
    expect(models.every((model) => model.error.length <= MAX_MESSAGE_CHARS)).toBe(true);
    expect(text.length).toBeLessThan(MAX_FAILED_ENTRIES * (MAX_MESSAGE_CHARS + 400));

    const logs = await fetch(`${base}/models/m${LOADS - 1}/logs`);
    expect((await logs.text()).length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
  });

  it("sends a small error event to a streamed load", async () => {
    const res = await post(
      "/models/load",
      { model_id: "streamed", harness: "fake", source: SOURCE },
      { accept: "text/event-stream" },
    );
    const text = await res.text();
    expect(text).toMatch(/event: error/);
    expect(text.length).toBeLessThan(MAX_MESSAGE_CHARS + 400);
  });

  it("refuses a megabyte source outside models_dir with a small 400", async () => {
    const res = await post("/models/load", {
      model_id: "outside",
      harness: "fake",
      source: `/etc/${SOURCE}`,
    });
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text.length).toBeLessThan(MAX_MESSAGE_CHARS + 200);
    expect(JSON.parse(text)).toMatchObject({ error: { param: "source" } });
  });

  it("refuses a megabyte source at the door with a small 400 that does not echo it", async () => {
    const res = await post("/models/load", { model_id: "huge", harness: "fake", source: HUGE });
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text.length).toBeLessThan(1000);
    expect(JSON.parse(text)).toMatchObject({ error: { param: "source" } });
    expect(manager.list().some((model) => model.id === "huge")).toBe(false);
  });

  it("answers an inference request for a megabyte model name with a small 404", async () => {
    const res = await post("/v1/chat/completions", { model: HUGE, messages: [] });
    expect(res.status).toBe(404);
    expect((await res.text()).length).toBeLessThan(1000);
  });
});
