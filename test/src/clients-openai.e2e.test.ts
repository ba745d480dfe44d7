import { openAIProblems } from "@cortex/testkit/openai";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHAT_ALIAS,
  CHAT_MODEL,
  CLIENT_KEY,
  type ClientsFleet,
  EMBED_MODEL,
  EMBEDDING_SIZE,
  FLEET_START_TIMEOUT_MS,
  FLEET_STOP_TIMEOUT_MS,
  startClientsFleet,
  TRANSCRIBE_MODEL,
} from "./support/clients-fleet.js";

// Issue 17, the official `openai` Node SDK against the built cortex: its defaults (base64
// embeddings), models.retrieve, a multipart transcription (to the fake harness) and chat with
// tools and response_format on the real tiny model, whose words are random: the tests check
// shapes, and the grammar the harness enforces, never wording.

let fleet: ClientsFleet;
let openai: OpenAI;

beforeAll(async () => {
  fleet = await startClientsFleet("openai");
  openai = new OpenAI({
    baseURL: `${fleet.url}/v1`,
    apiKey: CLIENT_KEY,
    maxRetries: 0,
    timeout: 60_000,
  });
}, FLEET_START_TIMEOUT_MS);

afterAll(async () => {
  await fleet?.stop();
}, FLEET_STOP_TIMEOUT_MS);

/** A tool whose one argument is an enum: any answer the grammar allows is short and checkable. */
const PICK_CITY = {
  type: "function",
  function: {
    name: "pick_city",
    description: "Picks the city to look up",
    parameters: {
      type: "object",
      properties: { city: { type: "string", enum: ["Paris", "Oslo", "Lima"] } },
      required: ["city"],
      additionalProperties: false,
    },
    strict: true,
  },
} as const;

const VERDICT_SCHEMA = {
  type: "object",
  properties: {
    sunny: { type: "boolean" },
    mood: { type: "string", enum: ["calm", "stormy"] },
  },
  required: ["sunny", "mood"],
  additionalProperties: false,
};

/** A file whose bytes include CR, LF and dashes, so a multipart relay that edits text shows. */
const AUDIO = Buffer.from(Array.from({ length: 3000 }, (_, index) => (index * 37) % 256));

describe("the official openai SDK through cortex", { timeout: 60_000 }, () => {
  it("creates embeddings with its default arguments (base64 on the wire, decoded by the SDK)", async () => {
    const answer = await openai.embeddings.create({
      model: EMBED_MODEL,
      input: ["first", "second"],
    });
    expect(openAIProblems("CreateEmbeddingResponse", answer)).toEqual([]);
    expect(answer.data.map((item) => item.index)).toEqual([0, 1]);
    for (const { embedding } of answer.data) {
      expect(embedding).toHaveLength(EMBEDDING_SIZE);
      expect(embedding.every(Number.isFinite)).toBe(true);
    }
    const single = await openai.embeddings.create({ model: EMBED_MODEL, input: "alone" });
    expect(single.data[0]?.embedding).toHaveLength(EMBEDDING_SIZE);
  });

  it("retrieves a model by its id and by an alias", async () => {
    const model = await openai.models.retrieve(CHAT_MODEL);
    expect(openAIProblems("Model", model)).toEqual([]);
    expect(model).toMatchObject({ id: CHAT_MODEL, object: "model" });
    const byAlias = await openai.models.retrieve(CHAT_ALIAS);
    expect(openAIProblems("Model", byAlias)).toEqual([]);
    expect(byAlias.id).toBe(CHAT_MODEL);
    await expect(openai.models.retrieve("no-such-model")).rejects.toMatchObject({ status: 404 });
  });

  it("transcribes an uploaded file (multipart) on the fake harness", async () => {
    const file = await toFile(AUDIO, "speech.wav", { type: "audio/wav" });
    const answer = await openai.audio.transcriptions.create({ file, model: TRANSCRIBE_MODEL });
    expect(answer.text).toBe(`fake transcription of ${AUDIO.length} bytes by ${TRANSCRIBE_MODEL}`);
  });

  it("answers chat with required tools with a tool call whose arguments parse", async () => {
    const answer = await openai.chat.completions.create({
      model: CHAT_MODEL,
      messages: [{ role: "user", content: "Which city?" }],
      tools: [PICK_CITY],
      tool_choice: "required",
      max_tokens: 200,
    });
    expect(openAIProblems("CreateChatCompletionResponse", answer)).toEqual([]);
    const choice = answer.choices[0];
    // The message in the failure, so an answer that is not a tool call shows what it was.
    expect(choice?.finish_reason, JSON.stringify(choice?.message).slice(0, 400)).toBe("tool_calls");
    const calls = choice?.message.tool_calls ?? [];
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.type).toBe("function");
      if (call.type !== "function") continue;
      expect(call.id).toMatch(/\S/);
      expect(call.function.name).toBe("pick_city");
      expect(["Paris", "Oslo", "Lima"]).toContain(
        (JSON.parse(call.function.arguments) as { city: unknown }).city,
      );
    }
  });

  it("streams a required tool call in deltas that add up to arguments that parse", async () => {
    const stream = await openai.chat.completions.create({
      model: CHAT_MODEL,
      messages: [{ role: "user", content: "Which city?" }],
      tools: [PICK_CITY],
      tool_choice: "required",
      max_tokens: 200,
      stream: true,
    });
    const calls = new Map<number, { name: string; arguments: string }>();
    let finish: string | null | undefined;
    let text = "";
    for await (const chunk of stream) {
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
      const choice = chunk.choices[0];
      finish = choice?.finish_reason ?? finish;
      text += choice?.delta.content ?? "";
      for (const delta of choice?.delta.tool_calls ?? []) {
        const call = calls.get(delta.index) ?? { name: "", arguments: "" };
        call.name += delta.function?.name ?? "";
        call.arguments += delta.function?.arguments ?? "";
        calls.set(delta.index, call);
      }
    }
    expect(finish, JSON.stringify(text.slice(0, 400))).toBe("tool_calls");
    expect(calls.size).toBeGreaterThan(0);
    for (const call of calls.values()) {
      expect(call.name).toBe("pick_city");
      expect(["Paris", "Oslo", "Lima"]).toContain(
        (JSON.parse(call.arguments) as { city: unknown }).city,
      );
    }
  });

  it("answers chat with a json_schema response_format in JSON that matches the schema", async () => {
    const answer = await openai.chat.completions.create({
      model: CHAT_MODEL,
      messages: [{ role: "user", content: "How is the weather?" }],
      response_format: {
        type: "json_schema",
        json_schema: { name: "verdict", schema: VERDICT_SCHEMA, strict: true },
      },
      max_tokens: 200,
    });
    expect(openAIProblems("CreateChatCompletionResponse", answer)).toEqual([]);
    const content = answer.choices[0]?.message.content ?? "";
    expect(answer.choices[0]?.finish_reason, JSON.stringify(content.slice(0, 400))).toBe("stop");
    const verdict = JSON.parse(content) as Record<string, unknown>;
    expect(Object.keys(verdict).sort()).toEqual(["mood", "sunny"]);
    expect(typeof verdict.sunny).toBe("boolean");
    expect(["calm", "stormy"]).toContain(verdict.mood);
  });
});
