import { z } from "zod";

// OpenAI request bodies as the worker understands them. Objects are not strict: fields the
// worker does not use (tools, response_format, user, new parameters) are ignored, never an
// error, as an OpenAI-compatible server must. Fields it does use are type-checked.

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

const Message = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool", "function"]),
  content: MessageContent.optional(),
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
};

export const ChatRequest = z.object({
  ...Sampling,
  messages: z.array(Message).min(1, "messages must hold at least one message"),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

export const CompletionRequest = z.object({
  ...Sampling,
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
 * Schema). The engine holds generation to it with a grammar.
 */
export type OutputFormat =
  | { readonly type: "text" }
  | { readonly type: "json_object" }
  | { readonly type: "json_schema"; readonly schema: unknown };

/** Generation settings common to chat and completions, in the engine's terms. */
export interface Sampling {
  /** Free text when absent. */
  readonly format?: OutputFormat;
  readonly maxTokens: number | undefined;
  readonly temperature: number;
  readonly topP: number | undefined;
  readonly seed: number | undefined;
  readonly stop: readonly string[];
}

/** llama.cpp's own default temperature, used when a client sends none. */
const DEFAULT_TEMPERATURE = 0.8;

export const samplingOf = (request: ChatRequest | CompletionRequest): Sampling => ({
  maxTokens: request.max_completion_tokens ?? request.max_tokens ?? undefined,
  temperature: request.temperature ?? DEFAULT_TEMPERATURE,
  topP: request.top_p ?? undefined,
  seed: request.seed ?? undefined,
  stop: request.stop,
});

/** Flattens OpenAI message content (string or text parts) to plain text. */
export const textOf = (content: ChatMessage["content"]): string => {
  if (content == null) return "";
  if (typeof content === "string") return content;
  return content.map((part) => part.text ?? "").join("");
};
