import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { openAIProblems } from "@cortex/testkit/openai";
import OpenAI from "openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InFlight } from "./connection.js";
import type { ChatTurn, Engine, GeneratedToolCall, GenerateOptions, Generation } from "./engine.js";
import { ContextOverflowError } from "./engine.js";
import type { Sampling } from "./requests.js";
import { createWorkerApp, type WorkerPhase } from "./server.js";
import { SlotPool } from "./slots.js";

// The HTTP layer against a scripted engine: every OpenAI shape, error and disconnect path,
// without loading a model. The real engine is exercised in worker.int.test.ts.

class ScriptedEngine implements Engine {
  readonly contextSize = 128;
  readonly parallel = 1;
  readonly gpu = false as const;
  readonly threads = 1;
  readonly embeddingSize = 3;
  readonly pool = new SlotPool([0]);
  words = ["Hello", " there", ",", " friend"];
  delayMs = 0;
  aborted = 0;
  cachedTokens = 0;
  lastTurns: readonly ChatTurn[] = [];
  lastSampling: Sampling | undefined;
  /** Calls the answer ends with (after `words`), their arguments streamed in 3 pieces. */
  calls: GeneratedToolCall[] = [];

  load() {
    return { busy: this.pool.busy, waiting: this.pool.waiting };
  }

  countTokens(turns: readonly ChatTurn[]) {
    return turns
      .map((turn) => turn.text)
      .join(" ")
      .split(" ").length;
  }

  async chat(
    turns: readonly ChatTurn[],
    sampling: Sampling,
    options: GenerateOptions,
  ): Promise<Generation> {
    this.lastTurns = turns;
    return this.generate(turns.map((turn) => turn.text).join(" "), sampling, options);
  }

  complete(prompt: string, sampling: Sampling, options: GenerateOptions): Promise<Generation> {
    return this.generate(prompt, sampling, options);
  }

  async generate(
    prompt: string,
    sampling: Sampling,
    options: GenerateOptions,
  ): Promise<Generation> {
    this.lastSampling = sampling;
    if (prompt.length > this.contextSize)
      throw new ContextOverflowError(prompt.length, this.contextSize);
    const { release } = await this.pool.acquire(options.signal);
    try {
      const limit = sampling.maxTokens ?? this.words.length;
      const words = this.words.slice(0, limit);
      for (const word of words) {
        if (this.delayMs) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
        if (options.signal.aborted) {
          this.aborted += 1;
          throw options.signal.reason;
        }
        options.onText?.(word);
      }
      this.calls.forEach((call, index) => {
        options.onToolCall?.({ type: "start", index, name: call.name });
        const third = Math.ceil(call.arguments.length / 3);
        for (let at = 0; at < call.arguments.length; at += third)
          options.onToolCall?.({
            type: "arguments",
            index,
            text: call.arguments.slice(at, at + third),
          });
      });
      return {
        text: words.join(""),
        finishReason:
          limit < this.words.length ? "length" : this.calls.length > 0 ? "tool_calls" : "stop",
        promptTokens: prompt.split(" ").length,
        completionTokens: words.length,
        cachedTokens: this.cachedTokens,
        ...(this.calls.length > 0 ? { toolCalls: this.calls } : {}),
      };
    } finally {
      release();
    }
  }

  async embed(inputs: readonly string[]) {
    return {
      vectors: inputs.map((input) => [input.length, 0.5, -0.5]),
      promptTokens: inputs.length,
    };
  }

  async dispose() {}
}

let server: Server;
let base: string;
let engine: ScriptedEngine;
let phase: WorkerPhase;
let inflight: InFlight;
let client: OpenAI;

beforeEach(async () => {
  engine = new ScriptedEngine();
  phase = "ready";
  inflight = new InFlight();
  const app = createWorkerApp(
    { model: "tiny", created: 1_700_000_000, phase: () => phase, engine: () => engine },
    inflight,
  );
  server = await new Promise((resolve) => {
    const listening = app.listen(0, "127.0.0.1", () => resolve(listening));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 });
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const post = (path: string, body: unknown, init: RequestInit = {}) =>
  fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });

