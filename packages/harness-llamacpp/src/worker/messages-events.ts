import type { Generation } from "./engine.js";
import { type NamedEventStream, STREAM_FAILURE } from "./named-events.js";
import { responseId } from "./responses-events.js";

// Anthropic Messages answer shapes: one Message object, whole or as the event stream that
// builds it (message_start, one text content block's start/deltas/stop, message_delta with the
// stop reason and usage, message_stop). Usage follows Anthropic's meaning: `input_tokens` are
// the prompt tokens evaluated for this request, `cache_read_input_tokens` those the slot held
// already (together: the whole prompt, as count_tokens reports it).

export type StopReason = "end_turn" | "max_tokens" | "stop_sequence";

export interface MessageEnvelope {
  readonly id: string;
  readonly model: string;
}

/** The id (`msg_…`) and model name an answer and all its events share. */
export const messageEnvelope = (model: string): MessageEnvelope => ({
  id: responseId("msg"),
  model,
});

/**
 * Why generation ended, and which of the request's stop sequences ended it. The engine reports
 * the trigger as it matched it; the request's own spelling is answered when one equals it.
 */
export const stopOf = (
  generation: Generation,
  stops: readonly string[],
): { stop_reason: StopReason; stop_sequence: string | null } => {
  if (generation.finishReason === "length")
    return { stop_reason: "max_tokens", stop_sequence: null };
  const hit = generation.stopSequence;
  if (hit === undefined || hit === "") return { stop_reason: "end_turn", stop_sequence: null };
  return { stop_reason: "stop_sequence", stop_sequence: stops.find((stop) => stop === hit) ?? hit };
};

/** Usage in Anthropic's meaning (see the top of this file). */
export const messageUsage = (generation: Generation) => ({
  input_tokens: generation.promptTokens - generation.cachedTokens,
  output_tokens: generation.completionTokens,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: generation.cachedTokens,
});

/** The non-streamed answer: one text block. */
export const messageObject = (
  envelope: MessageEnvelope,
  generation: Generation,
  stops: readonly string[],
) => ({
  id: envelope.id,
  type: "message" as const,
  role: "assistant" as const,
  model: envelope.model,
  content: [{ type: "text" as const, text: generation.text }],
  ...stopOf(generation, stops),
  usage: messageUsage(generation),
});

/**
 * Writes one Message as Anthropic's event stream. Opens lazily with the first text (or at the
 * end, for an empty answer), so errors before any token stay JSON; `promptTokens` is asked only
 * then, for message_start's usage (the final split between evaluated and cached tokens, known
 * once generation ends, comes in message_delta).
 */
export class MessageEventWriter {
  readonly #stream: NamedEventStream;
  readonly #envelope: MessageEnvelope;
  readonly #promptTokens: () => number;

  constructor(stream: NamedEventStream, envelope: MessageEnvelope, promptTokens: () => number) {
    this.#stream = stream;
    this.#envelope = envelope;
    this.#promptTokens = promptTokens;
  }

  #send(type: string, fields: Record<string, unknown> = {}): void {
    this.#stream.send(type, { type, ...fields });
  }

  #open(): void {
    if (this.#stream.started) return;
    this.#send("message_start", {
      message: {
        id: this.#envelope.id,
        type: "message",
        role: "assistant",
        model: this.#envelope.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: {
          input_tokens: this.#promptTokens(),
          output_tokens: 0,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
        },
      },
    });
    this.#send("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
    this.#send("ping");
  }

  delta(text: string): void {
    this.#open();
    this.#send("content_block_delta", { index: 0, delta: { type: "text_delta", text } });
  }

  finish(generation: Generation, stops: readonly string[]): void {
    this.#open();
    this.#send("content_block_stop", { index: 0 });
    this.#send("message_delta", {
      delta: stopOf(generation, stops),
      usage: messageUsage(generation),
    });
    this.#send("message_stop");
    this.#stream.end();
  }

  /** Anthropic's mid-stream `error` event; the stream then ends. */
  fail(): void {
    this.#send("error", { error: { type: "api_error", message: STREAM_FAILURE } });
    this.#stream.end();
  }
}
