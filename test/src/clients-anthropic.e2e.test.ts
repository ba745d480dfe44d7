import Anthropic from "@anthropic-ai/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHAT_MODEL,
  CLIENT_KEY,
  type ClientsFleet,
  FLEET_START_TIMEOUT_MS,
  FLEET_STOP_TIMEOUT_MS,
  startClientsFleet,
} from "./support/clients-fleet.js";

// Issue 17, the official `@anthropic-ai/sdk` against the built cortex: the Messages API, whole
// and streamed, through cortex to the built-in harness on the tiny model, with the key in
// `x-api-key` as that SDK sends it. The SDK appends `/v1/messages` to its base URL, so it is
// given cortex's root. The tiny model's words are random: the tests check shapes only.

const MAX_TOKENS = 8;

let fleet: ClientsFleet;
let anthropic: Anthropic;

beforeAll(async () => {
  fleet = await startClientsFleet("anthropic", [CHAT_MODEL]);
  anthropic = new Anthropic({
    apiKey: CLIENT_KEY,
    baseURL: fleet.url,
    maxRetries: 0,
    timeout: 60_000,
  });
}, FLEET_START_TIMEOUT_MS);

afterAll(async () => {
  await fleet?.stop();
}, FLEET_STOP_TIMEOUT_MS);

/** What every answer holds whatever the model said: text blocks, a stop reason, the usage. */
const expectMessageShape = (message: Anthropic.Message): void => {
  expect(message).toMatchObject({ type: "message", role: "assistant" });
  expect(message.id).toMatch(/\S/);
  expect(message.model).toMatch(/\S/);
  for (const block of message.content) {
    expect(block.type).toBe("text");
    if (block.type === "text") expect(typeof block.text).toBe("string");
  }
  expect(["end_turn", "max_tokens", "stop_sequence"]).toContain(message.stop_reason);
  expect(message.usage.input_tokens).toBeGreaterThan(0);
  expect(message.usage.output_tokens).toBeGreaterThan(0);
  expect(message.usage.output_tokens).toBeLessThanOrEqual(MAX_TOKENS);
};

const textOf = (message: Anthropic.Message): string =>
  message.content.map((block) => (block.type === "text" ? block.text : "")).join("");

describe("the official Anthropic SDK through cortex", { timeout: 60_000 }, () => {
  it("creates a message (with a system prompt), authenticated with x-api-key", async () => {
    const message = await anthropic.messages.create({
      model: CHAT_MODEL,
      max_tokens: MAX_TOKENS,
      system: "You answer briefly.",
      messages: [
        { role: "user", content: "Hello" },
        { role: "assistant", content: "Hi." },
        { role: "user", content: [{ type: "text", text: "How are you?" }] },
      ],
    });
    expectMessageShape(message);
    expect(message.content.length).toBeGreaterThan(0);
  });

  it("streams a message: events in order, text deltas that make up the final message", async () => {
    const deltas: string[] = [];
    const stream = anthropic.messages
      .stream({
        model: CHAT_MODEL,
        max_tokens: MAX_TOKENS,
        messages: [{ role: "user", content: "Tell me a story" }],
      })
      .on("text", (delta) => deltas.push(delta));
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    const message = await stream.finalMessage();
    expectMessageShape(message);
    expect(types[0]).toBe("message_start");
    expect(types.at(-1)).toBe("message_stop");
    expect(types).toContain("message_delta");
    expect(deltas.length).toBeGreaterThan(0);
    expect(textOf(message)).toBe(deltas.join(""));
  });

  it("refuses a wrong key with 401", async () => {
    const stranger = new Anthropic({ apiKey: "sk-wrong", baseURL: fleet.url, maxRetries: 0 });
    await expect(
      stranger.messages.create({
        model: CHAT_MODEL,
        max_tokens: MAX_TOKENS,
        messages: [{ role: "user", content: "Hello" }],
      }),
    ).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
  });
});
