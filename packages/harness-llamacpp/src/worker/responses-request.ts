import { z } from "zod";
import type { ChatTurn } from "./engine.js";
import type { OutputFormat, Sampling } from "./requests.js";
import {
  DEFAULT_TEMPERATURE,
  quoted,
  refusedWhen,
  stringOrList,
  textPart,
} from "./schema-helpers.js";

// The body of `POST /v1/responses` as this harness serves it: stateless text generation. What
// would need state kept between requests (store, previous_response_id, conversation,
// background) or abilities the harness lacks (tools, images, files) is refused with a 400 naming
// the field, never ignored: ignoring it would answer a different question than the one asked.
// Fields it does not use and that change nothing (user, metadata, reasoning, include, …) pass.

/** Input items per request; a whole conversation fits many times over. */
export const MAX_INPUT_ITEMS = 4096;
/** Content parts per input item. */
export const MAX_CONTENT_PARTS = 256;

const Part = textPart(["input_text", "output_text"], "content parts");

const MessageItem = z.object({
  type: z.literal("message").optional(),
  role: z.enum(["user", "system", "developer", "assistant"], {
    error: 'role must be "user", "system", "developer" or "assistant"',
  }),
  content: stringOrList(z.array(Part).max(MAX_CONTENT_PARTS), "content"),
});

/** A message item; items of other types (function calls, reasoning, references) are refused. */
const InputItem = z
  .looseObject({ type: z.unknown().optional() })
  .superRefine((item, ctx) => {
    if (item.type !== undefined && item.type !== "message")
      ctx.addIssue({
        code: "custom",
        path: ["type"],
        message: `input items of type ${quoted(item.type)} are not supported: this harness reads text messages only (no tool calls, files, images or item references)`,
      });
  })
  .pipe(MessageItem);

const TextFormat = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.literal("text") }),
    z.object({ type: z.literal("json_object") }),
    z.object({
      type: z.literal("json_schema"),
      name: z.string().min(1).max(64),
      schema: z.record(z.string(), z.unknown()),
      description: z.string().optional(),
      strict: z.boolean().nullable().optional(),
    }),
  ],
  { error: 'text.format.type must be "text", "json_object" or "json_schema"' },
);
/** `text.format` as sent, echoed back in the answer. */
export type TextFormat = z.infer<typeof TextFormat>;

const STATELESS =
  "this harness keeps no responses or conversations: send the whole conversation in input";

/** The request body; parseBody turns its issues into a 400 naming the first field. */
export const ResponsesRequest = z.object({
  model: z.string().optional(),
  input: stringOrList(
    z
      .array(InputItem)
      .min(1, "input must not be an empty list")
      .max(MAX_INPUT_ITEMS, `input holds at most ${MAX_INPUT_ITEMS} items`),
    "input",
  ),
  instructions: z.string().nullable().optional(),
  max_output_tokens: z.int().positive().nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  text: z.object({ format: TextFormat.optional() }).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  // OpenAI's own limits; the map is echoed in the answer.
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((metadata) => Object.keys(metadata).length <= 16, "metadata holds at most 16 keys")
    .nullable()
    .optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
  store: refusedWhen(
    z.boolean().nullable().optional(),
    (store) => store === true,
    `store: true is not supported: ${STATELESS} (leave store out, or send false)`,
  ),
  previous_response_id: refusedWhen(
    z.string().nullable().optional(),
    (id) => id != null,
    `previous_response_id is not supported: ${STATELESS}`,
  ),
  conversation: refusedWhen(
    z.unknown().optional(),
    (conversation) => conversation != null,
    `conversation is not supported: ${STATELESS}`,
  ),
  background: refusedWhen(
    z.boolean().nullable().optional(),
    (background) => background === true,
    "background: true is not supported: the answer is generated while the request waits",
  ),
  tools: refusedWhen(
    z.array(z.unknown()).nullable().optional(),
    (tools) => (tools?.length ?? 0) > 0,
    "tools are not supported by the built-in llama.cpp harness: leave them out, or serve the model with a harness that has them (llama-server, vLLM)",
  ),
});
export type ResponsesRequest = z.infer<typeof ResponsesRequest>;

const ROLE_OF = {
  user: "user",
  system: "system",
  developer: "system",
  assistant: "assistant",
} as const satisfies Record<string, ChatTurn["role"]>;

/** `instructions` first, as a system turn, then the input's messages in order. */
export const turnsOfResponse = (request: ResponsesRequest): ChatTurn[] => {
  const turns: ChatTurn[] = request.instructions
    ? [{ role: "system", text: request.instructions }]
    : [];
  if (typeof request.input === "string") return [...turns, { role: "user", text: request.input }];
  for (const item of request.input) {
    const text =
      typeof item.content === "string"
        ? item.content
        : item.content.map((part) => part.text).join("");
    turns.push({ role: ROLE_OF[item.role], text });
  }
  return turns;
};

/** `text.format` in the engine's terms; free text needs none. */
export const outputFormatOf = (format: TextFormat | undefined): OutputFormat | undefined => {
  if (format === undefined || format.type === "text") return undefined;
  if (format.type === "json_object") return { type: "json_object" };
  return { type: "json_schema", schema: format.schema, ...(format.strict ? { strict: true } : {}) };
};

/** Generation settings in the engine's terms; the Responses API has no stop or seed. */
export const samplingOfResponse = (request: ResponsesRequest): Sampling => {
  const format = outputFormatOf(request.text?.format);
  return {
    maxTokens: request.max_output_tokens ?? undefined,
    temperature: request.temperature ?? DEFAULT_TEMPERATURE,
    topP: request.top_p ?? undefined,
    seed: undefined,
    stop: [],
    ...(format ? { format } : {}),
  };
};
