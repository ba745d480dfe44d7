import type { Generation, ToolCallEvent } from "./engine.js";
import {
  chatChunk,
  chatUsageChunk,
  type Envelope,
  newCallId,
  type ToolCall,
  type Usage,
} from "./responses.js";
import type { EventStream } from "./sse.js";

// A chat answer as OpenAI sends it: whole (tool calls with ids) or streamed (text deltas, then
// each call as OpenAI streams them: its index, id, type and name first, then pieces of its
// arguments, which a client joins into the same JSON text).

/** The calls of an answer, each with a new id. */
export const toolCallsOf = (generation: Generation): ToolCall[] =>
  (generation.toolCalls ?? []).map((call) => ({
    id: newCallId(),
    type: "function",
    function: { name: call.name, arguments: call.arguments },
  }));

/** Writes one streamed chat answer as chunks, the role first, and ends it with [DONE]. */
export class ChatChunkWriter {
  readonly #stream: EventStream;
  readonly #envelope: Envelope;

  constructor(stream: EventStream, envelope: Envelope) {
    this.#stream = stream;
    this.#envelope = envelope;
  }

  /** The first chunk: the role, with `content: null` when the answer opens with a call. */
  #open(content: "" | null): void {
    if (!this.#stream.started)
      this.#stream.send(chatChunk(this.#envelope, { role: "assistant", content }, null));
  }

  text(text: string): void {
    if (!text) return;
    this.#open("");
    this.#stream.send(chatChunk(this.#envelope, { content: text }, null));
  }

  toolCall(event: ToolCallEvent): void {
    this.#open(null);
    const { index } = event;
    const delta =
      event.type === "start"
        ? {
            index,
            id: newCallId(),
            type: "function" as const,
            function: { name: event.name, arguments: "" },
          }
        : { index, function: { arguments: event.text } };
    this.#stream.send(chatChunk(this.#envelope, { tool_calls: [delta] }, null));
  }

  /** The last chunk with the finish reason, usage when asked for, then [DONE]. */
  finish(generation: Generation, usage: Usage | undefined): void {
    this.#open("");
    this.#stream.send(chatChunk(this.#envelope, {}, generation.finishReason));
    if (usage) this.#stream.send(chatUsageChunk(this.#envelope, usage));
    this.#stream.done();
  }
}