describe("health and models", () => {
  it("is 503 while loading and 200 when ready", async () => {
    phase = "loading";
    expect((await fetch(`${base}/health`)).status).toBe(503);
    phase = "ready";
    const ready = await fetch(`${base}/health`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ok", model: "tiny", slots: 1 });
  });

  it("lists the one model", async () => {
    const body = (await (await fetch(`${base}/v1/models`)).json()) as { data: { id: string }[] };
    expect(openAIProblems("ListModelsResponse", body)).toEqual([]);
    expect(body.data[0]?.id).toBe("tiny");
  });

  it("refuses inference while loading, with Retry-After", async () => {
    phase = "loading";
    const res = await post("/v1/chat/completions", { messages: [{ role: "user", content: "hi" }] });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(openAIProblems("ErrorResponse", await res.json())).toEqual([]);
  });
});

describe("chat completions", () => {
  it("answers the official client with a valid completion and real usage", async () => {
    const completion = await client.chat.completions.create({
      model: "tiny",
      messages: [
        { role: "system", content: "be brief" },
        { role: "user", content: [{ type: "text", text: "hi" }] },
      ],
      max_tokens: 10,
      temperature: 0.2,
      top_p: 0.9,
      seed: 7,
      stop: "zzz",
    });
    expect(openAIProblems("CreateChatCompletionResponse", completion)).toEqual([]);
    expect(completion.choices[0]?.message.content).toBe("Hello there, friend");
    expect(completion.choices[0]?.finish_reason).toBe("stop");
    expect(completion.usage).toEqual({
      prompt_tokens: 3,
      completion_tokens: 4,
      total_tokens: 7,
      prompt_tokens_details: { cached_tokens: 0 },
    });
    expect(engine.lastTurns).toEqual([
      { role: "system", text: "be brief" },
      { role: "user", text: "hi" },
    ]);
    expect(engine.lastSampling).toEqual({
      maxTokens: 10,
      temperature: 0.2,
      topP: 0.9,
      seed: 7,
      stop: ["zzz"],
    });
  });

  it("reports length when max_completion_tokens cuts the answer", async () => {
    const completion = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "hi" }],
      max_completion_tokens: 2,
    });
    expect(completion.choices[0]?.finish_reason).toBe("length");
    expect(completion.usage?.completion_tokens).toBe(2);
  });

  it("streams chunks the official client parses, ending with usage and [DONE]", async () => {
    const stream = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    for (const chunk of chunks)
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
    expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant");
    const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe("Hello there, friend");
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe("stop");
    expect(chunks.at(-1)?.choices).toEqual([]);
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(4);
    expect(new Set(chunks.map((chunk) => chunk.id)).size).toBe(1);
  });

  it("reports the prompt tokens served from cache, in the answer and the streamed usage", async () => {
    engine.cachedTokens = 2;
    const completion = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "hi there you" }],
    });
    expect(openAIProblems("CreateChatCompletionResponse", completion)).toEqual([]);
    expect(completion.usage?.prompt_tokens_details?.cached_tokens).toBe(2);
    const stream = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "hi there you" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    for (const chunk of chunks)
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
    expect(chunks.at(-1)?.usage).toEqual({
      prompt_tokens: 3,
      completion_tokens: 4,
      total_tokens: 7,
      prompt_tokens_details: { cached_tokens: 2 },
    });
  });

  it("ends the raw stream with data: [DONE]", async () => {
    const res = await post("/v1/chat/completions", {
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const text = await res.text();
    expect(text.trim().endsWith("data: [DONE]")).toBe(true);
  });

  it("ignores fields it does not use", async () => {
    const res = await post("/v1/chat/completions", {
      model: "whatever",
      messages: [{ role: "user", content: "hi" }],
      tools: [{ type: "function", function: { name: "f" } }],
      response_format: { type: "text" },
      user: "u-1",
      some_future_field: { nested: true },
    });
    expect(res.status).toBe(200);
  });
});

