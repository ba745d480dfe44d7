import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ADMIN, errorOf, gpu, KEY, resident, useCortexFleet } from "../cortex.fixtures.js";
import type { Cortex } from "../cortex.js";

// Ollama's API on cortex, in-process against a fake neuron: every route over HTTP with a client
// key, streamed and not, through cortex's own OpenAI endpoint (loopback) and back; errors in
// Ollama's shape; and the admin API under /api/ as guarded as before.

const { fleet, neuron } = useCortexFleet();

const MIB = 2 ** 20;
const VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

/** One node with chat-small loaded (4000 MiB on GPU 0). */
const oneNode = () =>
  fleet([{ name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] }]);

const call = (
  c: Cortex,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
  headers: Record<string, string> = { authorization: `Bearer ${KEY}` },
  signal?: AbortSignal,
) =>
  fetch(`${c.url}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    ...(signal ? { signal } : {}),
  });

/** A streamed answer's NDJSON lines. */
const linesOf = async (response: Response) =>
  (await response.text())
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/** Ollama's error body: a string, as the ollama clients read it. */
const ollamaError = async (response: Response) => {
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  const body = (await response.json()) as { error: unknown };
  expect(typeof body.error).toBe("string");
  return body.error as string;
};

const durations = (answer: Record<string, unknown>) =>
  ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"].map((key) => {
    const value = answer[key];
    return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
  });

const HI = [{ role: "user", content: "hi" }];

describe("listing routes", () => {
  it("lists the models, the loaded ones, a model's facts and the version", async () => {
    const c = await oneNode();
    const tags = (await (await call(c, "GET", "/api/tags")).json()) as {
      models: Record<string, unknown>[];
    };
    expect(tags.models.map((model) => model.name)).toEqual([
      "chat-small",
      "embedder",
      "pinned-big",
      "too-big",
    ]);
    expect(tags.models[0]).toMatchObject({
      name: "chat-small",
      model: "chat-small",
      size: 6000 * MIB,
      digest: "",
      details: { format: "gguf", quantization_level: "" },
    });

    const ps = (await (await call(c, "GET", "/api/ps")).json()) as {
      models: Record<string, unknown>[];
    };
    expect(ps.models).toEqual([
      expect.objectContaining({ name: "chat-small", size: 4000 * MIB, size_vram: 4000 * MIB }),
    ]);

    expect(await (await call(c, "GET", "/api/version")).json()).toEqual({ version: VERSION });

    const shown = await call(c, "POST", "/api/show", { model: "small:latest" });
    expect(shown.status).toBe(200);
    expect(await shown.json()).toMatchObject({ capabilities: ["completion"], template: "" });
    const legacy = await call(c, "POST", "/api/show", { name: "embedder" });
    expect(await legacy.json()).toMatchObject({ capabilities: ["embedding"] });
  });

  it("answers 404 for a model cortex cannot serve and 400 for a show without one", async () => {
    const c = await oneNode();
    const unknown = await call(c, "POST", "/api/show", { model: "nope" });
    expect(unknown.status).toBe(404);
    expect(await ollamaError(unknown)).toBe('model "nope" not found');
    const nameless = await call(c, "POST", "/api/show", {});
    expect(nameless.status).toBe(400);
    expect(await ollamaError(nameless)).toMatch(/model is required/);
  });
});

describe("client keys and the admin API", () => {
  it.each([
    ["GET", "/api/tags"],
    ["GET", "/api/ps"],
    ["GET", "/api/version"],
    ["POST", "/api/show"],
    ["POST", "/api/chat"],
    ["POST", "/api/generate"],
    ["POST", "/api/embed"],
    ["POST", "/api/embeddings"],
  ] as const)("%s %s needs a client key (the admin token is not one)", async (method, path) => {
    const c = await oneNode();
    const body = method === "POST" ? { model: "chat-small" } : undefined;
    const wrong: Record<string, string>[] = [
      {},
      { authorization: `Bearer ${ADMIN}` },
      { "x-api-key": "wrong" },
    ];
    for (const headers of wrong) {
      const refused = await call(c, method, path, body, headers);
      expect(refused.status).toBe(401);
      expect(await ollamaError(refused)).toBe("missing or wrong bearer token");
    }
  });

  it("accepts the key in every header /v1 accepts, and sends it on to /v1", async () => {
    const c = await oneNode();
    const given: Record<string, string>[] = [{ "x-api-key": KEY }, { "api-key": KEY }];
    for (const headers of given) {
      expect((await call(c, "GET", "/api/tags", undefined, headers)).status).toBe(200);
      const answer = await call(
        c,
        "POST",
        "/api/chat",
        { model: "chat-small", messages: HI, stream: false },
        headers,
      );
      expect(answer.status).toBe(200);
    }
  });

  it("leaves every other /api/ path to the admin API and its token", async () => {
    const c = await oneNode();
    const client = { authorization: `Bearer ${KEY}` };
    const admin = { authorization: `Bearer ${ADMIN}` };
    for (const [method, path] of [
      ["GET", "/api/fleet"],
      ["GET", "/api/catalogue"],
      ["GET", "/api/history"],
      ["POST", "/api/models/unload"],
      ["GET", "/api/chat"],
      ["GET", "/api/nope"],
    ] as const) {
      const refused = await call(c, method, path, method === "POST" ? {} : undefined, client);
      expect(refused.status).toBe(401);
      // The admin API's own envelope, as before.
      expect((await errorOf(refused)).code).toBe("invalid_api_key");
    }
    expect((await call(c, "GET", "/api/fleet", undefined, admin)).status).toBe(200);
    const unknown = await call(c, "GET", "/api/nope", undefined, admin);
    expect(unknown.status).toBe(404);
    expect((await errorOf(unknown)).code).toBe("not_found");
    expect((await call(c, "GET", "/api/chat", undefined, admin)).status).toBe(404);
  });
});

describe("POST /api/chat", () => {
  it("answers one object with stream: false, through /v1 with the request id", async () => {
    const c = await oneNode();
    const response = await call(
      c,
      "POST",
      "/api/chat",
      { model: "small", messages: HI, stream: false, options: { num_ctx: 2048 } },
      { authorization: `Bearer ${KEY}`, "x-request-id": "ollama-chat-1" },
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("x-request-id")).toBe("ollama-chat-1");
    const answer = (await response.json()) as Record<string, unknown>;
    expect(answer).toMatchObject({
      model: "small",
      message: { role: "assistant", content: "fake answer" },
      done: true,
      done_reason: "stop",
      prompt_eval_count: 3,
      eval_count: 5,
    });
    expect(Number.isNaN(Date.parse(answer.created_at as string))).toBe(false);
    expect(durations(answer)).toEqual([true, true, true, true]);
    expect((answer.total_duration as number) > 0).toBe(true);
    expect(neuron("a").lastPath).toBe("/v1/chat/completions");
    expect(neuron("a").headers?.["x-request-id"]).toBe("ollama-chat-1");
  });

  it("streams NDJSON lines as the answer comes, then the final line", async () => {
    const c = await oneNode();
    const response = await call(c, "POST", "/api/chat", {
      model: "chat-small:latest",
      messages: HI,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/x-ndjson");
    const lines = await linesOf(response);
    const last = lines.at(-1) as Record<string, unknown>;
    expect(lines.slice(0, -1).every((line) => line.done === false)).toBe(true);
    expect(lines.map((line) => (line.message as { content: string }).content).join("")).toBe(
      "c0 c1 c2 c3 c4",
    );
    expect(last).toMatchObject({
      model: "chat-small:latest",
      message: { role: "assistant", content: "" },
      done: true,
      done_reason: "stop",
    });
    expect(durations(last)).toEqual([true, true, true, true]);
  });

  it("counts a stream's wait for a cold load, kept alive with comments, as its load", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")], loadDelayMs: 1500 },
    ]);
    const response = await call(c, "POST", "/api/chat", { model: "embedder", messages: HI });
    expect(response.status).toBe(200);
    const last = (await linesOf(response)).at(-1) as Record<string, number>;
    expect(last.done).toBe(true);
    // Cortex's keep-alive comments come every second while the load runs.
    expect(last.load_duration).toBeGreaterThanOrEqual(900_000_000);
    expect(last.load_duration).toBeLessThanOrEqual(last.total_duration as number);
  });

  it("answers errors as Ollama does, with their status", async () => {
    const c = await oneNode();
    const unknown = await call(c, "POST", "/api/chat", { model: "nope", messages: HI });
    expect(unknown.status).toBe(404);
    expect(await ollamaError(unknown)).toMatch(/nope/);
    const image = await call(c, "POST", "/api/chat", {
      model: "chat-small",
      messages: [{ role: "user", content: "what is this?", images: ["aGk="] }],
    });
    expect(image.status).toBe(400);
    expect(await ollamaError(image)).toMatch(/images are not supported/);
    const broken = await call(c, "POST", "/api/chat", "{not json");
    expect(broken.status).toBe(400);
    expect(await ollamaError(broken)).toBe("the request body is not valid JSON");
    const deep = await call(
      c,
      "POST",
      "/api/chat",
      `{"model":"m","x":${"[".repeat(100)}${"]".repeat(100)}}`,
    );
    expect(deep.status).toBe(400);
    expect(await ollamaError(deep)).toMatch(/deeper than 64/);
    neuron("a").failInference(1);
    const failed = await call(c, "POST", "/api/chat", { model: "chat-small", messages: HI });
    expect(failed.status).toBe(502);
    expect(await ollamaError(failed)).toMatch(/broke/);
  });

  it("ends a stream that fails after its first line with an error line", async () => {
    const c = await oneNode();
    neuron("a").setLatency(300);
    const response = await call(c, "POST", "/api/chat", { model: "chat-small", messages: HI });
    expect(response.status).toBe(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    await neuron("a").kill();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const lines = text
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ done: false });
    expect(lines.at(-1)).toEqual({ error: expect.stringMatching(/broke off/) });
  });

  it("gives the inner request up when the client goes away", async () => {
    const c = await oneNode();
    neuron("a").setLatency(500);
    const abort = new AbortController();
    const response = await call(
      c,
      "POST",
      "/api/chat",
      { model: "chat-small", messages: HI },
      undefined,
      abort.signal,
    );
    await expect.poll(() => neuron("a").inFlight("chat-small"), { timeout: 5000 }).toBe(1);
    abort.abort();
    await response.body?.cancel().catch(() => {});
    await expect.poll(() => neuron("a").inFlight("chat-small"), { timeout: 5000 }).toBe(0);
    await expect.poll(() => c.dispatcher.reservations.total, { timeout: 5000 }).toBe(0);
  });
});

describe("POST /api/generate", () => {
  it("answers a prompt through chat completions, and a raw one through completions", async () => {
    const c = await oneNode();
    const whole = await call(c, "POST", "/api/generate", {
      model: "chat-small",
      prompt: "why?",
      system: "be brief",
      stream: false,
    });
    expect(await whole.json()).toMatchObject({
      model: "chat-small",
      response: "fake answer",
      done: true,
      done_reason: "stop",
      eval_count: 5,
    });
    expect(neuron("a").lastPath).toBe("/v1/chat/completions");
    const raw = await call(c, "POST", "/api/generate", {
      model: "chat-small",
      prompt: "[INST]",
      raw: true,
    });
    const lines = await linesOf(raw);
    expect(lines.map((line) => line.response).join("")).toBe(" c0 c1 c2 c3 c4");
    expect(lines.at(-1)).toMatchObject({ done: true, done_reason: "stop" });
    expect(neuron("a").lastPath).toBe("/v1/completions");
    const suffix = await call(c, "POST", "/api/generate", {
      model: "chat-small",
      prompt: "a",
      suffix: "b",
    });
    expect(suffix.status).toBe(400);
    expect(await ollamaError(suffix)).toMatch(/suffix/);
  });

  it("loads a model for an empty prompt and unloads it for keep_alive 0", async () => {
    const c = await oneNode();
    const loaded = await call(c, "POST", "/api/generate", { model: "embedder", stream: false });
    expect(loaded.status).toBe(200);
    expect(await loaded.json()).toMatchObject({
      model: "embedder",
      response: "",
      done: true,
      done_reason: "load",
    });
    expect(neuron("a").loads.map((load) => load.model_id)).toEqual(["embedder"]);
    const nowhere = await call(c, "POST", "/api/generate", { model: "nope", prompt: "" });
    expect(nowhere.status).toBe(404);
    expect(await ollamaError(nowhere)).toMatch(/nope/);

    const unloaded = await call(c, "POST", "/api/chat", {
      model: "small",
      messages: [],
      keep_alive: 0,
    });
    expect(unloaded.headers.get("content-type")).toBe("application/x-ndjson");
    expect(await linesOf(unloaded)).toEqual([
      expect.objectContaining({ model: "small", done: true, done_reason: "unload" }),
    ]);
    expect(neuron("a").unloads.map((unload) => unload.model_id)).toEqual(["chat-small"]);
    // Unloading what is loaded nowhere is done already; a model cortex cannot serve is 404.
    const again = await call(c, "POST", "/api/generate", { model: "chat-small", keep_alive: "0s" });
    expect(await linesOf(again)).toEqual([expect.objectContaining({ done_reason: "unload" })]);
    const unknown = await call(c, "POST", "/api/generate", { model: "nope", keep_alive: 0 });
    expect(unknown.status).toBe(404);
  });
});

describe("POST /api/embed and /api/embeddings", () => {
  it("embeds through /v1/embeddings, cold-loading the model", async () => {
    const c = await oneNode();
    const response = await call(c, "POST", "/api/embed", { model: "embedder", input: ["a", "b"] });
    expect(response.status).toBe(200);
    const answer = (await response.json()) as Record<string, unknown>;
    expect(answer).toMatchObject({
      model: "embedder",
      embeddings: [
        [0.1, 0.2, 0.3],
        [0.1, 0.2, 0.3],
      ],
      prompt_eval_count: 2,
    });
    // The model was loaded for it: the wait is the load's.
    expect(answer.load_duration as number).toBeGreaterThan(0);
    expect(neuron("a").lastPath).toBe("/v1/embeddings");

    const legacy = await call(c, "POST", "/api/embeddings", { model: "embedder", prompt: "a" });
    expect(await legacy.json()).toEqual({ embedding: [0.1, 0.2, 0.3] });
    const empty = await call(c, "POST", "/api/embed", { model: "embedder", input: [] });
    expect(await empty.json()).toMatchObject({ model: "embedder", embeddings: [] });
  });
});
