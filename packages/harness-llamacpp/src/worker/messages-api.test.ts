import { openAIProblems } from "@cortex/testkit/openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseNamedEvents, startTestWorker, type TestWorker } from "./api-test.fixtures.js";

// Anthropic's POST /v1/messages and /v1/messages/count_tokens against a scripted engine: the
// Message object, the event stream as @anthropic-ai/sdk's MessageStream assembles it, stop
// reasons, refusals, failures and disconnects. (The SDK itself is not a dependency here; the
// shapes below are the fields its types require.)

let worker: TestWorker;

beforeEach(async () => {
  worker = await startTestWorker();
});

afterEach(async () => {
  await worker.close();
});

const Usage = z.object({
  input_tokens: z.number().int(),
  output_tokens: z.number().int(),
  cache_creation_input_tokens: z.number().int(),
  cache_read_input_tokens: z.number().int(),
});
const MessageShape = z.object({
  id: z.string().startsWith("msg_"),
  type: z.literal("message"),
  role: z.literal("assistant"),
  model: z.string(),
  content: z.array(z.object({ type: z.literal("text"), text: z.string() })),
  stop_reason: z.enum(["end_turn", "max_tokens", "stop_sequence"]).nullable(),
  stop_sequence: z.string().nullable(),
  usage: Usage,
});
const EventShapes: Record<string, z.ZodType> = {
  message_start: z.object({ message: MessageShape }),
  content_block_start: z.object({
    index: z.literal(0),
    content_block: z.object({ type: z.literal("text"), text: z.literal("") }),
  }),
  ping: z.object({}),
  content_block_delta: z.object({
    index: z.literal(0),
    delta: z.object({ type: z.literal("text_delta"), text: z.string() }),
  }),
  content_block_stop: z.object({ index: z.literal(0) }),
  message_delta: z.object({
    delta: z.object({
      stop_reason: z.enum(["end_turn", "max_tokens", "stop_sequence"]),
      stop_sequence: z.string().nullable(),
    }),
    usage: Usage,
  }),
  message_stop: z.object({}),
  error: z.object({ error: z.object({ type: z.string(), message: z.string() }) }),
};

const messages = (body: Record<string, unknown>, init?: RequestInit) =>
  worker.post("/v1/messages", { model: "tiny", max_tokens: 64, ...body }, init);

const streamEvents = async (body: Record<string, unknown>) => {
  const res = await messages({ ...body, stream: true });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  const events = parseNamedEvents(await res.text());
  for (const event of events) {
    expect(event.data.type).toBe(event.event);
    const shape = EventShapes[event.event];
    expect(shape, `unexpected event ${event.event}`).toBeDefined();
    expect(shape?.safeParse(event.data).error?.issues ?? []).toEqual([]);
  }
  return events;
};

/** The Message a client assembles from the stream, as @anthropic-ai/sdk's MessageStream does. */
const assemble = (events: readonly { event: string; data: Record<string, unknown> }[]) => {
  const start = events.find((event) => event.event === "message_start");
  const message = structuredClone(start?.data.message) as z.infer<typeof MessageShape>;
  for (const { event, data } of events) {
    if (event === "content_block_start")
      message.content.push(data.content_block as { type: "text"; text: string });
    if (event === "content_block_delta") {
      const block = message.content[data.index as number];
      if (block) block.text += (data.delta as { text: string }).text;
    }
    if (event === "message_delta") {
      Object.assign(message, data.delta);
      Object.assign(message.usage, data.usage);
    }
  }
  return message;
};