describe("completions and embeddings", () => {
  it("completes a prompt, echoing it when asked", async () => {
    const completion = await client.completions.create({
      model: "tiny",
      prompt: "Once",
      max_tokens: 2,
      echo: true,
    });
    expect(openAIProblems("CreateCompletionResponse", completion)).toEqual([]);
    expect(completion.choices[0]?.text).toBe("OnceHello there");
    expect(completion.choices[0]?.finish_reason).toBe("length");
  });

  it("reports cached prompt tokens for completions, in the answer and the streamed usage", async () => {
    engine.cachedTokens = 1;
    const completion = await client.completions.create({ model: "tiny", prompt: "Once more" });
    expect(openAIProblems("CreateCompletionResponse", completion)).toEqual([]);
    expect(completion.usage?.prompt_tokens_details?.cached_tokens).toBe(1);
    const stream = await client.completions.create({
      model: "tiny",
      prompt: "Once more",
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    // Only the usage chunk: the schema (shared with JSON answers) wants a finish_reason string
    // that OpenAI's own streams send as null until the last text chunk.
    expect(openAIProblems("CreateCompletionResponse", chunks.at(-1))).toEqual([]);
    expect(chunks.at(-1)?.usage?.prompt_tokens_details?.cached_tokens).toBe(1);
  });

  it("streams completions", async () => {
    const stream = await client.completions.create({ model: "tiny", prompt: "Once", stream: true });
    let text = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe("Hello there, friend");
    expect(finish).toBe("stop");
  });

  it("embeds a string and a list", async () => {
    const one = await client.embeddings.create({
      model: "tiny",
      input: "abc",
      encoding_format: "float",
    });
    expect(openAIProblems("CreateEmbeddingResponse", one)).toEqual([]);
    expect(one.data[0]?.embedding).toEqual([3, 0.5, -0.5]);
    const many = await client.embeddings.create({
      model: "tiny",
      input: ["a", "bb"],
      encoding_format: "float",
    });
    expect(many.data.map((item) => item.index)).toEqual([0, 1]);
  });

  it("answers base64 as little-endian float32 bytes, the same vectors as float", async () => {
    const float = await post("/v1/embeddings", { input: ["abc", "de"], encoding_format: "float" });
    const base64 = await post("/v1/embeddings", {
      input: ["abc", "de"],
      encoding_format: "base64",
    });
    expect(base64.status).toBe(200);
    const floatBody = (await float.json()) as { data: { embedding: number[] }[] };
    const body = (await base64.json()) as { data: { embedding: string }[] };
    // [3, 0.5, -0.5] as float32 LE: 00 00 40 40 | 00 00 00 3f | 00 00 00 bf.
    expect(body.data[0]?.embedding).toBe("AABAQAAAAD8AAAC/");
    const decoded = body.data.map(({ embedding }) => {
      const bytes = Buffer.from(embedding, "base64");
      return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    });
    expect(decoded).toEqual(floatBody.data.map((item) => item.embedding));
    // The schema describes float vectors only; everything around them must still match.
    const asFloats = {
      ...body,
      data: body.data.map((item, i) => ({ ...item, embedding: decoded[i] })),
    };
    expect(openAIProblems("CreateEmbeddingResponse", asFloats)).toEqual([]);
  });

  it("serves the official client's default (base64, decoded by the client)", async () => {
    const answer = await client.embeddings.create({ model: "tiny", input: ["abc", "de"] });
    expect(openAIProblems("CreateEmbeddingResponse", answer)).toEqual([]);
    expect(answer.data.map((item) => item.embedding)).toEqual([
      [3, 0.5, -0.5],
      [2, 0.5, -0.5],
    ]);
  });

  it("accepts dimensions equal to the model's embedding size, and null", async () => {
    const answer = await client.embeddings.create({ model: "tiny", input: "abc", dimensions: 3 });
    expect(answer.data[0]?.embedding).toEqual([3, 0.5, -0.5]);
    const res = await post("/v1/embeddings", { input: "abc", dimensions: null });
    expect(res.status).toBe(200);
  });

  it("refuses any other dimensions with a 400 naming the field", async () => {
    const res = await post("/v1/embeddings", { input: "abc", dimensions: 2 });
    expect(res.status).toBe(400);
    const envelope = (await res.json()) as {
      error: { message: string; type: string; param: string | null };
    };
    expect(openAIProblems("ErrorResponse", envelope)).toEqual([]);
    expect(envelope.error).toMatchObject({ type: "invalid_request_error", param: "dimensions" });
    expect(envelope.error.message).toContain("have 3 dimensions");
    await expect(
      client.embeddings.create({ model: "tiny", input: "abc", dimensions: 256 }),
    ).rejects.toMatchObject({ status: 400, param: "dimensions" });
  });
});

describe("response_format, tools and the other fields", () => {
  const weather = {
    type: "function" as const,
    function: {
      name: "get_weather",
      description: "Weather for a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  };
  const user = [{ role: "user" as const, content: "weather in Paris?" }];

  it("hands response_format to the engine as the answer's format", async () => {
    const schema = { type: "object", properties: { n: { type: "integer" } } };
    await client.chat.completions.create({
      model: "tiny",
      messages: user,
      response_format: { type: "json_schema", json_schema: { name: "n", schema, strict: true } },
    });
    expect(engine.lastSampling?.format).toEqual({ type: "json_schema", schema, strict: true });
    await client.chat.completions.create({
      model: "tiny",
      messages: user,
      response_format: { type: "json_object" },
    });
    expect(engine.lastSampling?.format).toEqual({ type: "json_object" });
    await client.chat.completions.create({
      model: "tiny",
      messages: user,
      response_format: { type: "text" },
    });
    expect(engine.lastSampling?.format).toBeUndefined();
    // Completions take it as well (as llama-server does).
    await post("/v1/completions", { prompt: "x", response_format: { type: "json_object" } });
    expect(engine.lastSampling?.format).toEqual({ type: "json_object" });
  });

  it("hands tools and tool_choice to the engine", async () => {
    await client.chat.completions.create({
      model: "tiny",
      messages: user,
      tools: [weather],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      parallel_tool_calls: false,
    });
    expect(engine.lastSampling?.tools).toEqual({
      functions: [
        {
          name: "get_weather",
          description: "Weather for a city",
          parameters: weather.function.parameters,
        },
      ],
      choice: { name: "get_weather" },
    });
  });

  it("answers calls as OpenAI does: tool_calls with ids, content null, finish_reason tool_calls", async () => {
    engine.words = [];
    engine.calls = [{ name: "get_weather", arguments: '{"city": "Paris"}' }];
    const completion = await client.chat.completions.create({
      model: "tiny",
      messages: user,
      tools: [weather],
      tool_choice: "required",
    });
    expect(openAIProblems("CreateChatCompletionResponse", completion)).toEqual([]);
    const choice = completion.choices[0];
    expect(choice?.finish_reason).toBe("tool_calls");
    expect(choice?.message.content).toBeNull();
    expect(choice?.message.tool_calls).toEqual([
      {
        id: expect.stringMatching(/^call_[0-9a-f]{24}$/),
        type: "function",
        function: { name: "get_weather", arguments: '{"city": "Paris"}' },
      },
    ]);
    // Text before a call stays the content.
    engine.words = ["Let me check."];
    const both = await client.chat.completions.create({
      model: "tiny",
      messages: user,
      tools: [weather],
    });
    expect(both.choices[0]?.message.content).toBe("Let me check.");
    expect(both.choices[0]?.message.tool_calls).toHaveLength(1);
  });

  it("streams a call as OpenAI does, which the official client assembles", async () => {
    engine.words = [];
    engine.calls = [{ name: "get_weather", arguments: '{"city": "Paris"}' }];
    const stream = await client.chat.completions.create({
      model: "tiny",
      messages: user,
      tools: [weather],
      tool_choice: "required",
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    for (const chunk of chunks)
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: "assistant", content: null });
    const first = chunks[1]?.choices[0]?.delta.tool_calls?.[0];
    expect(first).toEqual({
      index: 0,
      id: expect.stringMatching(/^call_/),
      type: "function",
      function: { name: "get_weather", arguments: "" },
    });
    const pieces = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? []);
    expect(pieces.slice(1).every((piece) => piece.id === undefined && piece.index === 0)).toBe(
      true,
    );
    expect(pieces.map((piece) => piece.function?.arguments).join("")).toBe('{"city": "Paris"}');
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe("tool_calls");
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(0);

    // The SDK's own stream helper puts the same call together.
    const helper = client.chat.completions.stream({
      model: "tiny",
      messages: user,
      tools: [weather],
      tool_choice: "required",
    });
    const final = await helper.finalChatCompletion();
    expect(final.choices[0]?.message.tool_calls?.[0]).toMatchObject({
      type: "function",
      function: { name: "get_weather", arguments: '{"city": "Paris"}' },
    });
  });

  it("gives the engine a conversation with calls and their results as turns", async () => {
    await client.chat.completions.create({
      model: "tiny",
      tools: [weather],
      messages: [
        ...user,
        {
          role: "assistant",
          content: null,
          tool_calls: [
            {
              id: "call_1",
              type: "function",
              function: { name: "get_weather", arguments: '{"city":"Paris"}' },
            },
          ],
        },
        { role: "tool", tool_call_id: "call_1", content: '{"temp": 21}' },
      ],
    });
    expect(engine.lastTurns).toEqual([
      { role: "user", text: "weather in Paris?" },
      {
        role: "assistant",
        text: "",
        toolCalls: [{ id: "call_1", name: "get_weather", arguments: { city: "Paris" } }],
      },
      { role: "tool", text: '{"temp": 21}', toolCallId: "call_1" },
    ]);
  });

  it("maps the sampling fields node-llama-cpp honours", async () => {
    await post("/v1/chat/completions", {
      messages: user,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      repeat_penalty: 1.2,
      top_k: 40,
      min_p: 0.05,
      logit_bias: { "42": -100, "7": 5 },
    });
    expect(engine.lastSampling).toMatchObject({
      presencePenalty: 0.5,
      frequencyPenalty: -0.5,
      repeatPenalty: 1.2,
      topK: 40,
      minP: 0.05,
      logitBias: [
        [7, 5],
        [42, -100],
      ],
    });
  });

  it("accepts metadata and hints that do not change the answer", async () => {
    const res = await post("/v1/chat/completions", {
      messages: [{ role: "user", content: "hi", name: "ann" }],
      user: "u-1",
      metadata: { team: "a" },
      store: false,
      service_tier: "auto",
      safety_identifier: "s",
      prompt_cache_key: "k",
      prediction: { type: "content", content: "Hello" },
      logprobs: false,
      top_logprobs: 0,
      modalities: ["text"],
      parallel_tool_calls: true,
      stream_options: null,
    });
    expect(res.status).toBe(200);
  });
});

const chat = (body: Record<string, unknown>) => ({
  messages: [{ role: "user", content: "x" }],
  ...body,
});
const tool = (parameters: unknown, strict = false) => ({
  type: "function",
  function: { name: "f", parameters, strict },
});

/** Chat requests the harness refuses, and a piece of the message naming why. */
const refusedChat: [string, unknown, string][] = [
  ["/v1/chat/completions", chat({ logprobs: true }), "does not produce log probabilities"],
  ["/v1/chat/completions", chat({ top_logprobs: 3 }), "does not produce log probabilities"],
  ["/v1/chat/completions", chat({ audio: { voice: "alloy" } }), "audio"],
  ["/v1/chat/completions", chat({ modalities: ["text", "audio"] }), '"text" modality'],
  ["/v1/chat/completions", chat({ reasoning_effort: "low" }), "reasoning_effort"],
  ["/v1/chat/completions", chat({ verbosity: "low" }), "verbosity"],
  ["/v1/chat/completions", chat({ web_search_options: {} }), "web search"],
  ["/v1/chat/completions", chat({ functions: [{ name: "f" }] }), "send tools"],
  ["/v1/chat/completions", chat({ function_call: "auto" }), "tool_choice"],
  ["/v1/chat/completions", chat({ grammar: "root ::= x" }), "response_format"],
  ["/v1/chat/completions", chat({ json_schema: {} }), "response_format"],
  ["/v1/chat/completions", chat({ logit_bias: { a: 1 } }), "token ids"],
  ["/v1/chat/completions", chat({ logit_bias: { "1": 101 } }), "logit_bias"],
  ["/v1/chat/completions", chat({ presence_penalty: 3 }), "presence_penalty"],
  ["/v1/chat/completions", chat({ response_format: { type: "xml" } }), '"json_schema"'],
  [
    "/v1/chat/completions",
    chat({ response_format: { type: "json_schema", json_schema: { name: "a b" } } }),
    "json_schema.name",
  ],
  [
    "/v1/chat/completions",
    chat({
      response_format: {
        type: "json_schema",
        json_schema: { name: "p", strict: true, schema: { type: "string", pattern: "^a" } },
      },
    }),
    "response_format.json_schema.schema.pattern",
  ],
  [
    "/v1/chat/completions",
    chat({ response_format: { type: "json_object" }, tools: [tool({ type: "object" })] }),
    'tool_choice "auto"',
  ],
  ["/v1/chat/completions", chat({ tools: [{ type: "custom", custom: {} }] }), '"function"'],
  ["/v1/chat/completions", chat({ tools: [tool({ type: "array" })] }), "of an object"],
  [
    "/v1/chat/completions",
    chat({
      tools: [
        tool({ type: "object", properties: { a: { type: "string", format: "email" } } }, true),
      ],
    }),
    "tools[0].function.parameters.properties.a.format",
  ],
  ["/v1/chat/completions", chat({ tools: [tool(null), tool(null)] }), "names two tools"],
  [
    "/v1/chat/completions",
    chat({ tools: [{ type: "function", function: { name: "bad name" } }] }),
    "function name",
  ],
  ["/v1/chat/completions", chat({ tool_choice: "required" }), "needs tools"],
  [
    "/v1/chat/completions",
    chat({ tools: [tool(null)], tool_choice: { type: "function", function: { name: "g" } } }),
    "not one of the request's tools",
  ],
  ["/v1/chat/completions", chat({ tool_choice: "sometimes" }), "tool_choice must be"],
  [
    "/v1/chat/completions",
    { messages: [{ role: "function", name: "f", content: "1" }] },
    'legacy "function" role',
  ],
  ["/v1/chat/completions", { messages: [{ role: "tool", content: "1" }] }, "tool_call_id"],
  [
    "/v1/chat/completions",
    { messages: [{ role: "tool", content: "1", tool_call_id: "c" }] },
    "answers no tool call",
  ],
  [
    "/v1/chat/completions",
    {
      messages: [
        {
          role: "assistant",
          tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }],
        },
        { role: "user", content: "hm" },
      ],
    },
    "must be followed by tool messages",
  ],
];

describe("bad input", () => {
  it.each([
    ["/v1/chat/completions", "{not json", "not valid JSON"],
    ["/v1/chat/completions", "[1,2]", "must be a JSON object"],
    ["/v1/chat/completions", {}, "messages"],
    ["/v1/chat/completions", { messages: [] }, "at least one message"],
    ["/v1/chat/completions", { messages: "hi" }, "messages"],
    ["/v1/chat/completions", { messages: [{ role: "wizard", content: "x" }] }, "messages[0].role"],
    ["/v1/chat/completions", { messages: [{ role: "user", content: 5 }] }, "messages[0].content"],
    [
      "/v1/chat/completions",
      { messages: [{ role: "user", content: [{ type: "image_url" }] }] },
      "text only",
    ],
    [
      "/v1/chat/completions",
      { messages: [{ role: "user", content: "x" }], max_tokens: "5" },
      "max_tokens",
    ],
    [
      "/v1/chat/completions",
      { messages: [{ role: "user", content: "x" }], temperature: 9 },
      "temperature",
    ],
    ["/v1/chat/completions", { messages: [{ role: "user", content: "x" }], n: 3 }, "n = 1"],
    ["/v1/completions", { prompt: 5 }, "prompt"],
    ["/v1/embeddings", { input: [] }, "empty list"],
    ["/v1/embeddings", { input: "x", encoding_format: "int8" }, '"float" or "base64"'],
    ["/v1/embeddings", { input: "x", dimensions: 0 }, "dimensions"],
    ["/v1/embeddings", { input: "x", dimensions: "3" }, "dimensions"],
    ...refusedChat,
    ["/v1/completions", { prompt: "x", suffix: "y" }, "fill-in-the-middle"],
    ["/v1/completions", { prompt: "x", best_of: 2 }, "best_of = 1"],
    ["/v1/completions", { prompt: "x", logprobs: 2 }, "log probabilities"],
    [
      "/v1/completions",
      { prompt: "x", response_format: { type: "json_schema", json_schema: { schema: false } } },
      "response_format",
    ],
  ])("%s %j → 400", async (path, body, message) => {
    const res = await post(path, body);
    expect(res.status).toBe(400);
    const envelope = (await res.json()) as { error: { message: string; type: string } };
    expect(openAIProblems("ErrorResponse", envelope)).toEqual([]);
    expect(envelope.error.message).toContain(message);
    expect(envelope.error.type).toBe("invalid_request_error");
  });

  it("answers a prompt longer than the context with context_length_exceeded", async () => {
    const res = await post("/v1/chat/completions", {
      messages: [{ role: "user", content: "x".repeat(500) }],
      stream: true,
    });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("context_length_exceeded");
    // The fix through cortex and the neuron is the model's context_length, not a harness flag.
    expect(error.message).toMatch(/^the prompt is \d+ tokens, but the context holds \d+: /);
    expect(error.message).toContain(
      "larger context_length (in its catalogue entry or the load request",
    );
  });

  it("404s unknown routes in the envelope", async () => {
    const res = await fetch(`${base}/v1/nope`);
    expect(res.status).toBe(404);
    expect(openAIProblems("ErrorResponse", await res.json())).toEqual([]);
  });

  it("keeps serving after all of that", async () => {
    await post("/v1/chat/completions", "{{{");
    const completion = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(completion.choices[0]?.message.content).toBe("Hello there, friend");
  });
});

describe("disconnects", () => {
  it("a client that leaves mid-stream aborts generation and frees the slot", async () => {
    engine.delayMs = 30;
    engine.words = Array.from({ length: 200 }, (_, i) => ` w${i}`);
    const controller = new AbortController();
    const res = await post(
      "/v1/chat/completions",
      { messages: [{ role: "user", content: "hi" }], stream: true },
      { signal: controller.signal },
    );
    const reader = res.body?.getReader();
    await reader?.read();
    controller.abort();
    await expect.poll(() => engine.aborted, { timeout: 5000 }).toBe(1);
    await expect.poll(() => inflight.size).toBe(0);
    expect(engine.pool.busy).toBe(0);
    engine.words = ["next"];
    engine.delayMs = 0;
    const completion = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(completion.choices[0]?.message.content).toBe("next");
  });

  it("a waiting request whose client leaves never takes a slot", async () => {
    engine.delayMs = 50;
    const first = client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "a" }],
    });
    await expect.poll(() => engine.pool.busy).toBe(1);
    const controller = new AbortController();
    const second = post(
      "/v1/chat/completions",
      { messages: [{ role: "user", content: "b" }] },
      { signal: controller.signal },
    ).catch(() => "aborted");
    await expect.poll(() => engine.pool.waiting).toBe(1);
    controller.abort();
    expect(await second).toBe("aborted");
    await expect.poll(() => engine.pool.waiting).toBe(0);
    await first;
    await expect.poll(() => inflight.size).toBe(0);
    expect(engine.pool.busy).toBe(0);
  });
});
