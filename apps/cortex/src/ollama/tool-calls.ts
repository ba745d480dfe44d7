import { z } from "zod";
import { CortexError } from "../errors.js";

// Tool calls both ways: Ollama's `{function: {name, arguments: {…}}}` (arguments an object, no
// id needed) and OpenAI's `{id, type: "function", function: {name, arguments: "<json>"}}`
// (arguments a JSON string, streamed in fragments). Pure.

/** Tool calls one message may carry, at most. */
const MAX_CALLS = 256;
/** Characters of arguments one streamed answer may accumulate, at most. */
const MAX_ARGUMENT_CHARS = 16 * 2 ** 20;

/** A tool call in an Ollama message (a conversation's history). */
export const OllamaToolCall = z.object({
  id: z.string().max(256).optional(),
  function: z.object({
    index: z.int().optional(),
    name: z.string().min(1).max(256),
    // An object as Ollama sends it; a JSON string as some clients copy it from OpenAI.
    // Kept as sent (not rebuilt key by key), to be serialised again.
    arguments: z
      .unknown()
      .refine(
        (value) =>
          value === undefined ||
          value === null ||
          typeof value === "string" ||
          (typeof value === "object" && !Array.isArray(value)),
        "arguments must be an object",
      )
      .optional(),
  }),
});
export type OllamaToolCall = z.output<typeof OllamaToolCall>;

export const OllamaToolCalls = z.array(OllamaToolCall).max(MAX_CALLS);

/** A tool call as Ollama answers it. */
export interface AnsweredToolCall {
  id?: string;
  function: { index: number; name: string; arguments: Record<string, unknown> };
}

/** An OpenAI assistant message's tool call. */
export interface OpenAIToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** Ollama's calls in OpenAI's form; `idOf` names those that came without an id. */
export const toOpenAIToolCalls = (
  calls: readonly OllamaToolCall[],
  idOf: (index: number) => string,
): OpenAIToolCall[] =>
  calls.map((call, index) => ({
    id: call.id ?? idOf(index),
    type: "function",
    function: {
      name: call.function.name,
      arguments:
        typeof call.function.arguments === "string"
          ? call.function.arguments
          : JSON.stringify(call.function.arguments ?? {}),
    },
  }));

const own = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null && Object.hasOwn(value, key)
    ? (value as Record<string, unknown>)[key]
    : undefined;

/** A model's arguments text as the object Ollama's clients read; 502 when it is not one. */
export const argumentsObject = (text: unknown, name: string): Record<string, unknown> => {
  if (text === undefined || text === null || text === "") return {};
  if (typeof text === "object" && !Array.isArray(text)) return text as Record<string, unknown>;
  let parsed: unknown;
  try {
    parsed = typeof text === "string" ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new CortexError(
      "upstream_error",
      `the model called tool "${name}" with arguments that are not a JSON object`,
    );
  return parsed as Record<string, unknown>;
};

/** An OpenAI answer's `tool_calls` in Ollama's form (a whole, non-streamed message). */
export const toOllamaToolCalls = (calls: unknown): AnsweredToolCall[] => {
  if (!Array.isArray(calls)) return [];
  return calls.slice(0, MAX_CALLS).map((call, index) => {
    const fn = own(call, "function");
    const name = own(fn, "name");
    const id = own(call, "id");
    const answered: AnsweredToolCall = {
      function: {
        index,
        name: typeof name === "string" ? name : "",
        arguments: argumentsObject(own(fn, "arguments"), typeof name === "string" ? name : ""),
      },
    };
    if (typeof id === "string") answered.id = id;
    return answered;
  });
};

/**
 * The tool calls of a streamed OpenAI answer, put together from their fragments (by `index`):
 * Ollama sends each call whole, so they go out once the answer is complete.
 */
export class StreamedToolCalls {
  readonly #calls: { id: string | undefined; name: string; text: string }[] = [];
  #chars = 0;

  get any(): boolean {
    return this.#calls.length > 0;
  }

  /** One chunk's `delta.tool_calls`. */
  push(deltas: unknown): void {
    if (!Array.isArray(deltas)) return;
    for (const delta of deltas) {
      const at = own(delta, "index");
      const index = typeof at === "number" && Number.isSafeInteger(at) ? at : this.#calls.length;
      if (index < 0 || index >= MAX_CALLS)
        throw new CortexError("upstream_error", `the answer has more than ${MAX_CALLS} tool calls`);
      while (this.#calls.length <= index) this.#calls.push({ id: undefined, name: "", text: "" });
      const call = this.#calls[index] as { id: string | undefined; name: string; text: string };
      const id = own(delta, "id");
      if (typeof id === "string" && id !== "") call.id = id;
      const fn = own(delta, "function");
      const name = own(fn, "name");
      if (typeof name === "string") call.name += name;
      const text = own(fn, "arguments");
      if (typeof text === "string") {
        this.#chars += text.length + (typeof name === "string" ? name.length : 0);
        if (this.#chars > MAX_ARGUMENT_CHARS)
          throw new CortexError("upstream_error", "the answer's tool calls are too long");
        call.text += text;
      }
    }
  }

  /** The calls, whole, in Ollama's form. */
  calls(): AnsweredToolCall[] {
    return this.#calls.map((call, index) => {
      const answered: AnsweredToolCall = {
        function: { index, name: call.name, arguments: argumentsObject(call.text, call.name) },
      };
      if (call.id !== undefined) answered.id = call.id;
      return answered;
    });
  }
}
