import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@cortex/testkit";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTinyModel } from "../gguf/index.js";
import { parseNamedEvents } from "./api-test.fixtures.js";
import { WORKER_ENTRY } from "./entry.js";

// The Responses and Anthropic Messages APIs of the real worker process on the real tiny model,
// streamed and not. Its words are random; these tests check the protocol and that every count
// agrees with the others (count_tokens, chat's prompt_tokens, usage), not the prose.

let dir: string;
let child: ChildProcess;
let base: string;
let client: OpenAI;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "harness-apis-"));
  const model = join(dir, "tiny.gguf");
  await writeTinyModel(model, { seed: 1 });
  const port = await freePort();
  child = spawn(
    process.execPath,
    [WORKER_ENTRY, "--model", model, "--port", String(port), "--gpu", "off", "--alias", "tiny"],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  base = `http://127.0.0.1:${port}`;
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = await fetch(`${base}/health`).then(
      (res) => res.status,
      () => 0,
    );
    if (status === 200) break;
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error("the worker never got ready");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill("SIGTERM");
    await once(child, "exit");
  }
  await rm(dir, { recursive: true, force: true });
});

const post = async (path: string, body: unknown) =>
  fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": "unused" },
    body: JSON.stringify(body),
  });

const CONVERSATION = {
  system: "You answer briefly.",
  messages: [
    { role: "user" as const, content: "Hello" },
    { role: "assistant" as const, content: "Hi." },
    { role: "user" as const, content: [{ type: "text" as const, text: "How are you?" }] },
  ],
};

describe("the Responses API on the tiny model", () => {
  it("answers the official client, counting the prompt as chat completions does", async () => {
    const response = await client.responses.create({
      model: "tiny",
      instructions: "You answer briefly.",
      input: [{ role: "user", content: "Say something." }],
      max_output_tokens: 8,
      temperature: 0,
    });
    expect(response).toMatchObject({ object: "response", model: "tiny" });
    expect(["completed", "incomplete"]).toContain(response.status);
    expect(response.output_text.length).toBeGreaterThan(0);
    expect(response.usage?.output_tokens).toBeGreaterThan(0);
    expect(response.usage?.output_tokens).toBeLessThanOrEqual(8);
    const chat = await client.chat.completions.create({
      model: "tiny",
      messages: [
        { role: "system", content: "You answer briefly." },
        { role: "user", content: "Say something." },
      ],
      max_tokens: 8,
      temperature: 0,
    });
    expect(response.usage?.input_tokens).toBe(chat.usage?.prompt_tokens);
    // Greedy sampling on the same prompt: the same words by either API.
    expect(response.output_text).toBe(chat.choices[0]?.message.content);
  });

  it("streams the official event sequence, which the client's stream helper assembles", async () => {
    const stream = client.responses.stream({
      model: "tiny",
      input: "Tell me a story",
      max_output_tokens: 16,
      temperature: 0,
    });
    const types: string[] = [];
    const deltas: string[] = [];
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") deltas.push(event.delta);
    }
    const response = await stream.finalResponse();
    expect(types.slice(0, 4)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
    ]);
    expect(["response.completed", "response.incomplete"]).toContain(types.at(-1));
    expect(deltas.length).toBeGreaterThan(0);
    const [message] = response.output;
    expect(message?.type === "message" && message.content[0]).toMatchObject({
      type: "output_text",
      text: deltas.join(""),
    });
  });
  it("holds text.format json_schema to its schema, and names text.format for one it refuses", async () => {
    const schema = {
      type: "object",
      properties: { ok: { type: "boolean" }, mood: { enum: ["calm", "busy"] } },
      required: ["ok", "mood"],
      additionalProperties: false,
    };
    const response = await client.responses.create({
      model: "tiny",
      input: "How is it going?",
      max_output_tokens: 32,
      temperature: 0,
      text: { format: { type: "json_schema", name: "status", schema, strict: true } },
    });
    const parsed = JSON.parse(response.output_text) as { ok: unknown; mood: unknown };
    expect(typeof parsed.ok).toBe("boolean");
    expect(["calm", "busy"]).toContain(parsed.mood);
    const refused = await post("/v1/responses", {
      model: "tiny",
      input: "Hi",
      text: {
        format: {
          type: "json_schema",
          name: "code",
          strict: true,
          schema: { type: "object", properties: { code: { type: "string", pattern: "^[a-z]+$" } } },
        },
      },
    });
    expect(refused.status).toBe(400);
    const { error } = (await refused.json()) as { error: { param: string; message: string } };
    expect(error.param.startsWith("text.format")).toBe(true);
    expect(error.message).not.toContain("response_format");
  });
});

