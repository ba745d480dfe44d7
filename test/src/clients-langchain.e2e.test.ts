import { openAIProblems } from "@cortex/testkit/openai";
import type { AIMessageChunk } from "@langchain/core/messages";
import { ChatOpenAI, OpenAIEmbeddings } from "@langchain/openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHAT_MODEL,
  CLIENT_KEY,
  type ClientsFleet,
  EMBED_MODEL,
  EMBEDDING_SIZE,
  FLEET_START_TIMEOUT_MS,
  FLEET_STOP_TIMEOUT_MS,
  startClientsFleet,
} from "./support/clients-fleet.js";
import { type Recorder, recordingFetch } from "./support/recording-fetch.js";

// Issue 17, LangChain (`@langchain/openai`) against the built cortex: ChatOpenAI whole and
// streamed (Chat Completions), OpenAIEmbeddings for a query and for documents. The fetch it is
// given keeps a copy of each answer, which is validated against the OpenAI schemas, since
// LangChain hands the test its own message types instead. The tiny model's words are random:
// the tests check shapes only.

const MAX_TOKENS = 8;

let fleet: ClientsFleet;
let recorder: Recorder;
let configuration: { baseURL: string; fetch: typeof fetch };

beforeAll(async () => {
  fleet = await startClientsFleet("langchain", [CHAT_MODEL, EMBED_MODEL]);
  recorder = recordingFetch();
  configuration = { baseURL: `${fleet.url}/v1`, fetch: recorder.fetch };
}, FLEET_START_TIMEOUT_MS);

afterAll(async () => {
  await fleet?.stop();
}, FLEET_STOP_TIMEOUT_MS);

const chat = () =>
  new ChatOpenAI({
    model: CHAT_MODEL,
    apiKey: CLIENT_KEY,
    configuration,
    maxTokens: MAX_TOKENS,
    temperature: 0,
    maxRetries: 0,
  });

/** The exchanges since `from`, each a POST to `path` answered 200. */
const callsTo = async (path: string, from: number) => {
  const calls = (await recorder.exchanges()).slice(from);
  expect(calls.length).toBeGreaterThan(0);
  for (const call of calls) expect(call).toMatchObject({ method: "POST", path, status: 200 });
  return calls;
};

describe("LangChain's OpenAI integration through cortex", { timeout: 60_000 }, () => {
  it("invokes ChatOpenAI", async () => {
    const from = (await recorder.exchanges()).length;
    const message = await chat().invoke([
      ["system", "You answer briefly."],
      ["human", "Hello"],
    ]);
    expect(typeof message.content).toBe("string");
    expect(["stop", "length"]).toContain(message.response_metadata.finish_reason);
    expect(message.usage_metadata?.input_tokens).toBeGreaterThan(0);
    expect(message.usage_metadata?.output_tokens).toBeGreaterThan(0);
    expect(message.usage_metadata?.output_tokens).toBeLessThanOrEqual(MAX_TOKENS);
    for (const call of await callsTo("/v1/chat/completions", from))
      expect(openAIProblems("CreateChatCompletionResponse", call.body)).toEqual([]);
  });

  it("streams from ChatOpenAI: chunks that add up to the message, with its usage", async () => {
    const from = (await recorder.exchanges()).length;
    const chunks: AIMessageChunk[] = [];
    for await (const chunk of await chat().stream("Tell me a story")) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(1);
    const whole = chunks.reduce((sum, chunk) => sum.concat(chunk));
    expect(typeof whole.content).toBe("string");
    expect(whole.content.length).toBeGreaterThan(0);
    expect(whole.usage_metadata?.output_tokens).toBeGreaterThan(0);
    const calls = await callsTo("/v1/chat/completions", from);
    for (const call of calls) {
      expect(call.stream).toBe(true);
      for (const event of call.body as unknown[])
        expect(openAIProblems("CreateChatCompletionStreamResponse", event)).toEqual([]);
    }
  });

  it("embeds a query and documents with OpenAIEmbeddings", async () => {
    const from = (await recorder.exchanges()).length;
    const embeddings = new OpenAIEmbeddings({
      model: EMBED_MODEL,
      apiKey: CLIENT_KEY,
      configuration,
      maxRetries: 0,
    });
    const query = await embeddings.embedQuery("what is cortex?");
    expect(query).toHaveLength(EMBEDDING_SIZE);
    expect(query.every(Number.isFinite)).toBe(true);
    const documents = await embeddings.embedDocuments(["first", "second", "third"]);
    expect(documents).toHaveLength(3);
    for (const vector of documents) expect(vector).toHaveLength(EMBEDDING_SIZE);
    // Base64 on the wire (the SDK's default), which the float-only schema does not describe.
    await callsTo("/v1/embeddings", from);
  });
});
