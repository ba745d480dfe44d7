import { openAIProblems } from "@cortex/testkit/openai";
import OpenAI from "openai";
import type { Response as OpenAIResponse } from "openai/resources/responses/responses";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseNamedEvents, startTestWorker, type TestWorker } from "./api-test.fixtures.js";
import type { Generation } from "./engine.js";
import { echoOf, finishedResponse } from "./responses-events.js";
import { ResponsesRequest } from "./responses-request.js";

// POST /v1/responses against a scripted engine: the Response object and its event stream as
// the official `openai` SDK reads them, every refusal, failures and disconnects. The shared
// schema file has no Response schemas, so shapes are held to the SDK's own types: at compile
// time (the builders' output assigned to them) and at run time (the fields they require).

let worker: TestWorker;
let client: OpenAI;

beforeEach(async () => {
  worker = await startTestWorker();
  client = new OpenAI({ baseURL: `${worker.base}/v1`, apiKey: "unused", maxRetries: 0 });
});

afterEach(async () => {
  await worker.close();
});

/** The fields the SDK's `Response` type requires (all but the SDK-computed output_text). */
const RESPONSE_FIELDS = [
  "id",
  "object",
  "created_at",
  "error",
  "incomplete_details",
  "instructions",
  "metadata",
  "model",
  "output",
  "parallel_tool_calls",
  "temperature",
  "tool_choice",
  "tools",
  "top_p",
] as const;

const OutputText = z.object({
  type: z.literal("output_text"),
  text: z.string(),
  annotations: z.array(z.unknown()),
});
const MessageItem = z.object({
  type: z.literal("message"),
  id: z.string().startsWith("msg_"),
  status: z.enum(["in_progress", "completed", "incomplete"]),
  role: z.literal("assistant"),
  content: z.array(OutputText),
});
const ResponseShape = z
  .looseObject({
    id: z.string().startsWith("resp_"),
    object: z.literal("response"),
    created_at: z.number().int(),
    status: z.enum(["in_progress", "completed", "incomplete", "failed"]),
    output: z.array(MessageItem),
    usage: z
      .object({
        input_tokens: z.number().int(),
        input_tokens_details: z.object({ cached_tokens: z.number().int() }),
        output_tokens: z.number().int(),
        output_tokens_details: z.object({ reasoning_tokens: z.number().int() }),
        total_tokens: z.number().int(),
      })
      .nullable(),
  })
  .refine((response) => RESPONSE_FIELDS.every((field) => Object.hasOwn(response, field)), {
    error: `a Response needs ${RESPONSE_FIELDS.join(", ")}`,
  });
const Where = {
  item_id: z.string(),
  output_index: z.literal(0),
  content_index: z.literal(0),
};
/** Each event type this route sends, with the fields the SDK's event types require. */
const EventShapes: Record<string, z.ZodType> = {
  "response.created": z.object({ response: ResponseShape }),
  "response.in_progress": z.object({ response: ResponseShape }),
  "response.output_item.added": z.object({ output_index: z.literal(0), item: MessageItem }),
  "response.content_part.added": z.object({ ...Where, part: OutputText }),
  "response.output_text.delta": z.object({
    ...Where,
    delta: z.string(),
    logprobs: z.array(z.unknown()),
  }),
  "response.output_text.done": z.object({
    ...Where,
    text: z.string(),
    logprobs: z.array(z.unknown()),
  }),
  "response.content_part.done": z.object({ ...Where, part: OutputText }),
  "response.output_item.done": z.object({ output_index: z.literal(0), item: MessageItem }),
  "response.completed": z.object({ response: ResponseShape }),
  "response.incomplete": z.object({ response: ResponseShape }),
  "response.failed": z.object({ response: ResponseShape }),
  error: z.object({ code: z.string(), message: z.string(), param: z.null() }),
};

