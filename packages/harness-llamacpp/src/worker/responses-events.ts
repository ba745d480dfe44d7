import { randomBytes } from "node:crypto";
import type { Generation } from "./engine.js";
import { type NamedEventStream, STREAM_FAILURE } from "./named-events.js";
import type { ResponsesRequest, TextFormat } from "./responses-request.js";

// The Responses API's answer shapes, as the official SDK types (openai's Response and
// ResponseStreamEvent) describe them: one Response object, whole or as a stream of events that
// build it (created, in_progress, the message item and its one text part, text deltas, their
// done events, then completed or incomplete). The tests hold them to those types.

export type ResponseStatus = "in_progress" | "completed" | "incomplete" | "failed";

/** Ids as OpenAI spells them (`resp_…`, `msg_…`); random, so answers never collide. */
export const responseId = (prefix: "resp" | "msg"): string =>
  `${prefix}_${randomBytes(24).toString("hex")}`;

/** What a Response repeats of its request, and the values the worker used where none was sent. */
export interface ResponseEcho {
  readonly id: string;
  readonly createdAt: number;
  readonly model: string;
  readonly instructions: string | null;
  readonly maxOutputTokens: number | null;
  readonly temperature: number;
  readonly topP: number;
  readonly format: TextFormat;
  readonly metadata: Readonly<Record<string, string>>;
  readonly parallelToolCalls: boolean;
}

/** The echo of one request, with its id and creation time fixed once for every event. */
export const echoOf = (
  request: ResponsesRequest,
  model: string,
  temperature: number,
  now: number,
): ResponseEcho => ({
  id: responseId("resp"),
  createdAt: now,
  model,
  instructions: request.instructions ?? null,
  maxOutputTokens: request.max_output_tokens ?? null,
  temperature,
  // No top_p means llama.cpp does not apply one: all of the distribution, as top_p 1.
  topP: request.top_p ?? 1,
  format: request.text?.format ?? { type: "text" },
  metadata: request.metadata ?? {},
  parallelToolCalls: request.parallel_tool_calls ?? true,
});

/** Real token counts; `cached_tokens` are the prompt tokens the slot already held. */
export const responseUsage = (generation: Generation) => ({
  input_tokens: generation.promptTokens,
  input_tokens_details: { cached_tokens: generation.cachedTokens },
  output_tokens: generation.completionTokens,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: generation.promptTokens + generation.completionTokens,
});
export type ResponseUsage = ReturnType<typeof responseUsage>;

/** The text part of the message; no annotations or logprobs are computed. */
export const outputText = (text: string) => ({
  type: "output_text" as const,
  text,
  annotations: [] as never[],
  logprobs: [] as never[],
});

/** The one output item: the assistant's message, with its text part once there is one. */
export const outputMessage = (id: string, status: ResponseStatus, text: string | undefined) => ({
  type: "message" as const,
  id,
  status: status === "failed" ? ("incomplete" as const) : status,
  role: "assistant" as const,
  content: text === undefined ? [] : [outputText(text)],
});
export type OutputMessage = ReturnType<typeof outputMessage>;

/** `usage` is null until generation ends (in response.created and the like), as OpenAI sends it. */
export const responseObject = <U extends ResponseUsage | null>(
  echo: ResponseEcho,
  status: ResponseStatus,
  output: readonly OutputMessage[],
  usage: U,
  error: { code: "server_error"; message: string } | null = null,
) => ({
  id: echo.id,
  object: "response" as const,
  created_at: echo.createdAt,
  status,
  background: false,
  error,
  incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" as const } : null,
  instructions: echo.instructions,
  max_output_tokens: echo.maxOutputTokens,
  model: echo.model,
  output: [...output],
  parallel_tool_calls: echo.parallelToolCalls,
  previous_response_id: null,
  reasoning: { effort: null, summary: null },
  store: false,
  temperature: echo.temperature,
  text: { format: echo.format },
  tool_choice: "auto" as const,
  tools: [] as never[],
  top_p: echo.topP,
  truncation: "disabled" as const,
  usage,
  metadata: { ...echo.metadata },
});

/** A length cut is `incomplete` (for max_output_tokens), as OpenAI reports it. */
export const statusOf = (generation: Generation): "completed" | "incomplete" =>
  generation.finishReason === "length" ? "incomplete" : "completed";

/** The non-streamed answer. */
export const finishedResponse = (echo: ResponseEcho, generation: Generation) => {
  const status = statusOf(generation);
  const message = outputMessage(responseId("msg"), status, generation.text);
  return responseObject(echo, status, [message], responseUsage(generation));
};

/**
 * Writes one Response as its event stream, numbering events in order. Opens lazily with the
 * first text (or at the end, for an empty answer), so errors before any token stay JSON.
 */
export class ResponseEventWriter {
  readonly #stream: NamedEventStream;
  readonly #echo: ResponseEcho;
  readonly #itemId = responseId("msg");
  #sequence = 0;
  #text = "";

  constructor(stream: NamedEventStream, echo: ResponseEcho) {
    this.#stream = stream;
    this.#echo = echo;
  }

  #send(type: string, fields: Record<string, unknown>): void {
    this.#stream.send(type, { type, sequence_number: this.#sequence++, ...fields });
  }

  #where() {
    return { item_id: this.#itemId, output_index: 0, content_index: 0 };
  }

  #open(): void {
    if (this.#stream.started) return;
    const response = responseObject(this.#echo, "in_progress", [], null);
    this.#send("response.created", { response });
    this.#send("response.in_progress", { response });
    this.#send("response.output_item.added", {
      output_index: 0,
      item: outputMessage(this.#itemId, "in_progress", undefined),
    });
    this.#send("response.content_part.added", { ...this.#where(), part: outputText("") });
  }

  delta(text: string): void {
    this.#open();
    this.#text += text;
    this.#send("response.output_text.delta", { ...this.#where(), delta: text, logprobs: [] });
  }

  /** The done events, then `response.completed` (or `response.incomplete`) with usage. */
  finish(generation: Generation): void {
    this.#open();
    const status = statusOf(generation);
    const message = outputMessage(this.#itemId, status, this.#text);
    this.#send("response.output_text.done", { ...this.#where(), text: this.#text, logprobs: [] });
    this.#send("response.content_part.done", { ...this.#where(), part: outputText(this.#text) });
    this.#send("response.output_item.done", { output_index: 0, item: message });
    this.#send(`response.${status}`, {
      response: responseObject(this.#echo, status, [message], responseUsage(generation)),
    });
    this.#stream.end();
  }

  /** An `error` event, then `response.failed` with what was generated so far. */
  fail(): void {
    const error = { code: "server_error" as const, message: STREAM_FAILURE };
    this.#send("error", { ...error, param: null });
    const message = outputMessage(this.#itemId, "failed", this.#text);
    this.#send("response.failed", {
      response: responseObject(this.#echo, "failed", [message], null, error),
    });
    this.#stream.end();
  }
}
