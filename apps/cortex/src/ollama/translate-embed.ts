import { parseBody } from "@cortex/http-kit";
import { z } from "zod";
import { CortexError } from "../errors.js";
import { durationsOf, type Timing, usageOf } from "./durations.js";
import { KeepAlive, loadOrUnload, OllamaModelName, type RequestPlan } from "./options.js";

// `POST /api/embed` and the legacy `POST /api/embeddings` → `POST /v1/embeddings`, and their
// answers back. Pure.

/** Inputs one request may embed, at most: OpenAI's limit, and the built-in harness's. */
const MAX_INPUTS = 2048;
/** Option names that may come in `options`, at most. */
const MAX_OPTIONS = 128;

/** `options` for embeddings: checked to be an object; none of them has a meaning here. */
const EmbedOptions = z
  .unknown()
  .refine(
    (value) =>
      value === undefined ||
      value === null ||
      (typeof value === "object" &&
        !Array.isArray(value) &&
        Object.keys(value).length <= MAX_OPTIONS),
    `options must be an object of at most ${MAX_OPTIONS} names`,
  )
  .optional();

export const OllamaEmbedRequest = z.object({
  model: OllamaModelName,
  input: z
    .union([z.string(), z.array(z.string()).max(MAX_INPUTS)])
    .nullable()
    .optional(),
  truncate: z.boolean().nullable().optional(),
  dimensions: z.int().positive().max(1_000_000).nullable().optional(),
  options: EmbedOptions,
  keep_alive: KeepAlive,
});

export const OllamaEmbeddingsRequest = z.object({
  model: OllamaModelName,
  prompt: z.string().nullable().optional(),
  options: EmbedOptions,
  keep_alive: KeepAlive,
});

/** Every option name, as ignored (none acts on an embedding). */
const optionNames = (options: unknown): string[] =>
  typeof options === "object" && options !== null
    ? Object.keys(options).map((name) => `options.${name}`)
    : [];

const present = (body: Record<string, unknown>, names: readonly string[]): string[] =>
  names.filter((name) => Object.hasOwn(body, name) && body[name] !== null);

/**
 * What `POST /api/embed` asks for: nothing to embed (`""`, `[]`) loads the model (or unloads
 * it with `keep_alive: 0`); otherwise `/v1/embeddings` with the input as floats and
 * `dimensions`. `truncate` is ignored: the harness decides what an input past the context does.
 */
export const embedPlan = (raw: unknown, resolve: (name: string) => string): RequestPlan => {
  const request = parseBody(OllamaEmbedRequest, raw);
  const model = resolve(request.model);
  const input = request.input ?? "";
  if (input === "" || input.length === 0) return loadOrUnload(model, request.keep_alive, false);
  return {
    kind: "infer",
    model,
    path: "/v1/embeddings",
    stream: false,
    ignored: [
      ...present(raw as Record<string, unknown>, ["keep_alive", "truncate"]),
      ...optionNames(request.options),
    ],
    body: {
      model,
      input,
      encoding_format: "float",
      ...(request.dimensions ? { dimensions: request.dimensions } : {}),
    },
  };
};

/** What the legacy `POST /api/embeddings` asks for: its `prompt` is one input. */
export const embeddingsPlan = (raw: unknown, resolve: (name: string) => string): RequestPlan => {
  const request = parseBody(OllamaEmbeddingsRequest, raw);
  const model = resolve(request.model);
  const prompt = request.prompt ?? "";
  if (prompt === "") return loadOrUnload(model, request.keep_alive, false);
  return {
    kind: "infer",
    model,
    path: "/v1/embeddings",
    stream: false,
    ignored: [
      ...present(raw as Record<string, unknown>, ["keep_alive"]),
      ...optionNames(request.options),
    ],
    body: { model, input: prompt, encoding_format: "float" },
  };
};

/** The vectors of an OpenAI embeddings answer, in input order; 502 when it holds none. */
const vectorsOf = (answer: unknown): number[][] => {
  const data =
    typeof answer === "object" && answer !== null && Object.hasOwn(answer, "data")
      ? (answer as { data: unknown }).data
      : undefined;
  if (!Array.isArray(data))
    throw new CortexError("upstream_error", "the embeddings answer holds no data");
  const entries = data.map((entry: unknown, position) => {
    const { embedding, index } = (typeof entry === "object" && entry !== null ? entry : {}) as {
      embedding?: unknown;
      index?: unknown;
    };
    if (!Array.isArray(embedding) || !embedding.every((value) => typeof value === "number"))
      throw new CortexError(
        "upstream_error",
        "the embeddings answer holds a vector that is not numbers",
      );
    return { vector: embedding as number[], index: typeof index === "number" ? index : position };
  });
  return entries.sort((a, b) => a.index - b.index).map((entry) => entry.vector);
};

/** `/api/embed`'s answer: the vectors, the durations and the input's token count. */
export const embedAnswer = (
  answer: unknown,
  model: string,
  timing: Timing,
): Record<string, unknown> => {
  const durations = durationsOf(timing, usageOf(answer));
  return {
    model,
    embeddings: vectorsOf(answer),
    total_duration: durations.total_duration,
    load_duration: durations.load_duration,
    prompt_eval_count: durations.prompt_eval_count,
  };
};

/** The legacy `/api/embeddings` answer: the one vector. */
export const embeddingsAnswer = (answer: unknown): Record<string, unknown> => ({
  embedding: vectorsOf(answer)[0] ?? [],
});
