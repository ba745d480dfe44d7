import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_MESSAGE_CHARS } from "../bounded-text.js";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { testManager } from "../models/model-manager.fixtures.js";
import { MAX_FAILED_ENTRIES, type ModelManager } from "../models/model-manager.js";
import { localSources } from "../sources/preparer.js";
import { startTestApp, type TestApp } from "./neuron-app.fixtures.js";

// Issue 13: loads with a 1 MB source, retried under new ids, once left hundreds of failed
// models each carrying a megabyte of error; GET /models grew to 229 MB and cortex's polls timed
// out. Here the real API and the real source preparer take the same beating.

/** As long a source as a load request may name (longer ones are refused at the door). */
const SOURCE = "s".repeat(4096);
/** A megabyte, as the attack sent. */
const HUGE = "s".repeat(1_000_000);
const LOADS = MAX_FAILED_ENTRIES + 8;

let dir: string;
let app: TestApp;
let manager: ModelManager;

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${app.base}${path}`, {
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
  manager = testManager({
    harnesses: new Map([["fake", fake]]),
    sources: localSources({ modelsDir: dir, hfEndpoint: "http://127.0.0.1:9" }),
  });
  app = await startTestApp(manager, { token: "" });
});

afterAll(async () => {
  await manager.shutdown();
  await app.close();
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
    const res = await fetch(`${app.base}/models`);
    const text = await res.text();
    const models = JSON.parse(text) as { id: string; status: string; error: string }[];
    expect(models.map((model) => model.id)).toEqual(
      Array.from({ length: MAX_FAILED_ENTRIES }, (_, i) => `m${i + LOADS - MAX_FAILED_ENTRIES}`),
    );
    expect(models.every((model) => model.status === "failed")).toBe(true);
    expect(models.every((model) => model.error.length <= MAX_MESSAGE_CHARS)).toBe(true);
    expect(text.length).toBeLessThan(MAX_FAILED_ENTRIES * (MAX_MESSAGE_CHARS + 400));

    const logs = await fetch(`${app.base}/models/m${LOADS - 1}/logs`);
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
