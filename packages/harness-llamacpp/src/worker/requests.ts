import { z } from "zod";
import {
  CHAT_FIELDS,
  COMPLETION_FIELDS,
  HistoryToolCall,
  type ResponseFormat,
  refused,
  SHARED_FIELDS,
} from "./request-fields.js";

// OpenAI request bodies as the worker understands them. Objects are not strict: fields no
// OpenAI API defines are ignored, never an error, as an OpenAI-compatible server must. Every
// field OpenAI does define is honoured, refused with a 400 or ignored as metadata, by name
// (request-fields.ts lists which).

const ContentPart = z.object({ type: z.string(), text: z.string().optional() });

const MessageContent = z.union([
  z.string(),
  z.null(),
  z.array(ContentPart).superRefine((parts, ctx) => {
    parts.forEach((part, index) => {
      if (part.type !== "text") {
        ctx.addIssue({
          code: "custom",
          path: [index, "type"],
          message: `content parts of type "${part.type}" are not supported: this model reads text only`,
        });
      } else if (part.text === undefined) {
        ctx.addIssue({ code: "custom", path: [index, "text"], message: "a text part needs text" });
      }
    });
  }),
]);

const Message = z
  .object({
    role: z.enum(["system", "developer", "user", "assistant", "tool", "function"]),
    content: MessageContent.optional(),
    tool_calls: z.array(HistoryToolCall).max(128).nullable().optional(),
    tool_call_id: z.string().min(1).max(256).optional(),
    function_call: refused(
      "the legacy function_call is not supported: send the call as tool_calls",
    ),
    audio: refused("audio is not supported: this model reads text only"),
  })
  .superRefine((message, ctx) => {
    if (message.role === "function")
      ctx.addIssue({
        code: "custom",
        path: ["role"],
        message: 'the legacy "function" role is not supported: answer tool calls with role "tool"',
      });
    if (message.role === "tool" && message.tool_call_id === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["tool_call_id"],
        message: "a tool message names the call it answers in tool_call_id",
      });
    if (message.tool_calls?.length && message.role !== "assistant")
      ctx.addIssue({
        code: "custom",
        path: ["tool_calls"],
        message: "only assistant messages carry tool_calls",
      });
  });
export type ChatMessage = z.infer<typeof Message>;

const Stop = z
  .union([z.string(), z.array(z.string()).max(4)])
  .nullable()
  .optional()
  .transform((stop) => (stop == null ? [] : typeof stop === "string" ? [stop] : stop))
  .transform((stop) => stop.filter((sequence) => sequence.length > 0));

const Sampling = {
  model: z.string().optional(),
  max_tokens: z.int().positive().nullable().optional(),
  max_completion_tokens: z.int().positive().nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  seed: z.int().nullable().optional(),
  stop: Stop,
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  n: z.literal(1, { error: "only n = 1 is supported" }).nullable().optional(),
  ...SHARED_FIELDS,
};

