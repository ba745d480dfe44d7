import OpenAI, { toFile } from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { FakeBehaviour, startFakeHarness } from "./fake-harness.js";
import { openAIProblems } from "./openai.js";

// The fake must speak the same OpenAI shapes as a real harness, or neuron tests prove nothing.

const running: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((harness) => harness.close()));
});

const start = async (behaviour: Partial<FakeBehaviour> = {}) => {
  const harness = await startFakeHarness({
    behaviour: FakeBehaviour.parse(behaviour),
    port: 0,
    host: "127.0.0.1",
    alias: "fake",
  });
  running.push(harness);
  const base = `http://127.0.0.1:${harness.port}`;
  return {
    harness,
    base,
    client: new OpenAI({ baseURL: `${base}/v1`, apiKey: "x", maxRetries: 0 }),
  };
};

describe("the fake harness", () => {
  it("answers chat, streams and embeddings in valid OpenAI shapes", async () => {
    const { client, harness } = await start({ stream_chunks: 3 });
    const chat = await client.chat.completions.create({
      model: "fake",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(openAIProblems("CreateChatCompletionResponse", chat)).toEqual([]);
    const chunks = [];
    for await (const chunk of await client.chat.completions.create({
      model: "fake",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    })) {
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
      chunks.push(chunk);
    }
    expect(chunks).toHaveLength(3);
    const embeddings = await client.embeddings.create({ model: "fake", input: ["a", "b"] });
    expect(openAIProblems("CreateEmbeddingResponse", embeddings)).toEqual([]);
    expect(harness.requests()).toBe(3);
  });

  it("transcribes a multipart upload into text naming its size and model", async () => {
    const { client, base, harness } = await start();
    const file = await toFile(Buffer.alloc(1234, 7), "speech.wav", { type: "audio/wav" });
    const answer = await client.audio.transcriptions.create({ file, model: "whisper" });
    expect(answer).toEqual({ text: "fake transcription of 1234 bytes by whisper" });
    expect(harness.requests()).toBe(1);
    for (const init of [
      { headers: { "content-type": "application/json" }, body: "{}" },
      { headers: { "content-type": "multipart/form-data; boundary=x" }, body: "--x--" },
    ]) {
      const refused = await fetch(`${base}/v1/audio/transcriptions`, { method: "POST", ...init });
      expect(refused.status).toBe(400);
      expect(openAIProblems("ErrorResponse", await refused.json())).toEqual([]);
    }
  });

  it("answers 503 until its start delay has passed", async () => {
    const { base } = await start({ start_delay_ms: 300 });
    expect((await fetch(`${base}/health`)).status).toBe(503);
    await expect.poll(async () => (await fetch(`${base}/health`)).status).toBe(200);
  });

  it("refuses a behaviour file with unknown keys", () => {
    expect(FakeBehaviour.safeParse({ crash_after: 5 }).success).toBe(false);
  });
});
