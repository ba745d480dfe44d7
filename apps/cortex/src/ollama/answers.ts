import { doneReasonOf, durationsOf, type Timing, type TokenUsage, usageOf } from "./durations.js";
import { type AnsweredToolCall, StreamedToolCalls, toOllamaToolCalls } from "./tool-calls.js";

// OpenAI answers (whole or streamed) into Ollama's: the answer's kind (a chat completion or a
// text completion) and the Ollama shape (chat's `message` or generate's `response`) vary
// independently, since `/api/generate` is served by either OpenAI route. Pure.

/** Which OpenAI answer comes back: `/v1/chat/completions` or `/v1/completions`. */
export type AnswerSource = "chat" | "completion";

/** What one piece of an answer holds, whichever API it came from. */
export interface Pieces {
  readonly text: string;
  readonly thinking: string;
  readonly toolCalls: readonly AnsweredToolCall[];
}

/** The Ollama fields for a piece of the answer: `{message: …}` or `{response: …}`. */
export type AnswerShape = (pieces: Pieces) => Record<string, unknown>;

const own = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null && Object.hasOwn(value, key)
    ? (value as Record<string, unknown>)[key]
    : undefined;

const text = (value: unknown): string => (typeof value === "string" ? value : "");

/** The first choice of an answer or chunk (cortex asks for one). */
const firstChoice = (answer: unknown): unknown => {
  const choices = own(answer, "choices");
  return Array.isArray(choices) ? choices[0] : undefined;
};

/** The text, thinking and raw tool calls of a whole answer's choice or a chunk's. */
const partsOf = (
  choice: unknown,
  source: AnswerSource,
  key: "message" | "delta",
): { text: string; thinking: string; toolCalls: unknown } => {
  if (source === "completion")
    return { text: text(own(choice, "text")), thinking: "", toolCalls: [] };
  const message = own(choice, key);
  return {
    text: text(own(message, "content")),
    // llama.cpp's server (and vLLM) answer a reasoning model's thinking in its own field.
    thinking: text(own(message, "reasoning_content")),
    toolCalls: own(message, "tool_calls"),
  };
};

/** What every Ollama answer line starts with. */
interface LineHead {
  readonly model: string;
  readonly createdAt: () => string;
}

/** Ollama's answer for a whole (non-streamed) OpenAI answer: one object, `done: true`. */
export const wholeAnswer = (
  answer: unknown,
  options: LineHead & { source: AnswerSource; shape: AnswerShape; timing: Timing },
): Record<string, unknown> => {
  const choice = firstChoice(answer);
  const parts = partsOf(choice, options.source, "message");
  return {
    model: options.model,
    created_at: options.createdAt(),
    ...options.shape({
      text: parts.text,
      thinking: parts.thinking,
      toolCalls: toOllamaToolCalls(parts.toolCalls),
    }),
    done: true,
    done_reason: doneReasonOf(own(choice, "finish_reason")),
    ...durationsOf(options.timing, usageOf(answer)),
  };
};

/**
 * Turns a streamed OpenAI answer, chunk by chunk, into Ollama's NDJSON lines: one line per
 * chunk with text or thinking, the tool calls whole in one line at the end, then the final line
 * with `done: true`, the reason and the numbers.
 */
export class AnswerStream {
  readonly #head: LineHead;
  readonly #source: AnswerSource;
  readonly #shape: AnswerShape;
  readonly #toolCalls = new StreamedToolCalls();
  #finishReason: unknown = null;
  #usage: TokenUsage | null = null;
  #firstTokenMs: number | null = null;

  constructor(options: LineHead & { source: AnswerSource; shape: AnswerShape }) {
    this.#head = options;
    this.#source = options.source;
    this.#shape = options.shape;
  }

  /** When the first token (text, thinking or a tool call) arrived; null before. */
  get firstTokenMs(): number | null {
    return this.#firstTokenMs;
  }

  /** Whether a chunk said why the answer finished (its last content chunk has come). */
  get finished(): boolean {
    return this.#finishReason !== null;
  }

  /** The lines for one chunk (`data:` of the stream, parsed), which arrived at `atMs`. */
  push(chunk: unknown, atMs: number): Record<string, unknown>[] {
    this.#usage = usageOf(chunk) ?? this.#usage;
    const choice = firstChoice(chunk);
    if (choice === undefined) return [];
    const finish = own(choice, "finish_reason");
    if (finish !== null && finish !== undefined) this.#finishReason = finish;
    const parts = partsOf(choice, this.#source, "delta");
    this.#toolCalls.push(parts.toolCalls);
    const token = parts.text !== "" || parts.thinking !== "" || this.#toolCalls.any;
    if (token) this.#firstTokenMs ??= atMs;
    if (parts.text === "" && parts.thinking === "") return [];
    return [this.#line(false, { text: parts.text, thinking: parts.thinking, toolCalls: [] })];
  }

  /** The last lines, once the stream said `[DONE]`: the tool calls, if any, and `done: true`. */
  end(timing: Omit<Timing, "firstTokenMs">): Record<string, unknown>[] {
    const lines: Record<string, unknown>[] = [];
    if (this.#toolCalls.any)
      lines.push(this.#line(false, { text: "", thinking: "", toolCalls: this.#toolCalls.calls() }));
    lines.push({
      ...this.#line(true, { text: "", thinking: "", toolCalls: [] }),
      done_reason: doneReasonOf(this.#finishReason),
      ...durationsOf({ ...timing, firstTokenMs: this.#firstTokenMs }, this.#usage),
    });
    return lines;
  }

  #line(done: boolean, pieces: Pieces): Record<string, unknown> {
    return {
      model: this.#head.model,
      created_at: this.#head.createdAt(),
      ...this.#shape(pieces),
      done,
    };
  }
}
