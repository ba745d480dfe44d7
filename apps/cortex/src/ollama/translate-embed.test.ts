import { openAIProblems } from "@cortex/testkit/openai";
import { describe, expect, it } from "vitest";
import { embedAnswer, embeddingsAnswer, embeddingsPlan, embedPlan } from "./translate-embed.js";

const same = (name: string) => name;
const timing = { startedMs: 0, sentMs: 1, loadMs: 2, queueMs: 2, firstTokenMs: null, endMs: 5 };

const embeddings = (vectors: { index: number; embedding: number[] }[]) => ({
  object: "list",
  model: "e",
  data: vectors.map((vector) => ({ object: "embedding", ...vector })),
  usage: { prompt_tokens: 4, total_tokens: 4 },
});

describe("embedPlan", () => {
  it("asks /v1/embeddings for floats, with dimensions", () => {
    expect(
      embedPlan(
        {
          model: "e",
          input: ["a", "b"],
          dimensions: 256,
          truncate: false,
          options: { num_ctx: 512 },
        },
        same,
      ),
    ).toEqual({
      kind: "infer",
      model: "e",
      path: "/v1/embeddings",
      stream: false,
      ignored: ["truncate", "options.num_ctx"],
      body: { model: "e", input: ["a", "b"], encoding_format: "float", dimensions: 256 },
    });
    expect(embedPlan({ model: "e", input: "one" }, same)).toMatchObject({
      body: { input: "one" },
    });
  });

  it.each([
    [{ model: "e" }, "load"],
    [{ model: "e", input: "" }, "load"],
    [{ model: "e", input: [] }, "load"],
    [{ model: "e", input: [], keep_alive: "0" }, "unload"],
  ])("with nothing to embed %j plans a %s", (body, kind) => {
    expect(embedPlan(body, same).kind).toBe(kind);
  });

  it.each([
    [{ model: "e", input: [1] }, /input/],
    [{ model: "e", input: Array.from({ length: 2049 }, () => "x") }, /input/],
    [{ model: "e", input: "x", dimensions: 0 }, /dimensions/],
    [{ model: "e", input: "x", truncate: "no" }, /truncate/],
    [{ model: "e", input: "x", options: [] }, /options must be an object/],
  ])("refuses %j", (body, message) => {
    expect(() => embedPlan(body, same)).toThrow(message);
  });
});

describe("embeddingsPlan (legacy)", () => {
  it("embeds the prompt as one input, and loads for an empty one", () => {
    expect(embeddingsPlan({ model: "e", prompt: "hello" }, same)).toMatchObject({
      kind: "infer",
      path: "/v1/embeddings",
      body: { model: "e", input: "hello", encoding_format: "float" },
    });
    expect(embeddingsPlan({ model: "e", prompt: "" }, same).kind).toBe("load");
    expect(() => embeddingsPlan({ model: "e", prompt: ["x"] }, same)).toThrow(/prompt/);
  });
});

describe("embedding answers", () => {
  const answer = embeddings([
    { index: 1, embedding: [0.3, 0.4] },
    { index: 0, embedding: [0.1, 0.2] },
  ]);

  it("answers the vectors in input order, with the durations and the token count", () => {
    expect(openAIProblems("CreateEmbeddingResponse", answer)).toEqual([]);
    expect(embedAnswer(answer, "e:latest", timing)).toEqual({
      model: "e:latest",
      embeddings: [
        [0.1, 0.2],
        [0.3, 0.4],
      ],
      total_duration: 5_000_000,
      load_duration: 2_000_000,
      prompt_eval_count: 4,
    });
    expect(embeddingsAnswer(answer)).toEqual({ embedding: [0.1, 0.2] });
  });

  it.each([{}, { data: [{ embedding: "AAAA" }] }, { data: [{ embedding: ["x"] }] }])(
    "fails an answer without vectors of numbers (%j)",
    (bad) => {
      expect(() => embedAnswer(bad, "e", timing)).toThrow(/embeddings answer/);
    },
  );
});