export const ChatRequest = z.object({
  ...Sampling,
  ...CHAT_FIELDS,
  messages: z.array(Message).min(1, "messages must hold at least one message"),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

export const CompletionRequest = z.object({
  ...Sampling,
  ...COMPLETION_FIELDS,
  prompt: z.union([
    z.string(),
    z.array(z.string()).length(1, "only one prompt per request is supported"),
  ]),
  echo: z.boolean().nullable().optional(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

export const EmbeddingRequest = z.object({
  model: z.string().optional(),
  input: z.union([
    z.string(),
    z.array(z.string()).min(1, "input must not be an empty list").max(2048),
  ]),
  // The official SDKs ask for base64 unless told otherwise, and decode it themselves.
  encoding_format: z
    .enum(["float", "base64"], { error: 'encoding_format must be "float" or "base64"' })
    .nullable()
    .optional(),
  // Checked against the model's embedding size once the model is known (server.ts).
  dimensions: z.int().positive().nullable().optional(),
});
export type EmbeddingRequest = z.infer<typeof EmbeddingRequest>;

/**
 * What an answer must be: free text, any JSON object, or JSON that matches `schema` (a JSON
 * Schema). The engine holds generation to it with a grammar; `strict` refuses schema keywords
 * a grammar cannot enforce instead of leaving them to the model.
 */
export type OutputFormat =
  | { readonly type: "text" }
  | { readonly type: "json_object" }
  | { readonly type: "json_schema"; readonly schema: unknown; readonly strict?: boolean };

/** A function the model may call: its parameters are a JSON Schema of an object. */
export interface ToolFunction {
  readonly name: string;
  readonly description?: string;
  readonly parameters?: unknown;
  readonly strict?: boolean;
}

/** Whether the model may call (`auto`), must call (`required`, a named one), or must not. */
export type ToolChoice = "none" | "auto" | "required" | { readonly name: string };

/** The tools of a request, in the engine's terms. */
export interface ToolUse {
  readonly functions: readonly ToolFunction[];
  readonly choice: ToolChoice;
}

/** Generation settings common to chat and completions, in the engine's terms. */
export interface Sampling {
  /** Free text when absent. */
  readonly format?: OutputFormat;
  /** Tools the model may call (chat only); none when absent. */
  readonly tools?: ToolUse;
  readonly maxTokens: number | undefined;
  readonly temperature: number;
  readonly topP: number | undefined;
  readonly seed: number | undefined;
  readonly stop: readonly string[];
  readonly topK?: number;
  readonly minP?: number;
  /** OpenAI's penalties, -2 to 2, over the last 64 generated tokens. */
  readonly presencePenalty?: number;
  readonly frequencyPenalty?: number;
  /** llama.cpp's multiplicative repeat penalty (1 = none). */
  readonly repeatPenalty?: number;
  /** Token id and the bias added to its logit (-100 to 100), as OpenAI's logit_bias. */
  readonly logitBias?: readonly (readonly [token: number, bias: number])[];
}

/** llama.cpp's own default temperature, used when a client sends none. */
const DEFAULT_TEMPERATURE = 0.8;

/** `response_format` in the engine's terms; free text needs none. */
export const outputFormatOf = (
  format: ResponseFormat | null | undefined,
): OutputFormat | undefined => {
  if (!format || format.type === "text") return undefined;
  if (format.type === "json_object" || format.json_schema.schema === undefined)
    return { type: "json_object" };
  return {
    type: "json_schema",
    schema: format.json_schema.schema,
    ...(format.json_schema.strict ? { strict: true } : {}),
  };
};

export const samplingOf = (request: ChatRequest | CompletionRequest): Sampling => {
  const format = outputFormatOf(request.response_format);
  return {
    maxTokens: request.max_completion_tokens ?? request.max_tokens ?? undefined,
    temperature: request.temperature ?? DEFAULT_TEMPERATURE,
    topP: request.top_p ?? undefined,
    seed: request.seed ?? undefined,
    stop: request.stop,
    ...(request.top_k == null ? {} : { topK: request.top_k }),
    ...(request.min_p == null ? {} : { minP: request.min_p }),
    ...(request.presence_penalty == null ? {} : { presencePenalty: request.presence_penalty }),
    ...(request.frequency_penalty == null ? {} : { frequencyPenalty: request.frequency_penalty }),
    ...(request.repeat_penalty == null ? {} : { repeatPenalty: request.repeat_penalty }),
    ...(request.logit_bias && Object.keys(request.logit_bias).length > 0
      ? {
          logitBias: Object.entries(request.logit_bias).map(
            ([token, bias]) => [Number(token), bias] as const,
          ),
        }
      : {}),
    ...(format ? { format } : {}),
  };
};

/** Flattens OpenAI message content (string or text parts) to plain text. */
export const textOf = (content: ChatMessage["content"]): string => {
  if (content == null) return "";
  if (typeof content === "string") return content;
  return content.map((part) => part.text ?? "").join("");
};
