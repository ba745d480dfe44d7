import { randomBytes } from "node:crypto";

// Builders for OpenAI response bodies. Shapes follow the official schemas: `logprobs` and
// `message.refusal` are required (null), `usage` carries real token counts.

export type FinishReason = "stop" | "length";

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  /** `cached_tokens`: prompt tokens served from the slot's cache, as OpenAI reports them. */
  readonly prompt_tokens_details: { readonly cached_tokens: number };
}

export const usageOf = (generation: {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly cachedTokens: number;
}): Usage => ({
  prompt_tokens: generation.promptTokens,
  completion_tokens: generation.completionTokens,
  total_tokens: generation.promptTokens + generation.completionTokens,
  prompt_tokens_details: { cached_tokens: generation.cachedTokens },
});

export const newId = (prefix: string): string => `${prefix}-${randomBytes(12).toString("hex")}`;

export const unixNow = (): number => Math.floor(Date.now() / 1000);

export interface Envelope {
  readonly id: string;
  readonly created: number;
  readonly model: string;
}

export const chatCompletion = (
  envelope: Envelope,
  text: string,
  finishReason: FinishReason,
  usage: Usage,
) => ({
  id: envelope.id,
  object: "chat.completion" as const,
  created: envelope.created,
  model: envelope.model,
  choices: [
    {
      index: 0,
      message: { role: "assistant" as const, content: text, refusal: null },
      logprobs: null,
      finish_reason: finishReason,
    },
  ],
  usage,
});

export const chatChunk = (
  envelope: Envelope,
  delta: { role?: "assistant"; content?: string },
  finishReason: FinishReason | null,
) => ({
  id: envelope.id,
  object: "chat.completion.chunk" as const,
  created: envelope.created,
  model: envelope.model,
  choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
});

/** The extra last chunk of `stream_options.include_usage`: no choices, only usage. */
export const chatUsageChunk = (envelope: Envelope, usage: Usage) => ({
  id: envelope.id,
  object: "chat.completion.chunk" as const,
  created: envelope.created,
  model: envelope.model,
  choices: [],
  usage,
});

export const textCompletion = (
  envelope: Envelope,
  text: string,
  finishReason: FinishReason | null,
  usage?: Usage,
) => ({
  id: envelope.id,
  object: "text_completion" as const,
  created: envelope.created,
  model: envelope.model,
  choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }],
  ...(usage ? { usage } : {}),
});

export const completionUsageChunk = (envelope: Envelope, usage: Usage) => ({
  id: envelope.id,
  object: "text_completion" as const,
  created: envelope.created,
  model: envelope.model,
  choices: [],
  usage,
});

export type EncodingFormat = "float" | "base64";

/**
 * A vector as OpenAI's `encoding_format: "base64"` sends it: each value as a little-endian
 * IEEE 754 float32, the bytes base64-encoded. llama.cpp computes float32 values, so nothing is
 * lost: decoding gives back exactly the numbers the float format lists.
 */
export const base64Of = (vector: readonly number[]): string => {
  const bytes = Buffer.alloc(vector.length * Float32Array.BYTES_PER_ELEMENT);
  vector.forEach((value, index) => {
    bytes.writeFloatLE(value, index * Float32Array.BYTES_PER_ELEMENT);
  });
  return bytes.toString("base64");
};

export const embeddingList = (
  model: string,
  vectors: readonly (readonly number[])[],
  promptTokens: number,
  encoding: EncodingFormat = "float",
) => ({
  object: "list" as const,
  model,
  data: vectors.map((vector, index) => ({
    object: "embedding" as const,
    index,
    embedding: encoding === "base64" ? base64Of(vector) : [...vector],
  })),
  usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
});

export const modelList = (model: string, created: number) => ({
  object: "list" as const,
  data: [{ id: model, object: "model" as const, created, owned_by: "cortex-neuron" }],
});
