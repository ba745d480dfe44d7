import { mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildTinyModel } from "@cortex/harness-llamacpp";
import { EstimateAnswer } from "@cortex/protocol";
import { openAIProblems } from "@cortex/testkit/openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testHarnesses } from "../estimate/estimate.fixtures.js";
import { modelEstimator } from "../estimate/estimator.js";
import { testManager } from "../models/model-manager.fixtures.js";
import { startTestApp, type TestApp } from "./neuron-app.fixtures.js";

// `POST /models/estimate` on loopback, on the neuron's own app given an estimator.

const TOKEN = "s3cret-token";

let dir: string;
let app: TestApp;
let base: string;

beforeAll(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "neuron-estimate-api-")));
  await writeFile(join(dir, "tiny.gguf"), buildTinyModel());
  await writeFile(join(dir, "notes.gguf"), "not a model\n".repeat(100));
  const harnesses = testHarnesses();
  const manager = testManager({ harnesses, sources: { check: () => {}, prepare: async () => "" } });
  const estimator = modelEstimator({ modelsDir: dir, hfEndpoint: "http://127.0.0.1:9", harnesses });
  app = await startTestApp(manager, { token: TOKEN, estimator });
  base = app.base;
});

afterAll(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

const post = (body: unknown, token: string | null = TOKEN) =>
  fetch(`${base}/models/estimate`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

const LOAD = { model_id: "tiny", harness: "llamacpp", source: "tiny.gguf" };

describe("POST /models/estimate", () => {
  it("answers the memory of a load with these fields", async () => {
    const response = await post({ ...LOAD, context_length: 2048, max_concurrency: 2 });
    expect(response.status).toBe(200);
    const answer = EstimateAnswer.parse(await response.json());
    expect(answer.vram_mb).toBeGreaterThan(answer.breakdown.weights_mb);
    expect(answer.basis).toMatch(/^gguf header \(local file, /);
  });

  it.each([
    ["a body that is not JSON", "{", null],
    ["a missing source", { model_id: "tiny", harness: "llamacpp" }, "source"],
    ["an unknown field", { ...LOAD, color: "red" }, "body"],
    ["a context of 0", { ...LOAD, context_length: 0 }, "context_length"],
    ["a source outside models_dir", { ...LOAD, source: "/etc/passwd" }, "source"],
  ])("answers 400 for %s", async (_, body, param) => {
    const response = await post(body);
    expect(response.status).toBe(400);
    const envelope = (await response.json()) as { error: { code: string; param: string | null } };
    expect(openAIProblems("ErrorResponse", envelope)).toEqual([]);
    expect(envelope.error.code).toBe("invalid_request_error");
    if (param !== null) expect(envelope.error.param).toBe(param);
  });

  it("answers 422 not_estimable, with the reason, for a file that is not GGUF", async () => {
    const response = await post({ ...LOAD, source: "notes.gguf" });
    expect(response.status).toBe(422);
    const envelope = (await response.json()) as { error: { code: string; message: string } };
    expect(openAIProblems("ErrorResponse", envelope)).toEqual([]);
    expect(envelope.error).toMatchObject({
      code: "not_estimable",
      type: "invalid_request_error",
      param: "source",
      message: expect.stringMatching(/not a readable GGUF file/),
    });
  });

  it("answers 404 for a file this node does not hold", async () => {
    const response = await post({ ...LOAD, source: "absent.gguf" });
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });

  it.each([
    ["no token", null],
    ["a wrong token", "wrong"],
  ])("answers 401 with %s", async (_, token) => {
    const response = await post(LOAD, token);
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
      "invalid_api_key",
    );
  });
});
