import { ApiError } from "@cortex/http-kit";
import type { ChatTurn, TurnToolCall } from "./engine.js";
import { type ChatMessage, type ChatRequest, type ToolUse, textOf } from "./requests.js";

// What a chat request asks of the engine beyond sampling: its messages as turns (tool calls and
// their results paired up, as node-llama-cpp's history holds them) and its tools.

const ROLE = {
  system: "system",
  developer: "system",
  user: "user",
  assistant: "assistant",
  tool: "tool",
} as const satisfies Record<Exclude<ChatMessage["role"], "function">, ChatTurn["role"]>;

/** A call's arguments as the model will see them again: JSON when they parse, else the text. */
const argumentsOf = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

const unanswered = (index: number, open: ReadonlyMap<string, number>): ApiError =>
  new ApiError(
    "invalid_request_error",
    `messages[${index}]: an assistant message with tool_calls must be followed by tool messages answering each call; no tool message answers ${[
      ...open.keys(),
    ]
      .map((id) => JSON.stringify(id.slice(0, 64)))
      .join(", ")}`,
    { param: `messages[${index}]` },
  );

/**
 * The messages as turns. Each assistant message's tool calls must be answered, by id, by the
 * tool messages that follow it, before any other message, as OpenAI requires; a tool message
 * answers a call of the assistant message just before its block.
 */
export const chatTurnsOf = (messages: readonly ChatMessage[]): ChatTurn[] => {
  const turns: ChatTurn[] = [];
  // Calls of the last assistant message not answered yet: id → that message's index.
  let open = new Map<string, number>();
  messages.forEach((message, index) => {
    if (message.role === "function") throw new Error("refused by the request schema");
    const text = textOf(message.content);
    if (message.role === "tool") {
      const id = message.tool_call_id ?? "";
      if (!open.has(id))
        throw new ApiError(
          "invalid_request_error",
          `messages[${index}].tool_call_id: ${JSON.stringify(id.slice(0, 64))} answers no tool call of the assistant message before it`,
          { param: `messages[${index}].tool_call_id` },
        );
      open.delete(id);
      turns.push({ role: "tool", text, toolCallId: id });
      return;
    }
    const first = open.values().next();
    if (!first.done) throw unanswered(first.value, open);
    const calls = message.tool_calls ?? [];
    if (message.role !== "assistant" || calls.length === 0) {
      turns.push({ role: ROLE[message.role], text });
      return;
    }
    open = new Map();
    const toolCalls: TurnToolCall[] = calls.map((call, at) => {
      if (open.has(call.id))
        throw new ApiError(
          "invalid_request_error",
          `messages[${index}].tool_calls[${at}].id: two calls of one message share an id`,
          { param: `messages[${index}].tool_calls[${at}].id` },
        );
      open.set(call.id, index);
      return {
        id: call.id,
        name: call.function.name,
        arguments: argumentsOf(call.function.arguments),
      };
    });
    turns.push({ role: "assistant", text, toolCalls });
  });
  const first = open.values().next();
  if (!first.done) throw unanswered(first.value, open);
  return turns;
};

/**
 * The request's tools and tool choice; undefined when it has none. OpenAI's defaults: `auto`
 * with tools, `none` without; `required` or a named function needs tools to call.
 */
export const toolUseOf = (request: ChatRequest): ToolUse | undefined => {
  const tools = request.tools ?? [];
  const choice = request.tool_choice ?? (tools.length > 0 ? "auto" : "none");
  const named = typeof choice === "object" ? choice.function.name : undefined;
  if (named !== undefined && !tools.some((tool) => tool.function.name === named))
    throw new ApiError(
      "invalid_request_error",
      `tool_choice names ${named}, which is not one of the request's tools`,
      { param: "tool_choice" },
    );
  if (choice === "required" && tools.length === 0)
    throw new ApiError("invalid_request_error", 'tool_choice "required" needs tools to call', {
      param: "tool_choice",
    });
  if (tools.length === 0 || choice === "none") return undefined;
  return {
    functions: tools.map(({ function: fn }) => ({
      name: fn.name,
      ...(fn.description ? { description: fn.description } : {}),
      ...(fn.parameters ? { parameters: fn.parameters } : {}),
      ...(fn.strict ? { strict: true } : {}),
    })),
    choice: named === undefined ? (choice as "auto" | "required") : { name: named },
  };
};
