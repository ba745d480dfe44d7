import { z } from "zod";
import type { ChatTurn } from "./engine.js";
import type { Sampling } from "./requests.js";
import { DEFAULT_TEMPERATURE, refusedWhen, stringOrList, textPart } from "./schema-helpers.js";

// The bodies of Anthropic's `POST /v1/messages` and `/v1/messages/count_tokens` as this harness
// serves them: text content blocks only. Blocks of other types (images, documents, tool use and
// results, thinking) and `tools` are refused with a 400 naming them. Fields that change nothing
// here (metadata, anthropic-specific hints) pass unread.

/** Messages per request. */
export const MAX_MESSAGES = 4096;
/** Content blocks per message, and in `system`. */
export const MAX_BLOCKS = 256;
/** Stop sequences per request. */
export const MAX_STOP_SEQUENCES = 16;
/** Characters per stop sequence: each is matched against every token generated. */
export const MAX_STOP_CHARS = 1024;

const Block = textPart(["text"], "content blocks");
const Blocks = z.array(Block).max(MAX_BLOCKS, `at most ${MAX_BLOCKS} content blocks`);

const Message = z.object({
  role: z.enum(["user", "assistant"], { error: 'role must be "user" or "assistant"' }),
  content: stringOrList(Blocks, "content"),
});

/** What both routes read: the conversation, as count_tokens must count what messages would. */
const Conversation = {
  model: z.string().optional(),
  messages: z
    .array(Message)
    .min(1, "messages must hold at least one message")
    .max(MAX_MESSAGES, `messages holds at most ${MAX_MESSAGES} messages`),
  system: stringOrList(Blocks, "system").optional(),
  tools: refusedWhen(
    z.array(z.unknown()).nullable().optional(),
    (tools) => (tools?.length ?? 0) > 0,
    "tools are not supported by the built-in llama.cpp harness: leave them out, or serve the model with a harness that has them (llama-server, vLLM)",
  ),
};

/** count_tokens takes the conversation only: no max_tokens or sampling settings. */
export const CountTokensRequest = z.object(Conversation);
export type CountTokensRequest = z.infer<typeof CountTokensRequest>;

/** The request body; parseBody turns its issues into a 400 naming the first field. */
export const MessagesRequest = z.object({
  ...Conversation,
  max_tokens: z.int({ error: "max_tokens is required: a positive integer" }).positive(),
  stop_sequences: z
    .array(
      z.string().max(MAX_STOP_CHARS, `a stop sequence holds at most ${MAX_STOP_CHARS} characters`),
    )
    .max(MAX_STOP_SEQUENCES, `at most ${MAX_STOP_SEQUENCES} stop sequences`)
    .nullable()
    .optional()
    .transform((stops) => (stops ?? []).filter((stop) => stop.length > 0)),
  temperature: z.number().min(0).max(1).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  top_k: z.int().positive().nullable().optional(),
  stream: z.boolean().nullable().optional(),
});
export type MessagesRequest = z.infer<typeof MessagesRequest>;

/**
 * Blocks are paragraphs in Anthropic's API (a system prompt often comes as several), so they
 * are joined by a blank line rather than run together.
 */
const textOfBlocks = (content: string | readonly { text: string }[]): string =>
  typeof content === "string" ? content : content.map((block) => block.text).join("\n\n");

/**
 * `system` first, then the messages. A last assistant message is a prefill: the engine continues
 * it, as Anthropic's API does.
 */
export const turnsOfMessages = (request: CountTokensRequest): ChatTurn[] => {
  const system = request.system === undefined ? "" : textOfBlocks(request.system);
  return [
    ...(system ? [{ role: "system" as const, text: system }] : []),
    ...request.messages.map((message) => ({
      role: message.role,
      text: textOfBlocks(message.content),
    })),
  ];
};

/** Generation settings in the engine's terms; Anthropic's API has no seed. */
export const samplingOfMessages = (request: MessagesRequest): Sampling => ({
  maxTokens: request.max_tokens,
  temperature: request.temperature ?? DEFAULT_TEMPERATURE,
  topP: request.top_p ?? undefined,
  ...(request.top_k == null ? {} : { topK: request.top_k }),
  seed: undefined,
  stop: request.stop_sequences,
});
