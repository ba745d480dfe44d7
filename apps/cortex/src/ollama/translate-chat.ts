import { parseBody } from "@cortex/http-kit";
import { z } from "zod";
import { CortexError } from "../errors.js";
import type { AnswerShape } from "./answers.js";
import {
  ignoredFields,
  KeepAlive,
  loadOrUnload,
  mapOptions,
  OllamaModelName,
  type RequestPlan,
  responseFormatOf,
} from "./options.js";
import { type OllamaToolCall, OllamaToolCalls, toOpenAIToolCalls } from "./tool-calls.js";

// `POST /api/chat` → `POST /v1/chat/completions`, and the shape of its answer. Pure.

/** Messages one conversation may hold, at most (the body's size bounds them first). */
const MAX_MESSAGES = 100_000;
/** Tools one request may declare, at most. */
const MAX_TOOLS = 1024;

const OllamaMessage = z.object({
  role: z.enum(["system", "user", "assistant", "tool"]),
  content: z.string().nullable().optional(),
  images: z.array(z.unknown()).nullable().optional(),
  thinking: z.string().nullable().optional(),
  tool_calls: OllamaToolCalls.nullable().optional(),
  tool_name: z.string().max(256).nullable().optional(),
  tool_call_id: z.string().max(256).nullable().optional(),
});
type OllamaMessage = z.output<typeof OllamaMessage>;

/** A tool as OpenAI declares it (which is Ollama's form too): passed on as sent. */
const Tool = z.unknown().superRefine((tool, ctx) => {
  const fn =
    typeof tool === "object" && tool !== null && Object.hasOwn(tool, "function")
      ? (tool as { function: unknown }).function
      : undefined;
  const name =
    typeof fn === "object" && fn !== null && Object.hasOwn(fn, "name")
      ? (fn as { name: unknown }).name
      : undefined;
  if (
    typeof tool !== "object" ||
    tool === null ||
    Array.isArray(tool) ||
    (tool as { type?: unknown }).type !== "function" ||
    typeof name !== "string" ||
    name === ""
  )
    ctx.addIssue({
      code: "custom",
      message: 'a tool must be {"type": "function", "function": {"name": …}}',
    });
});

export const OllamaChatRequest = z.object({
  model: OllamaModelName,
  messages: z.array(OllamaMessage).max(MAX_MESSAGES).nullable().optional(),
  tools: z.array(Tool).max(MAX_TOOLS).nullable().optional(),
  format: z.unknown().optional(),
  options: z.unknown().optional(),
  stream: z.boolean().nullable().optional(),
  keep_alive: KeepAlive,
  think: z
    .union([z.boolean(), z.enum(["high", "medium", "low"])])
    .nullable()
    .optional(),
});

/** The fields cortex accepts and does not act on (named in a debug line when sent). */
const IGNORED = ["keep_alive", "think", "logprobs", "top_logprobs"] as const;

/** Takes the pending call a tool answer is for: the one named `name`, else the oldest. */
const takeCall = (
  pending: { id: string; name: string }[],
  name: string | null | undefined,
): string | undefined => {
  const at = name ? pending.findIndex((call) => call.name === name) : 0;
  const [call] = pending.splice(Math.max(at, 0), 1);
  return call?.id;
};

/**
 * Ollama's messages in OpenAI's form. Ollama's history names no call ids: calls get
 * `call_<message>_<n>`, and a `tool` message answers the pending call of its `tool_name` (else
 * the oldest pending one), unless it says its `tool_call_id`. Images are refused.
 */
const toOpenAIMessages = (messages: readonly OllamaMessage[]): Record<string, unknown>[] => {
  let pending: { id: string; name: string }[] = [];
  return messages.map((message, index) => {
    if (message.images && message.images.length > 0)
      throw new CortexError(
        "invalid_request_error",
        `messages[${index}].images: images are not supported by cortex's Ollama API: send text`,
        { param: `messages[${index}].images` },
      );
    const content = message.content ?? "";
    if (message.role === "assistant") {
      const given: readonly OllamaToolCall[] = message.tool_calls ?? [];
      const calls = toOpenAIToolCalls(given, (n) => `call_${index}_${n}`);
      pending = calls.map((call) => ({ id: call.id, name: call.function.name }));
      return calls.length > 0
        ? { role: "assistant", content, tool_calls: calls }
        : { role: "assistant", content };
    }
    if (message.role === "tool")
      return {
        role: "tool",
        content,
        tool_call_id:
          message.tool_call_id ?? takeCall(pending, message.tool_name) ?? `call_${index}`,
      };
    return { role: message.role, content };
  });
};

/**
 * What `POST /api/chat` asks for. No messages: load the model (or unload it with `keep_alive:
 * 0`). Otherwise `/v1/chat/completions` with the messages, the tools as sent, `format` as
 * `response_format`, the mapped options; streamed (Ollama's default) with usage asked for.
 * `resolve` turns the model's name into the one cortex knows (`name:latest` → `name`).
 */
export const chatPlan = (raw: unknown, resolve: (name: string) => string): RequestPlan => {
  const request = parseBody(OllamaChatRequest, raw);
  const body = raw as Record<string, unknown>;
  const stream = request.stream ?? true;
  const model = resolve(request.model);
  const messages = request.messages ?? [];
  if (messages.length === 0) return loadOrUnload(model, request.keep_alive, stream);
  const options = mapOptions(request.options);
  const format = responseFormatOf(request.format);
  return {
    kind: "infer",
    model,
    path: "/v1/chat/completions",
    stream,
    ignored: ignoredFields(body, IGNORED, options),
    body: {
      model,
      messages: toOpenAIMessages(messages),
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
      ...options.fields,
      ...(request.tools && request.tools.length > 0 ? { tools: request.tools } : {}),
      ...(format ? { response_format: format } : {}),
    },
  };
};

/** Chat's answer lines: `message` with the text, thinking and tool calls. */
export const chatShape: AnswerShape = (pieces) => ({
  message: {
    role: "assistant",
    content: pieces.text,
    ...(pieces.thinking === "" ? {} : { thinking: pieces.thinking }),
    ...(pieces.toolCalls.length > 0 ? { tool_calls: pieces.toolCalls } : {}),
  },
});
