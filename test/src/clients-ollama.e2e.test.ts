import { Ollama } from "ollama";
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

// Issue 17, the `ollama` npm client against the built cortex's Ollama API (`/api/tags`,
// `/api/chat`, `/api/embed`): list, chat whole and streamed, embed, with the client key as a
// Bearer header, which that client passes on as given. The tiny model's words are random: the
// tests check shapes only.

const NUM_PREDICT = 8;

let fleet: ClientsFleet;
let ollama: Ollama;

beforeAll(async () => {
  fleet = await startClientsFleet("ollama", [CHAT_MODEL, EMBED_MODEL]);
  ollama = new Ollama({ host: fleet.url, headers: { Authorization: `Bearer ${CLIENT_KEY}` } });
}, FLEET_START_TIMEOUT_MS);

afterAll(async () => {
  await fleet?.stop();
}, FLEET_STOP_TIMEOUT_MS);

/** A model name as Ollama writes it (`tiny:latest`) or plainly (`tiny`), without the tag. */
const untagged = (name: string): string => name.replace(/:latest$/, "");

/**
 * `call`, its failure rethrown with the status and body in the message: the client's own error
 * reads "[object Object]" when the body is not Ollama's `{error: "..."}`.
 */
const explained = async <T>(call: Promise<T>): Promise<T> => {
  try {
    return await call;
  } catch (error) {
    const { status_code: status, error: body } = error as {
      status_code?: unknown;
      error?: unknown;
    };
    if (status === undefined) throw error;
    throw new Error(`ollama answered ${String(status)}: ${JSON.stringify(body)}`);
  }
};

describe("the ollama client through cortex", { timeout: 60_000 }, () => {
  it("lists the catalogue's models", async () => {
    const { models } = await explained(ollama.list());
    const names = models.map((model) => untagged(model.name));
    expect(names).toEqual(expect.arrayContaining([CHAT_MODEL, EMBED_MODEL]));
    for (const model of models) {
      expect(untagged(model.model)).toBe(untagged(model.name));
      expect(typeof model.digest).toBe("string");
    }
  });

  it("chats", async () => {
    const answer = await explained(
      ollama.chat({
        model: CHAT_MODEL,
        messages: [
          { role: "system", content: "You answer briefly." },
          { role: "user", content: "Hello" },
        ],
        options: { num_predict: NUM_PREDICT, temperature: 0 },
      }),
    );
    expect(untagged(answer.model)).toBe(CHAT_MODEL);
    expect(answer.message.role).toBe("assistant");
    expect(typeof answer.message.content).toBe("string");
    expect(answer.done).toBe(true);
    expect(["stop", "length"]).toContain(answer.done_reason);
    expect(answer.eval_count).toBeGreaterThan(0);
    expect(answer.eval_count).toBeLessThanOrEqual(NUM_PREDICT);
    expect(answer.prompt_eval_count).toBeGreaterThan(0);
  });

  it("streams a chat: parts until one that says done", async () => {
    const parts = [];
    const stream = await explained(
      ollama.chat({
        model: CHAT_MODEL,
        messages: [{ role: "user", content: "Tell me a story" }],
        options: { num_predict: NUM_PREDICT, temperature: 0 },
        stream: true,
      }),
    );
    for await (const part of stream) parts.push(part);
    expect(parts.length).toBeGreaterThan(1);
    const last = parts.at(-1);
    expect(last?.done).toBe(true);
    expect(["stop", "length"]).toContain(last?.done_reason);
    expect(last?.eval_count).toBeGreaterThan(0);
    for (const part of parts.slice(0, -1)) {
      expect(part.done).toBe(false);
      expect(part.message.role).toBe("assistant");
      expect(typeof part.message.content).toBe("string");
    }
    expect(parts.map((part) => part.message.content).join("").length).toBeGreaterThan(0);
  });

  it("embeds one input and several", async () => {
    const several = await explained(
      ollama.embed({ model: EMBED_MODEL, input: ["first", "second"] }),
    );
    expect(untagged(several.model)).toBe(EMBED_MODEL);
    expect(several.embeddings).toHaveLength(2);
    for (const vector of several.embeddings) {
      expect(vector).toHaveLength(EMBEDDING_SIZE);
      expect(vector.every(Number.isFinite)).toBe(true);
    }
    const one = await explained(ollama.embed({ model: EMBED_MODEL, input: "alone" }));
    expect(one.embeddings).toHaveLength(1);
    expect(one.embeddings[0]).toHaveLength(EMBEDDING_SIZE);
  });

  it("answers an unknown model with Ollama's error shape, which the client reads", async () => {
    await expect(
      ollama.chat({ model: "no-such-model", messages: [{ role: "user", content: "Hello" }] }),
    ).rejects.toMatchObject({ status_code: 404, error: expect.stringContaining("no-such-model") });
  });

  it("refuses a wrong key with 401", async () => {
    const stranger = new Ollama({ host: fleet.url, headers: { Authorization: "Bearer nope" } });
    await expect(stranger.list()).rejects.toMatchObject({ status_code: 401 });
  });
});