const streamEvents = async (body: Record<string, unknown>) => {
  const res = await worker.post("/v1/responses", { ...body, stream: true });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  const text = await res.text();
  expect(text).not.toContain("[DONE]");
  const events = parseNamedEvents(text);
  events.forEach((event, index) => {
    expect(event.data.type).toBe(event.event);
    expect(event.data.sequence_number).toBe(index);
    const shape = EventShapes[event.event];
    expect(shape, `unexpected event ${event.event}`).toBeDefined();
    expect(shape?.safeParse(event.data).error?.issues ?? []).toEqual([]);
  });
  return events;
};

describe("the Response object", () => {
  it("builds what the SDK's Response type describes", () => {
    const generation: Generation = {
      text: "hi",
      finishReason: "stop",
      promptTokens: 3,
      completionTokens: 1,
      cachedTokens: 0,
    };
    const request = ResponsesRequest.parse({ input: "x" });
    // The compile-time half of the shape check: tsc rejects a field the SDK types differently.
    const response: Omit<OpenAIResponse, "output_text"> = finishedResponse(
      echoOf(request, "tiny", 0.8, 1),
      generation,
    );
    expect(ResponseShape.safeParse(response).success).toBe(true);
  });

  it("answers the official client, with instructions and input messages as turns", async () => {
    const response = await client.responses.create({
      model: "tiny",
      instructions: "be brief",
      input: [
        { role: "developer", content: "in English" },
        { type: "message", role: "user", content: [{ type: "input_text", text: "hi" }] },
        {
          type: "message",
          id: "msg_1",
          status: "completed",
          role: "assistant",
          content: [{ type: "output_text", text: "hello", annotations: [] }],
        },
        { role: "user", content: "again" },
      ],
      max_output_tokens: 10,
      temperature: 0.2,
      top_p: 0.9,
      metadata: { run: "7" },
    });
    expect(ResponseShape.safeParse(response).error?.issues ?? []).toEqual([]);
    expect(response.output_text).toBe("Hello there, friend");
    expect(response).toMatchObject({
      object: "response",
      status: "completed",
      model: "tiny",
      instructions: "be brief",
      max_output_tokens: 10,
      temperature: 0.2,
      top_p: 0.9,
      metadata: { run: "7" },
      store: false,
      tools: [],
      error: null,
      incomplete_details: null,
      text: { format: { type: "text" } },
    });
    expect(response.output[0]).toMatchObject({ type: "message", status: "completed" });
    expect(response.usage).toEqual({
      input_tokens: 7,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: 4,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: 11,
    });
    expect(worker.engine.lastTurns).toEqual([
      { role: "system", text: "be brief" },
      { role: "system", text: "in English" },
      { role: "user", text: "hi" },
      { role: "assistant", text: "hello" },
      { role: "user", text: "again" },
    ]);
    expect(worker.engine.lastSampling).toEqual({
      maxTokens: 10,
      temperature: 0.2,
      topP: 0.9,
      seed: undefined,
      stop: [],
    });
  });

  it("takes a string input as one user turn, with the worker's defaults echoed", async () => {
    const res = await worker.post("/v1/responses", { input: "hi", store: false });
    expect(res.status).toBe(200);
    const response = (await res.json()) as Record<string, unknown>;
    expect(response).toMatchObject({ temperature: 0.8, top_p: 1, max_output_tokens: null });
    expect(worker.engine.lastTurns).toEqual([{ role: "user", text: "hi" }]);
  });

  it("is incomplete, for max_output_tokens, when the length ran out", async () => {
    const response = await client.responses.create({
      model: "tiny",
      input: "hi",
      max_output_tokens: 2,
    });
    expect(response.status).toBe("incomplete");
    expect(response.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(response.output[0]).toMatchObject({ status: "incomplete" });
    expect(response.output_text).toBe("Hello there");
    expect(response.usage?.output_tokens).toBe(2);
  });

  it("reports prompt tokens served from cache", async () => {
    worker.engine.cachedTokens = 2;
    const response = await client.responses.create({ model: "tiny", input: "one two three" });
    expect(response.usage?.input_tokens_details.cached_tokens).toBe(2);
  });

  it.each([
    [{ type: "json_object" }, { type: "json_object" }],
    [
      { type: "json_schema", name: "answer", schema: { type: "object" }, strict: true },
      { type: "json_schema", schema: { type: "object" }, strict: true },
    ],
  ])("passes text.format %j to the engine", async (format, expected) => {
    const res = await worker.post("/v1/responses", { input: "hi", text: { format } });
    expect(res.status).toBe(200);
    expect(worker.engine.lastSampling?.format).toEqual(expected);
    expect(((await res.json()) as { text: unknown }).text).toEqual({ format });
  });

  it("passes no format for text", async () => {
    await worker.post("/v1/responses", { input: "hi", text: { format: { type: "text" } } });
    expect(worker.engine.lastSampling?.format).toBeUndefined();
  });
});

describe("the event stream", () => {
  it("sends the official sequence, numbered, with usage at the end and no [DONE]", async () => {
    worker.engine.cachedTokens = 1;
    const events = await streamEvents({ input: "hi" });
    expect(events.map((event) => event.event)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const deltas = events.filter((event) => event.event === "response.output_text.delta");
    expect(deltas.map((event) => event.data.delta).join("")).toBe("Hello there, friend");
    expect(events[8]?.data.text).toBe("Hello there, friend");
    const itemIds = new Set(
      events.flatMap((event) => (event.data.item_id ? [event.data.item_id] : [])),
    );
    expect(itemIds.size).toBe(1);
    const created = events[0]?.data.response as Record<string, unknown>;
    expect(created).toMatchObject({ status: "in_progress", output: [], usage: null });
    const completed = events.at(-1)?.data.response as Record<string, unknown>;
    expect(completed.id).toBe(created.id);
    expect(completed).toMatchObject({
      status: "completed",
      output: [{ id: [...itemIds][0], content: [{ text: "Hello there, friend" }] }],
      usage: { input_tokens: 1, input_tokens_details: { cached_tokens: 1 }, output_tokens: 4 },
    });
  });

  it("ends with response.incomplete when the length ran out", async () => {
    const events = await streamEvents({ input: "hi", max_output_tokens: 1 });
    expect(events.at(-1)?.event).toBe("response.incomplete");
    expect(events.at(-1)?.data.response).toMatchObject({
      status: "incomplete",
      incomplete_details: { reason: "max_output_tokens" },
      usage: { output_tokens: 1 },
    });
  });

  it("sends the whole sequence for an empty answer", async () => {
    worker.engine.words = [];
    const events = await streamEvents({ input: "hi" });
    expect(events.map((event) => event.event)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
  });

  it("is what the official client's responses.stream assembles", async () => {
    const stream = client.responses.stream({ model: "tiny", input: "hi" });
    const deltas: string[] = [];
    stream.on("response.output_text.delta", (event) => deltas.push(event.delta));
    const response = await stream.finalResponse();
    expect(deltas.join("")).toBe("Hello there, friend");
    // (output_text is filled in by the SDK's create(), not by its stream helper.)
    expect(response.output[0]).toMatchObject({ content: [{ text: "Hello there, friend" }] });
    expect(response.status).toBe("completed");
    expect(response.usage?.total_tokens).toBe(5);
  });

  it("ends a generation that fails mid-stream with error and response.failed, without the cause", async () => {
    worker.engine.failAfter = 2;
    const events = await streamEvents({ input: "hi" });
    expect(events.slice(-2).map((event) => event.event)).toEqual(["error", "response.failed"]);
    expect(JSON.stringify(events)).not.toContain("exploded");
    expect(events.at(-1)?.data.response).toMatchObject({
      status: "failed",
      error: { code: "server_error" },
      output: [{ status: "incomplete", content: [{ text: "Hello there" }] }],
    });
    expect(worker.inflight.size).toBe(0);
    expect(worker.engine.pool.busy).toBe(0);
  });

  it("answers a failure before the first token as JSON", async () => {
    worker.engine.failAfter = 0;
    const res = await worker.post("/v1/responses", { input: "hi", stream: true });
    expect(res.status).toBe(500);
    expect(openAIProblems("ErrorResponse", await res.json())).toEqual([]);
  });

  it("frees the slot when the client leaves mid-stream", async () => {
    worker.engine.delayMs = 20;
    worker.engine.words = Array.from({ length: 200 }, (_, i) => ` w${i}`);
    const controller = new AbortController();
    const res = await worker.post(
      "/v1/responses",
      { input: "hi", stream: true },
      { signal: controller.signal },
    );
    await res.body?.getReader().read();
    controller.abort();
    await expect.poll(() => worker.engine.aborted, { timeout: 5000 }).toBe(1);
    await expect.poll(() => worker.inflight.size).toBe(0);
    expect(worker.engine.pool.busy).toBe(0);
  });
});

describe("refusals", () => {
  it.each([
    [{ input: "x", store: true }, "store", "store: true is not supported"],
    [{ input: "x", previous_response_id: "resp_1" }, "previous_response_id", "keeps no responses"],
    [{ input: "x", conversation: "conv_1" }, "conversation", "keeps no responses"],
    [{ input: "x", background: true }, "background", "background: true is not supported"],
    [
      { input: "x", tools: [{ type: "function", name: "f", parameters: {} }] },
      "tools",
      "tools are not supported",
    ],
    [
      { input: [{ type: "function_call", call_id: "c", name: "f" }] },
      "input[0].type",
      '"function_call"',
    ],
    [{ input: [{ type: "item_reference", id: "msg_1" }] }, "input[0].type", '"item_reference"'],
    [
      { input: [{ role: "user", content: [{ type: "input_image", image_url: "x" }] }] },
      "input[0].content[0].type",
      '"input_image"',
    ],
    [
      { input: [{ role: "user", content: [{ type: "input_text" }] }] },
      "input[0].content[0].text",
      "needs text",
    ],
    [{ input: [{ role: "tool", content: "x" }] }, "input[0].role", "role must be"],
    [{ input: [] }, "input", "empty list"],
    [{ input: 5 }, "input", "a string or a list"],
    [{}, "input", "a string or a list"],
    [{ input: "x", max_output_tokens: 0 }, "max_output_tokens", "max_output_tokens"],
    [{ input: "x", temperature: 3 }, "temperature", "temperature"],
    [
      {
        input: "x",
        metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])),
      },
      "metadata",
      "at most 16 keys",
    ],
    [{ input: "x", text: { format: { type: "yaml" } } }, "text.format.type", '"json_schema"'],
    [
      { input: "x", text: { format: { type: "json_schema", schema: {} } } },
      "text.format.name",
      "name",
    ],
  ])("%j → 400 naming %s", async (body, param, message) => {
    const res = await worker.post("/v1/responses", body);
    expect(res.status).toBe(400);
    const envelope = (await res.json()) as { error: { message: string; param: string } };
    expect(openAIProblems("ErrorResponse", envelope)).toEqual([]);
    expect(envelope.error.param).toBe(param);
    expect(envelope.error.message).toContain(message);
  });

  it("accepts tools: [] and store: false, as SDKs may send them", async () => {
    const res = await worker.post("/v1/responses", { input: "x", tools: [], store: false });
    expect(res.status).toBe(200);
  });

  it("answers a prompt longer than the context with context_length_exceeded on input", async () => {
    const res = await worker.post("/v1/responses", { input: "x ".repeat(300), stream: true });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { code: string; param: string } };
    expect(error).toMatchObject({ code: "context_length_exceeded", param: "input" });
  });

  it("is 503 while the model loads", async () => {
    worker.phase = "loading";
    const res = await worker.post("/v1/responses", { input: "x" });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
  });

  it("raises the SDK's APIError for a refusal", async () => {
    await expect(
      client.responses.create({ model: "tiny", input: "x", previous_response_id: "resp_1" }),
    ).rejects.toMatchObject({ status: 400 });
  });
});