describe("the Anthropic Messages API on the tiny model", () => {
  it("answers a Message whose usage adds up to count_tokens", async () => {
    const counted = (await (await post("/v1/messages/count_tokens", CONVERSATION)).json()) as {
      input_tokens: number;
    };
    expect(counted.input_tokens).toBeGreaterThan(0);
    const res = await post("/v1/messages", { model: "tiny", max_tokens: 8, ...CONVERSATION });
    expect(res.status).toBe(200);
    const message = (await res.json()) as {
      type: string;
      content: { type: string; text: string }[];
      stop_reason: string;
      usage: { input_tokens: number; output_tokens: number; cache_read_input_tokens: number };
    };
    expect(message.type).toBe("message");
    expect(message.content[0]?.type).toBe("text");
    expect(["end_turn", "max_tokens"]).toContain(message.stop_reason);
    expect(message.usage.input_tokens).toBeGreaterThan(0);
    expect(message.usage.output_tokens).toBeGreaterThan(0);
    expect(message.usage.output_tokens).toBeLessThanOrEqual(8);
    expect(message.usage.input_tokens + message.usage.cache_read_input_tokens).toBe(
      counted.input_tokens,
    );
  });

  it("streams message_start … message_stop; the deltas make up the text", async () => {
    const res = await post("/v1/messages", {
      model: "tiny",
      max_tokens: 8,
      stream: true,
      messages: [{ role: "user", content: "Tell me a story" }],
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const events = parseNamedEvents(await res.text());
    const names = events.map((event) => event.event);
    expect(names.slice(0, 3)).toEqual(["message_start", "content_block_start", "ping"]);
    expect(names.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
    const deltas = events
      .filter((event) => event.event === "content_block_delta")
      .map((event) => (event.data.delta as { text: string }).text);
    expect(deltas.length).toBeGreaterThan(0);
    const counted = (await (
      await post("/v1/messages/count_tokens", {
        messages: [{ role: "user", content: "Tell me a story" }],
      })
    ).json()) as { input_tokens: number };
    const start = events[0]?.data.message as { usage: { input_tokens: number } };
    expect(start.usage.input_tokens).toBe(counted.input_tokens);
    const end = events.at(-2)?.data as { usage: { output_tokens: number } };
    expect(end.usage.output_tokens).toBeGreaterThan(0);
  });

  it("names the stop sequence that ended generation", async () => {
    const ask = { model: "tiny", temperature: 0, messages: [{ role: "user", content: "Count." }] };
    const free = (await (await post("/v1/messages", { ...ask, max_tokens: 24 })).json()) as {
      content: { text: string }[];
    };
    const text = free.content[0]?.text ?? "";
    // A stop sequence that first appears inside the greedy answer, after at least one character.
    const at = Array.from(text, (_, index) => index).find(
      (index) =>
        index > 0 &&
        /^[\x21-\x7e]{2}$/.test(text.slice(index, index + 2)) &&
        text.indexOf(text.slice(index, index + 2)) === index,
    );
    expect(at, `no usable stop sequence in ${JSON.stringify(text)}`).toBeDefined();
    const stop = text.slice(at, (at ?? 0) + 2);
    const stopped = (await (
      await post("/v1/messages", { ...ask, max_tokens: 24, stop_sequences: [stop] })
    ).json()) as { content: { text: string }[]; stop_reason: string; stop_sequence: string };
    expect(stopped).toMatchObject({ stop_reason: "stop_sequence", stop_sequence: stop });
    // The answer ends before the stop sequence (node-llama-cpp may also hold back the bytes of an
    // unfinished character just before it: the tiny model's tokens are random bytes).
    expect(text.slice(0, at).startsWith(stopped.content[0]?.text ?? "-")).toBe(true);
  });
});
