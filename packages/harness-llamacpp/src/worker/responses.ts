import { randomBytes } from "node:crypto";

// Builders for OpenAI response bodies. Shapes follow the official schemas: `logprobs` and
// `message.refusal` are required (null), `usage` carries real token counts.

/** Why an answer ended; `tool_calls` when it ends with calls for the client to make. */
export type FinishReason = "stop" | "length" | "tool_calls";

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

/** A tool call's id, as OpenAI writes them (`call_` and 24 characters). */
export const newCallId = (): string => `call_${randomBytes(12).toString("hex")}`;

/** A tool call in an answer: its id, the function's name and its arguments as JSON text. */
export interface ToolCall {
  readonly id: string;
  readonly type: "function";
  readonly function: { readonly name: string; readonly arguments: string };
}

/** One step of a streamed tool call: the first names it, the rest add to its arguments. */
export interface ToolCallDelta {
  readonly index: number;
  readonly id?: string;
  readonly type?: "function";
  readonly function: { readonly name?: string; readonly arguments: string };
}

export const unixNow = (): number => Math.floor(Date.now() / 1000);

export interface Envelope {
  readonly id: string;
  readonly created: number;
  readonly model: string;
}

/**
 * A chat answer: its text, and the tool calls it ends with. An answer that only calls tools has
 * `content: null`, as OpenAI's do.
 */
export const chatCompletion = (
  envelope: Envelope,
  answer: { readonly text: string; readonly toolCalls?: readonly ToolCall[] },
  finishReason: FinishReason,
  usage: Usage,
) => {
  const calls = answer.toolCalls ?? [];
  return {
    id: envelope.id,
    object: "chat.completion" as const,
    created: envelope.created,
    model: envelope.model,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant" as const,
          content: calls.length > 0 && !answer.text ? null : answer.text,
          refusal: null,
          ...(calls.length > 0 ? { tool_calls: calls } : {}),
        },
        logprobs: null,
        finish_reason: finishReason,
      },
    ],
    usage,
  };
};

export const chatChunk = (
  envelope: Envelope,
  delta: {
    role?: "assistant";
    content?: string | null;
    tool_calls?: readonly ToolCallDelta[];
  },
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