describe("messages", () => {
  it("answers a Message with system, text blocks and Anthropic's usage", async () => {
    worker.engine.cachedTokens = 2;
    const res = await messages({
      system: [
        { type: "text", text: "be brief" },
        { type: "text", text: "and kind", cache_control: { type: "ephemeral" } },
      ],
      messages: [
        { role: "user", content: [{ type: "text", text: "hi" }] },
        { role: "assistant", content: "hello" },
        { role: "user", content: "again" },
      ],
      temperature: 0.5,
      top_p: 0.9,
      top_k: 40,
      stop_sequences: ["END", ""],
      metadata: { user_id: "u-1" },
    });
    expect(res.status).toBe(200);
    const message = (await res.json()) as Record<string, unknown>;
    expect(MessageShape.safeParse(message).error?.issues ?? []).toEqual([]);
    expect(message).toMatchObject({
      model: "tiny",
      content: [{ type: "text", text: "Hello there, friend" }],
      stop_reason: "end_turn",
      stop_sequence: null,
      // 6 prompt tokens (the fake counts words), 2 of them held by the slot already.
      usage: {
        input_tokens: 4,
        cache_read_input_tokens: 2,
        cache_creation_input_tokens: 0,
        output_tokens: 4,
      },
    });
    expect(worker.engine.lastTurns).toEqual([
      { role: "system", text: "be brief\n\nand kind" },
      { role: "user", text: "hi" },
      { role: "assistant", text: "hello" },
      { role: "user", text: "again" },
    ]);
    expect(worker.engine.lastSampling).toEqual({
      maxTokens: 64,
      temperature: 0.5,
      topP: 0.9,
      topK: 40,
      seed: undefined,
      stop: ["END"],
    });
  });

  it("says max_tokens when the length ran out", async () => {
    const res = await messages({ messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    expect(await res.json()).toMatchObject({
      content: [{ text: "Hello there" }],
      stop_reason: "max_tokens",
      stop_sequence: null,
      usage: { output_tokens: 2 },
    });
  });

  it("names the stop sequence that ended generation", async () => {
    worker.engine.stopSequence = "###";
    const res = await messages({
      messages: [{ role: "user", content: "hi" }],
      stop_sequences: ["END", "###"],
    });
    expect(await res.json()).toMatchObject({
      stop_reason: "stop_sequence",
      stop_sequence: "###",
    });
  });

  it("takes a string system prompt", async () => {
    await messages({ system: "be brief", messages: [{ role: "user", content: "hi" }] });
    expect(worker.engine.lastTurns[0]).toEqual({ role: "system", text: "be brief" });
  });
});

describe("the event stream", () => {
  it("sends message_start … message_stop, which assemble into the Message", async () => {
    worker.engine.cachedTokens = 1;
    const events = await streamEvents({ messages: [{ role: "user", content: "one two" }] });
    expect(events.map((event) => event.event)).toEqual([
      "message_start",
      "content_block_start",
      "ping",
      "content_block_delta",
      "content_block_delta",
      "content_block_delta",
      "content_block_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    const start = events[0]?.data.message as Record<string, unknown>;
    expect(start).toMatchObject({
      content: [],
      stop_reason: null,
      usage: { input_tokens: 2, output_tokens: 0 },
    });
    expect(assemble(events)).toEqual({
      ...start,
      content: [{ type: "text", text: "Hello there, friend" }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: {
        input_tokens: 1,
        cache_read_input_tokens: 1,
        cache_creation_input_tokens: 0,
        output_tokens: 4,
      },
    });
  });

  it("reports max_tokens and the stop sequence in message_delta", async () => {
    const cut = await streamEvents({ messages: [{ role: "user", content: "hi" }], max_tokens: 1 });
    expect(cut.at(-2)?.data.delta).toEqual({ stop_reason: "max_tokens", stop_sequence: null });
    worker.engine.stopSequence = "END";
    const stopped = await streamEvents({
      messages: [{ role: "user", content: "hi" }],
      stop_sequences: ["END"],
    });
    expect(stopped.at(-2)?.data.delta).toEqual({
      stop_reason: "stop_sequence",
      stop_sequence: "END",
    });
  });

  it("sends the whole sequence for an empty answer", async () => {
    worker.engine.words = [];
    const events = await streamEvents({ messages: [{ role: "user", content: "hi" }] });
    expect(events.map((event) => event.event)).toEqual([
      "message_start",
      "content_block_start",
      "ping",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
  });

  it("ends a generation that fails mid-stream with an error event, without the cause", async () => {
    worker.engine.failAfter = 2;
    const events = await streamEvents({ messages: [{ role: "user", content: "hi" }] });
    expect(events.at(-1)).toMatchObject({
      event: "error",
      data: { error: { type: "api_error" } },
    });
    expect(JSON.stringify(events)).not.toContain("exploded");
    expect(worker.inflight.size).toBe(0);
    expect(worker.engine.pool.busy).toBe(0);
  });

  it("frees the slot when the client leaves mid-stream", async () => {
    worker.engine.delayMs = 20;
    worker.engine.words = Array.from({ length: 200 }, (_, i) => ` w${i}`);
    const controller = new AbortController();
    const res = await messages(
      { messages: [{ role: "user", content: "hi" }], stream: true },
      { signal: controller.signal },
    );
    await res.body?.getReader().read();
    controller.abort();
    await expect.poll(() => worker.engine.aborted, { timeout: 5000 }).toBe(1);
    await expect.poll(() => worker.inflight.size).toBe(0);
    expect(worker.engine.pool.busy).toBe(0);
  });
});

describe("count_tokens", () => {
  it("counts system and messages as the engine renders them", async () => {
    const res = await worker.post("/v1/messages/count_tokens", {
      model: "tiny",
      system: "be brief",
      messages: [{ role: "user", content: [{ type: "text", text: "hi there" }] }],
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ input_tokens: 4 });
  });

  it("answers while every slot is busy", async () => {
    worker.engine.delayMs = 50;
    const busy = messages({ messages: [{ role: "user", content: "hi" }] });
    await expect.poll(() => worker.engine.pool.busy).toBe(1);
    const res = await worker.post("/v1/messages/count_tokens", {
      messages: [{ role: "user", content: "hi" }],
    });
    expect(await res.json()).toEqual({ input_tokens: 1 });
    await busy;
  });

  it("refuses what messages refuses", async () => {
    const res = await worker.post("/v1/messages/count_tokens", {
      messages: [{ role: "user", content: [{ type: "image", source: {} }] }],
    });
    expect(res.status).toBe(400);
  });
});

describe("refusals", () => {
  const user = [{ role: "user", content: "x" }];
  it.each([
    [{ messages: user, max_tokens: undefined }, "max_tokens", "max_tokens is required"],
    [{ messages: user, max_tokens: 0 }, "max_tokens", "max_tokens"],
    [{ messages: [] }, "messages", "at least one message"],
    [{ messages: [{ role: "system", content: "x" }] }, "messages[0].role", "role must be"],
    [
      { messages: [{ role: "user", content: [{ type: "image", source: {} }] }] },
      "messages[0].content[0].type",
      '"image"',
    ],
    [
      { messages: [{ role: "user", content: [{ type: "tool_result", tool_use_id: "t" }] }] },
      "messages[0].content[0].type",
      '"tool_result"',
    ],
    [
      { messages: [{ role: "user", content: [{ type: "text" }] }] },
      "messages[0].content[0].text",
      "needs text",
    ],
    [{ messages: [{ role: "user", content: 5 }] }, "messages[0].content", "a string or a list"],
    [{ messages: user, system: [{ type: "image" }] }, "system[0].type", '"image"'],
    [{ messages: user, temperature: 1.5 }, "temperature", "temperature"],
    [{ messages: user, top_k: 0 }, "top_k", "top_k"],
    [
      { messages: user, tools: [{ name: "f", input_schema: {} }] },
      "tools",
      "tools are not supported",
    ],
    [{ messages: user, stop_sequences: "END" }, "stop_sequences", "stop_sequences"],
    [{ messages: user, stop_sequences: ["x".repeat(2000)] }, "stop_sequences[0]", "at most 1024"],
  ])("%j → 400 naming %s", async (body, param, message) => {
    const res = await messages(body);
    expect(res.status).toBe(400);
    const envelope = (await res.json()) as { error: { message: string; param: string } };
    expect(openAIProblems("ErrorResponse", envelope)).toEqual([]);
    expect(envelope.error.param).toBe(param);
    expect(envelope.error.message).toContain(message);
  });

  it("answers a prompt longer than the context with context_length_exceeded", async () => {
    const res = await messages({
      messages: [{ role: "user", content: "x ".repeat(300) }],
      stream: true,
    });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { code: string; param: string } };
    expect(error).toMatchObject({ code: "context_length_exceeded", param: "messages" });
  });

  it("is 503 while the model loads, for both routes", async () => {
    worker.phase = "loading";
    expect((await messages({ messages: user })).status).toBe(503);
    expect((await worker.post("/v1/messages/count_tokens", { messages: user })).status).toBe(503);
  });
});
