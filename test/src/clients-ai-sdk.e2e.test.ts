import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHAT_MODEL,
  CLIENT_KEY,
  type ClientsFleet,
  FLEET_START_TIMEOUT_MS,
  FLEET_STOP_TIMEOUT_MS,
  startClientsFleet,
} from "./support/clients-fleet.js";
import { type Recorder, recordingFetch } from "./support/recording-fetch.js";

// Issue 17, the Vercel AI SDK (`ai` with `@ai-sdk/openai`) against the built cortex. That
// provider's default model, `openai(id)`, speaks the Responses API (`POST /v1/responses`), which
// the built-in harness serves: text whole and streamed. The fetch it is given keeps a copy of
// each answer, so the test sees which API was called and what came back. The tiny model's words
// are random: the tests check shapes only.

// The Responses API's own floor for max_output_tokens.
const MAX_TOKENS = 16;

let fleet: ClientsFleet;
let recorder: Recorder;
let provider: ReturnType<typeof createOpenAI>;

beforeAll(async () => {
  fleet = await startClientsFleet("ai-sdk", [CHAT_MODEL]);
  recorder = recordingFetch();
  provider = createOpenAI({
    baseURL: `${fleet.url}/v1`,
    apiKey: CLIENT_KEY,
    fetch: recorder.fetch,
  });
}, FLEET_START_TIMEOUT_MS);

afterAll(async () => {
  await fleet?.stop();
}, FLEET_STOP_TIMEOUT_MS);

/** The exchanges since `from`: every one a Responses API call that succeeded. */
const responsesCalls = async (from: number) => {
  const calls = (await recorder.exchanges()).slice(from);
  expect(calls.length).toBeGreaterThan(0);
  for (const call of calls) expect(call).toMatchObject({ method: "POST", path: "/v1/responses" });
  return calls;
};

describe("the Vercel AI SDK through cortex (Responses API)", { timeout: 60_000 }, () => {
  it("generates text", async () => {
    const from = (await recorder.exchanges()).length;
    const result = await generateText({
      model: provider(CHAT_MODEL),
      system: "You answer briefly.",
      prompt: "Hello",
      maxOutputTokens: MAX_TOKENS,
      temperature: 0,
      maxRetries: 0,
    });
    expect(typeof result.text).toBe("string");
    expect(["stop", "length"]).toContain(result.finishReason);
    expect(result.usage.inputTokens).toBeGreaterThan(0);
    expect(result.usage.outputTokens).toBeGreaterThan(0);
    expect(result.usage.outputTokens).toBeLessThanOrEqual(MAX_TOKENS);
    const [call] = await responsesCalls(from);
    expect(call?.status).toBe(200);
    expect(call?.body).toMatchObject({ object: "response", status: expect.any(String) });
  });

  it("streams text: deltas that make up the whole text", async () => {
    const from = (await recorder.exchanges()).length;
    const errors: unknown[] = [];
    const result = streamText({
      model: provider(CHAT_MODEL),
      prompt: "Tell me a story",
      maxOutputTokens: MAX_TOKENS,
      temperature: 0,
      maxRetries: 0,
      onError: ({ error }) => {
        errors.push(error);
      },
    });
    const deltas: string[] = [];
    for await (const delta of result.textStream) deltas.push(delta);
    expect(errors).toEqual([]);
    expect(deltas.length).toBeGreaterThan(0);
    expect(await result.text).toBe(deltas.join(""));
    expect(["stop", "length"]).toContain(await result.finishReason);
    expect((await result.usage).outputTokens).toBeGreaterThan(0);
    const [call] = await responsesCalls(from);
    expect(call).toMatchObject({ status: 200, stream: true });
    const types = ((call?.body ?? []) as { type: string }[]).map((event) => event.type);
    expect(types[0]).toBe("response.created");
    expect(types).toContain("response.output_text.delta");
    // A stop on max_output_tokens ends in response.incomplete, as OpenAI's does.
    expect(["response.completed", "response.incomplete"]).toContain(types.at(-1));
  });
});
