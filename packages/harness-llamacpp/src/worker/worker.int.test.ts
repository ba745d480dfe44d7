import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { writeTinyModel } from "../gguf/index.js";
import { buildSpmVocab } from "../gguf/vocab.js";
import { WORKER_ENTRY } from "./entry.js";

// The real worker process on the real tiny model: what the neuron will start per model.
// Its output is noise (random weights); these tests check the protocol, not the prose.

interface Worker {
  readonly child: ChildProcess;
  readonly base: string;
  readonly client: OpenAI;
  readonly output: () => string;
}

const started: ChildProcess[] = [];

const startWorker = async (model: string, extra: string[] = []): Promise<Worker> => {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [WORKER_ENTRY, "--model", model, "--port", String(port), "--gpu", "off", ...extra],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  started.push(child);
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    child,
    base,
    client: new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 }),
    output: () => output,
  };
};

const healthStatus = async (base: string): Promise<number | "down"> => {
  try {
    return (await fetch(`${base}/health`)).status;
  } catch {
    return "down";
  }
};

/** Polls until `check` holds; usable in hooks, where expect.poll is not. */
const until = async <T>(
  probe: () => Promise<T>,
  check: (value: T) => boolean,
  timeoutMs: number,
): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`still ${String(value)} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

const waitReady = async (worker: Worker): Promise<void> => {
  await until(
    () => healthStatus(worker.base),
    (status) => status === 200,
    60_000,
  );
};

const exited = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null
    ? Promise.resolve(child.exitCode)
    : once(child, "exit").then(([code]) => code as number | null);

let dir: string;
let chatModel: string;
let embeddingModel: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "harness-worker-"));
  chatModel = join(dir, "tiny.gguf");
  embeddingModel = join(dir, "tiny-embed.gguf");
  await writeTinyModel(chatModel, { seed: 1 });
  await writeTinyModel(embeddingModel, { seed: 2, variant: "embedding" });
});

afterAll(async () => {
  for (const child of started)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("a worker serving the tiny model", () => {
  let worker: Worker;

  beforeAll(async () => {
    worker = await startWorker(chatModel, ["--parallel", "2", "--alias", "tiny"]);
    // It listens before the model is ready; the first answer may already be 200 on a fast machine.
    const first = await until(
      () => healthStatus(worker.base),
      (status) => status !== "down",
      30_000,
    );
    expect([200, 503]).toContain(first);
    await waitReady(worker);
  });

  afterAll(async () => {
    worker.child.kill("SIGTERM");
    await exited(worker.child);
  });

  it("reports itself ready and lists its model", async () => {
    const health = (await (await fetch(`${worker.base}/health`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({ status: "ok", model: "tiny", slots: 2 });
    const models = await worker.client.models.list();
    expect(models.data.map((model) => model.id)).toEqual(["tiny"]);
  });

  it("answers a chat completion with real token counts", async () => {
    const completion = await worker.client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Say something." }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(openAIProblems("CreateChatCompletionResponse", completion)).toEqual([]);
    expect(completion.usage?.prompt_tokens).toBeGreaterThan(0);
    // Greedy decoding runs to the limit, so the count is exact: every sampled token, including
    // byte tokens of a character left unfinished when generation stopped.
    expect(completion.usage?.completion_tokens).toBe(8);
    expect(completion.choices[0]?.finish_reason).toBe("length");
  });

  it("is deterministic for the same seed", async () => {
    const ask = () =>
      worker.client.chat.completions.create({
        model: "tiny",
        messages: [{ role: "user", content: "Hello" }],
        max_tokens: 6,
        temperature: 0.9,
        seed: 1234,
      });
    const [a, b] = [await ask(), await ask()];
    expect(a.choices[0]?.message.content).toBe(b.choices[0]?.message.content);
  });

  it("streams a chat completion the official client parses", async () => {
    const stream = await worker.client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Stream, please." }],
      max_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    for (const chunk of chunks)
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
    expect(chunks.at(-1)?.usage?.completion_tokens).toBeGreaterThan(0);
    expect(chunks.some((chunk) => chunk.choices[0]?.finish_reason)).toBe(true);
  });

  it("completes and streams a plain prompt", async () => {
    const completion = await worker.client.completions.create({
      model: "tiny",
      prompt: "Once upon a time",
      max_tokens: 5,
    });
    expect(openAIProblems("CreateCompletionResponse", completion)).toEqual([]);
    expect(completion.usage?.completion_tokens).toBeGreaterThan(0);
    const stream = await worker.client.completions.create({
      model: "tiny",
      prompt: "Once",
      max_tokens: 5,
      stream: true,
    });
    let chunks = 0;
    for await (const _chunk of stream) chunks += 1;
    expect(chunks).toBeGreaterThan(1);
  });

  it("serves two requests at once with --parallel 2, and queues a third", async () => {
    const windows: { start: number; first: number; end: number }[] = [];
    const timed = async () => {
      const start = performance.now();
      let first = 0;
      const stream = await worker.client.chat.completions.create({
        model: "tiny",
        messages: [{ role: "user", content: "Go on for a while." }],
        // Greedy decoding of the tiny model loops without ever choosing </s>, so each request
        // really runs to max_tokens (the model makes ~1,000 tokens/s: 400 take long enough).
        max_tokens: 400,
        temperature: 0,
        stream: true,
      });
      for await (const chunk of stream)
        if (!first && chunk.choices[0]?.delta.content) first = performance.now();
      windows.push({ start, first: first || performance.now(), end: performance.now() });
    };
    await Promise.all([timed(), timed(), timed()]);
    expect(windows).toHaveLength(3);
    const sorted = [...windows].sort((a, b) => a.first - b.first);
    const [a, b] = sorted;
    if (!a || !b) throw new Error("missing timings");
    // The second request produced its first token before the first request finished: overlap.
    expect(b.first).toBeLessThan(a.end);
  });

  it("answers bad input with 400 in the OpenAI envelope and keeps serving", async () => {
    for (const body of ["{nope", JSON.stringify({ messages: 1 }), JSON.stringify({})]) {
      const res = await fetch(`${worker.base}/v1/chat/completions`, {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
      });
      expect(res.status).toBe(400);
      expect(openAIProblems("ErrorResponse", await res.json())).toEqual([]);
    }
    const completion = await worker.client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "ok?" }],
      max_tokens: 3,
    });
    expect(completion.choices).toHaveLength(1);
  });
});

describe("structured output and tools, through the official client", () => {
  // The tiny model's text is noise: only the grammars give its answers shape, so every answer
  // here is checked against its schema with zod's own JSON Schema reader.
  let worker: Worker;
  type Tool = OpenAI.Chat.Completions.ChatCompletionFunctionTool;

  /** zod's validator for `schema`, less string lengths (zod counts UTF-16 units, not characters). */
  const checkerOf = (schema: object) => {
    const strip = (value: unknown): unknown =>
      Array.isArray(value)
        ? value.map(strip)
        : typeof value === "object" && value !== null
          ? Object.fromEntries(
              Object.entries(value)
                .filter(([key]) => key !== "maxLength")
                .map(([key, inner]) => [key, strip(inner)]),
            )
          : value;
    return z.fromJSONSchema(strip(schema) as z.core.JSONSchema.JSONSchema);
  };

  const person = {
    type: "object",
    properties: {
      name: { type: "string", maxLength: 16 },
      age: { type: "integer" },
      mood: { enum: ["happy", "sad"] },
      tags: { type: "array", items: { type: "boolean" }, maxItems: 4 },
      pet: { anyOf: [{ type: "string", maxLength: 8 }, { type: "null" }] },
    },
    required: ["name", "age", "mood", "tags", "pet"],
    additionalProperties: false,
  };
  const weatherParams = {
    type: "object",
    properties: {
      city: { type: "string", maxLength: 24 },
      days: { type: "integer" },
      unit: { enum: ["c", "f"] },
    },
    required: ["city", "days", "unit"],
    additionalProperties: false,
  };
  const tools: Tool[] = [
    {
      type: "function",
      function: {
        name: "get_weather",
        description: "Weather for a city",
        parameters: weatherParams,
      },
    },
    {
      type: "function",
      function: {
        name: "get_time",
        parameters: { type: "object", properties: { utc: { type: "boolean" } } },
      },
    },
  ];
  const ask = { model: "tiny", temperature: 1, max_tokens: 1000 } as const;
  const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
    { role: "user", content: "What is the weather in Paris?" },
  ];

  beforeAll(async () => {
    worker = await startWorker(chatModel, ["--alias", "tiny"]);
    await waitReady(worker);
  });

  afterAll(async () => {
    worker.child.kill("SIGTERM");
    await exited(worker.child);
  });

  it("answers response_format json_schema with JSON that parses and matches the schema", async () => {
    const check = checkerOf(person);
    for (const seed of [1, 2, 3]) {
      const completion = await worker.client.chat.completions.create({
        ...ask,
        seed,
        messages: [{ role: "user", content: "Describe a person." }],
        response_format: {
          type: "json_schema",
          json_schema: { name: "person", strict: true, schema: person },
        },
      });
      expect(openAIProblems("CreateChatCompletionResponse", completion)).toEqual([]);
      expect(completion.choices[0]?.finish_reason).toBe("stop");
      const value: unknown = JSON.parse(completion.choices[0]?.message.content ?? "");
      expect(check.safeParse(value).error).toBeUndefined();
    }
  });

  it("answers json_object with a JSON object", async () => {
    let finished = 0;
    for (const seed of [1, 2, 3]) {
      const completion = await worker.client.chat.completions.create({
        ...ask,
        seed,
        messages: [{ role: "user", content: "Some JSON, please." }],
        response_format: { type: "json_object" },
      });
      // Any object may be as long as the model likes; an answer cut by max_tokens is not JSON.
      if (completion.choices[0]?.finish_reason !== "stop") continue;
      finished += 1;
      const value: unknown = JSON.parse(completion.choices[0]?.message.content ?? "");
      expect(typeof value === "object" && value !== null && !Array.isArray(value)).toBe(true);
    }
    expect(finished).toBeGreaterThan(0);
  });

  it("holds a completion to response_format as well", async () => {
    const completion = await worker.client.completions.create({
      ...ask,
      seed: 2,
      prompt: "Weather as JSON:",
      // Not in the SDK's completion types: llama-server's extension, which this harness takes.
      ...({
        response_format: { type: "json_schema", json_schema: { schema: weatherParams } },
      } as object),
    });
    expect(openAIProblems("CreateCompletionResponse", completion)).toEqual([]);
    const value: unknown = JSON.parse(completion.choices[0]?.text ?? "");
    expect(checkerOf(weatherParams).safeParse(value).error).toBeUndefined();
  });

  it("answers tool_choice required with a call whose arguments match its parameters", async () => {
    for (const seed of [1, 2, 3, 4]) {
      const completion = await worker.client.chat.completions.create({
        ...ask,
        seed,
        messages,
        tools,
        tool_choice: "required",
      });
      expect(openAIProblems("CreateChatCompletionResponse", completion)).toEqual([]);
      const choice = completion.choices[0];
      expect(choice?.finish_reason).toBe("tool_calls");
      expect(choice?.message.content).toBeNull();
      const [call] = choice?.message.tool_calls ?? [];
      if (call?.type !== "function") throw new Error("no function call");
      expect(call.id).toMatch(/^call_/);
      const args: unknown = JSON.parse(call.function.arguments);
      const tool = tools.find((candidate) => candidate.function.name === call.function.name);
      expect(tool).toBeDefined();
      expect(checkerOf(tool?.function.parameters ?? {}).safeParse(args).error).toBeUndefined();
    }
  });

  it("calls the function tool_choice names", async () => {
    const completion = await worker.client.chat.completions.create({
      ...ask,
      seed: 5,
      messages,
      tools,
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    const call = completion.choices[0]?.message.tool_calls?.[0];
    if (call?.type !== "function") throw new Error("no function call");
    expect(call.function.name).toBe("get_weather");
    expect(
      checkerOf(weatherParams).safeParse(JSON.parse(call.function.arguments)).error,
    ).toBeUndefined();
  });

  it("streams a call that assembles into the call a whole answer gives", async () => {
    const request = { ...ask, seed: 7, messages, tools, tool_choice: "required" } as const;
    const whole = await worker.client.chat.completions.create(request);
    const stream = await worker.client.chat.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    for (const chunk of chunks)
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
    const pieces = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? []);
    expect(pieces[0]?.id).toMatch(/^call_/);
    const streamed = {
      name: pieces[0]?.function?.name,
      arguments: pieces.map((piece) => piece.function?.arguments ?? "").join(""),
    };
    const call = whole.choices[0]?.message.tool_calls?.[0];
    if (call?.type !== "function") throw new Error("no function call");
    expect(streamed).toEqual({ name: call.function.name, arguments: call.function.arguments });
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe("tool_calls");
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(whole.usage?.completion_tokens);
    // The SDK's stream helper assembles the same call.
    const final = await worker.client.chat.completions.stream(request).finalChatCompletion();
    expect(final.choices[0]?.message.tool_calls?.[0]).toMatchObject({ function: call.function });
  });

  it("answers after a call's result, given back in the conversation", async () => {
    const call = {
      id: "call_1",
      type: "function" as const,
      function: { name: "get_weather", arguments: '{"city": "Paris", "days": 1, "unit": "c"}' },
    };
    const completion = await worker.client.chat.completions.create({
      ...ask,
      seed: 1,
      max_tokens: 12,
      tools,
      messages: [
        ...messages,
        { role: "assistant", content: null, tool_calls: [call] },
        { role: "tool", tool_call_id: "call_1", content: '{"temperature": 21}' },
      ],
    });
    expect(openAIProblems("CreateChatCompletionResponse", completion)).toEqual([]);
    expect(completion.choices[0]?.finish_reason).toMatch(/^(stop|length|tool_calls)$/);
    // The result is part of the prompt: longer than the question alone.
    const alone = await worker.client.chat.completions.create({
      ...ask,
      max_tokens: 1,
      tools,
      messages,
    });
    expect(completion.usage?.prompt_tokens).toBeGreaterThan((alone.usage?.prompt_tokens ?? 0) + 20);
    await expect(
      worker.client.chat.completions.create({
        ...ask,
        tools,
        messages: [...messages, { role: "assistant", content: null, tool_calls: [call] }],
      }),
    ).rejects.toMatchObject({ status: 400, type: "invalid_request_error" });
  });

  it("biases tokens with logit_bias, and refuses logprobs", async () => {
    const x = buildSpmVocab().tokens.indexOf("x");
    const completion = await worker.client.chat.completions.create({
      model: "tiny",
      messages,
      temperature: 0,
      max_tokens: 5,
      logit_bias: { [x]: 100 },
    });
    expect(completion.choices[0]?.message.content).toBe("xxxxx");
    await expect(
      worker.client.chat.completions.create({ model: "tiny", messages, logprobs: true }),
    ).rejects.toMatchObject({
      status: 400,
      message: expect.stringContaining("does not produce log probabilities"),
    });
  });
});

describe("prefix reuse", () => {
  // Two workers on the same model: one reusing what its slots evaluated (the default), one
  // with --no-prefix-cache evaluating every prompt whole, to compare answers with.
  let reusing: Worker;
  let whole: Worker;
  type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;
  const greedy = { model: "tiny", max_tokens: 32, temperature: 0 } as const;
  const cachedOf = (usage: OpenAI.Completions.CompletionUsage | undefined | null) =>
    usage?.prompt_tokens_details?.cached_tokens;
  // Two conversations whose system prompts differ from their first word on.
  const conversation = (name: string): Message[] => [
    { role: "system", content: `${name} is the assistant here, and answers in one sentence.` },
    { role: "user", content: `Hello ${name}, what should I cook tonight?` },
  ];

  beforeAll(async () => {
    [reusing, whole] = await Promise.all([
      startWorker(chatModel, ["--parallel", "2"]),
      startWorker(chatModel, ["--parallel", "2", "--no-prefix-cache"]),
    ]);
    await Promise.all([waitReady(reusing), waitReady(whole)]);
  });

  afterAll(async () => {
    for (const worker of [reusing, whole]) {
      worker.child.kill("SIGTERM");
      await exited(worker.child);
    }
  });

  it("reports no cached tokens for first turns and the shared prefix for a follow-up", async () => {
    const alpha = conversation("Alpha");
    const first = await reusing.client.chat.completions.create({ ...greedy, messages: alpha });
    expect(openAIProblems("CreateChatCompletionResponse", first)).toEqual([]);
    expect(cachedOf(first.usage)).toBe(0);
    // Another conversation in between takes the other (never used) slot, not Alpha's.
    const other = await reusing.client.chat.completions.create({
      ...greedy,
      messages: conversation("Bravo"),
    });
    expect(cachedOf(other.usage)).toBe(0);

    const followUp: Message[] = [
      ...alpha,
      { role: "assistant", content: first.choices[0]?.message.content ?? "" },
      { role: "user", content: "Something with rice, please." },
    ];
    const second = await reusing.client.chat.completions.create({ ...greedy, messages: followUp });
    expect(openAIProblems("CreateChatCompletionResponse", second)).toEqual([]);
    const firstPrompt = first.usage?.prompt_tokens ?? 0;
    // All of the first turn's prompt but at most its trailing "assistant: " tokens, which the
    // answer's text may tokenize differently; never the whole of the new prompt.
    expect(cachedOf(second.usage)).toBeGreaterThanOrEqual(firstPrompt - 2);
    expect(cachedOf(second.usage)).toBeLessThan(second.usage?.prompt_tokens ?? 0);

    // The next turn, streamed: its final usage chunk carries the count as well.
    const stream = await reusing.client.chat.completions.create({
      ...greedy,
      messages: [
        ...followUp,
        { role: "assistant", content: second.choices[0]?.message.content ?? "" },
        { role: "user", content: "Thanks!" },
      ],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    for (const chunk of chunks)
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
    // Alpha's slot is now the most recently used one, and still the one this turn takes.
    expect(cachedOf(chunks.at(-1)?.usage)).toBeGreaterThanOrEqual(
      (second.usage?.prompt_tokens ?? Number.POSITIVE_INFINITY) - 2,
    );

    // The worker without reuse evaluates every prompt whole.
    const uncached = await whole.client.chat.completions.create({ ...greedy, messages: followUp });
    expect(cachedOf(uncached.usage)).toBe(0);
    expect(uncached.usage?.prompt_tokens).toBe(second.usage?.prompt_tokens);
  });

  it("answers the same with and without a cached prefix", async () => {
    const messages: Message[] = [
      ...conversation("Charlie"),
      { role: "assistant", content: "Soup." },
      { role: "user", content: "Which soup?" },
    ];
    const ask = (worker: Worker, extra: { temperature?: number; seed?: number } = {}) =>
      worker.client.chat.completions.create({ ...greedy, ...extra, messages });
    const plain = await ask(whole);
    const cold = await ask(reusing);
    const warm = await ask(reusing);
    // Cold: the least recently used slot, which shares at most the template's opening tokens.
    expect(cachedOf(cold.usage)).toBeLessThan((cold.usage?.prompt_tokens ?? 0) / 4);
    expect(cachedOf(warm.usage)).toBe((warm.usage?.prompt_tokens ?? 0) - 1);
    expect(warm.choices[0]?.message.content).toBe(plain.choices[0]?.message.content);
    expect(cold.choices[0]?.message.content).toBe(plain.choices[0]?.message.content);
    // Sampling reads the whole distribution, so it would notice a cache that changed it.
    const sampled = { temperature: 1, seed: 11 };
    const [sampledPlain, sampledWarm] = [await ask(whole, sampled), await ask(reusing, sampled)];
    expect(cachedOf(sampledWarm.usage)).toBeGreaterThan(0);
    expect(sampledWarm.choices[0]?.message.content).toBe(sampledPlain.choices[0]?.message.content);

    // Completions keep theirs as well: the same prompt again is all cached but its last token.
    const complete = (worker: Worker) =>
      worker.client.completions.create({ ...greedy, prompt: "Once upon a time, in a kitchen," });
    const [once, again, plainText] = [
      await complete(reusing),
      await complete(reusing),
      await complete(whole),
    ];
    expect(openAIProblems("CreateCompletionResponse", again)).toEqual([]);
    expect(cachedOf(again.usage)).toBe((again.usage?.prompt_tokens ?? 0) - 1);
    expect(again.choices[0]?.text).toBe(once.choices[0]?.text);
    expect(again.choices[0]?.text).toBe(plainText.choices[0]?.text);
    expect(cachedOf(plainText.usage)).toBe(0);
  });
});

describe("a worker with one slot", () => {
  it("frees the slot when a client disconnects mid-stream", async () => {
    const worker = await startWorker(chatModel, ["--parallel", "1"]);
    try {
      await waitReady(worker);
      const controller = new AbortController();
      const res = await fetch(`${worker.base}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          messages: [{ role: "user", content: "Talk forever." }],
          max_tokens: 1500,
          temperature: 0,
          stream: true,
        }),
        signal: controller.signal,
      });
      await res.body?.getReader().read();
      controller.abort();
      // With the only slot freed, the next request is served rather than stuck behind 1,500 tokens.
      const next = await worker.client.chat.completions.create({
        model: "tiny",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 3,
      });
      expect(next.choices).toHaveLength(1);
      const health = (await (await fetch(`${worker.base}/health`)).json()) as {
        busy: number;
        waiting: number;
      };
      expect(health).toMatchObject({ busy: 0, waiting: 0 });
    } finally {
      worker.child.kill("SIGKILL");
    }
  });

  it("finishes the request in flight on SIGTERM, then exits 0", async () => {
    const worker = await startWorker(chatModel, ["--parallel", "1", "--grace-ms", "20000"]);
    await waitReady(worker);
    const answer = worker.client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Last words." }],
      max_tokens: 1000,
      temperature: 0,
    });
    await expect
      .poll(
        async () =>
          ((await (await fetch(`${worker.base}/health`)).json()) as { busy: number }).busy,
      )
      .toBe(1);
    worker.child.kill("SIGTERM");
    const completion = await answer;
    expect(completion.usage?.completion_tokens).toBeGreaterThan(0);
    expect(await exited(worker.child)).toBe(0);
    expect(worker.output()).toContain("stopped");
  });

  it("aborts what is still running when the grace period ends, and exits 0", async () => {
    const worker = await startWorker(chatModel, ["--parallel", "1", "--grace-ms", "200"]);
    await waitReady(worker);
    const res = fetch(`${worker.base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        messages: [{ role: "user", content: "Never stop." }],
        max_tokens: 1900,
        temperature: 0,
      }),
    }).then(
      (r) => r.status,
      () => "dropped",
    );
    await expect
      .poll(
        async () =>
          ((await (await fetch(`${worker.base}/health`)).json()) as { busy: number }).busy,
      )
      .toBe(1);
    worker.child.kill("SIGTERM");
    expect(await exited(worker.child)).toBe(0);
    expect([503, "dropped"]).toContain(await res);
  });

  it("exits by itself when the process that started it is killed", async () => {
    const port = await freePort();
    // An intermediate parent, like a neuron, that is then killed with SIGKILL.
    const parent = spawn(
      process.execPath,
      [
        "-e",
        `const c = require("node:child_process").spawn(process.execPath, ${JSON.stringify([WORKER_ENTRY, "--model", chatModel, "--port", String(port), "--gpu", "off"])}, { stdio: "ignore" }); console.log(c.pid); setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    started.push(parent);
    const [line] = (await once(parent.stdout as NodeJS.ReadableStream, "data")) as [Buffer];
    const workerPid = Number(line.toString().trim());
    await expect
      .poll(() => healthStatus(`http://127.0.0.1:${port}`), { timeout: 60_000, interval: 50 })
      .toBe(200);
    parent.kill("SIGKILL");
    const alive = () => {
      try {
        process.kill(workerPid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await expect.poll(alive, { timeout: 5000, interval: 100 }).toBe(false);
  });

  it("exits non-zero with the reason when the model cannot be loaded", async () => {
    const worker = await startWorker(join(dir, "missing.gguf"));
    expect(await exited(worker.child)).toBe(1);
    expect(worker.output()).toContain("failed to load");
  });

  it("exits 2 with usage on bad arguments", async () => {
    const child = spawn(process.execPath, [WORKER_ENTRY, "--model", chatModel], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (chunk) => {
      stderr += chunk;
    });
    expect(await exited(child)).toBe(2);
    expect(stderr).toContain("--port is required");
  });
});

describe("the embedding variant", () => {
  it("embeds a string and a list with the official client", async () => {
    const worker = await startWorker(embeddingModel, ["--alias", "tiny-embed"]);
    try {
      await waitReady(worker);
      const one = await worker.client.embeddings.create({
        model: "tiny-embed",
        input: "hello world",
        encoding_format: "float",
      });
      expect(openAIProblems("CreateEmbeddingResponse", one)).toEqual([]);
      const vector = one.data[0]?.embedding ?? [];
      expect(vector.length).toBeGreaterThan(0);
      expect(vector.every(Number.isFinite)).toBe(true);
      const many = await worker.client.embeddings.create({
        model: "tiny-embed",
        input: ["a", "b c"],
        encoding_format: "float",
      });
      expect(many.data).toHaveLength(2);
      expect(many.data[0]?.embedding).not.toEqual(many.data[1]?.embedding);
      expect(many.usage.prompt_tokens).toBeGreaterThan(0);
    } finally {
      worker.child.kill("SIGKILL");
    }
  });

  it("serves the official client's default base64 format and honours dimensions", async () => {
    const worker = await startWorker(embeddingModel, ["--alias", "tiny-embed"]);
    try {
      await waitReady(worker);
      const input = ["hello world", "the cat"];
      const float = await worker.client.embeddings.create({
        model: "tiny-embed",
        input,
        encoding_format: "float",
      });
      // Default arguments: the client asks for base64 and decodes the float32 bytes itself.
      const byDefault = await worker.client.embeddings.create({ model: "tiny-embed", input });
      expect(openAIProblems("CreateEmbeddingResponse", byDefault)).toEqual([]);
      const vectors = float.data.map((item) => item.embedding);
      expect(vectors[0]?.length).toBe(64);
      expect(byDefault.data.map((item) => item.embedding)).toEqual(vectors);
      expect(byDefault.usage).toEqual(float.usage);

      const res = await fetch(`${worker.base}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ input: "hello world", encoding_format: "base64" }),
      });
      const raw = (await res.json()) as { data: { embedding: unknown }[] };
      expect(typeof raw.data[0]?.embedding).toBe("string");

      const full = await worker.client.embeddings.create({
        model: "tiny-embed",
        input: "hello world",
        dimensions: 64,
      });
      expect(full.data[0]?.embedding).toEqual(vectors[0]);
      await expect(
        worker.client.embeddings.create({
          model: "tiny-embed",
          input: "hello world",
          dimensions: 32,
        }),
      ).rejects.toMatchObject({ status: 400, param: "dimensions", type: "invalid_request_error" });
    } finally {
      worker.child.kill("SIGKILL");
    }
  });
});
