import {
  type ChatHistoryItem,
  type ChatModelFunctions,
  type ChatWrapper,
  type LLamaChatGenerateResponseOptions,
  LlamaChat,
  type LlamaContextSequence,
  type LlamaGrammar,
  type LlamaModel,
} from "node-llama-cpp";
import type { GeneratedToolCall, ToolCallEvent } from "./engine.js";
import {
  callOpening,
  callStarts,
  callUpToArguments,
  type PromptShape,
  shapedWrapper,
} from "./prompt-wrapper.js";
import type { FinishReason } from "./responses.js";
import type { Samplers } from "./sampler.js";

// One chat answer on a sequence, in as many LlamaChat generations as it takes:
// - free text, or text held to a response_format grammar;
// - with tool_choice "auto", text that stops where the model starts a call in its template's
//   syntax (as node-llama-cpp detects calls), then the call, as below;
// - a call: when several names are allowed, the model picks one (a grammar of the names, after
//   the call's opening written for it), then writes the arguments under the tool's grammar
//   (after the opening, the name and what precedes arguments, written for it). The model is
//   thus held to a valid call of an allowed tool: tool_choice "required" and a named function
//   always get one, whatever the model would have written.
// At most one call is made per answer, which parallel_tool_calls true and false both allow.

/** The allowed calls of a request, with their grammars ready. */
export interface ReadyTools {
  readonly choice: "auto" | "required" | { readonly name: string };
  readonly functions: ChatModelFunctions;
  readonly allowed: readonly string[];
  readonly parameters: ReadonlyMap<string, LlamaGrammar>;
  readonly names?: LlamaGrammar;
}

export interface ChatRunPlan {
  readonly history: ChatHistoryItem[];
  /** The model's own chat wrapper. */
  readonly wrapper: ChatWrapper;
  readonly format?: LlamaGrammar | undefined;
  readonly tools?: ReadyTools | undefined;
  /** The client's stop sequences (for text, not for a call's arguments). */
  readonly stops: readonly string[];
}

export interface RunSettings {
  readonly signal: AbortSignal;
  readonly maxTokens: number;
  /** Sampling for free text, and for text under a grammar. */
  readonly samplers: Samplers;
}

export interface RunEvents {
  readonly onText?: ((text: string) => void) | undefined;
  readonly onToolCall?: ((event: ToolCallEvent) => void) | undefined;
}

export interface RunResult {
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly stopSequence?: string;
  readonly toolCalls?: readonly GeneratedToolCall[];
}

/** `history` (ending with a model item) with `text` added to that item. */
const withAnswerText = (history: ChatHistoryItem[], text: string): ChatHistoryItem[] => {
  const last = history.at(-1);
  if (!text || last?.type !== "model") return history;
  return [...history.slice(0, -1), { type: "model", response: [...last.response, text] }];
};

class ChatRun {
  readonly #sequence: LlamaContextSequence;
  readonly #model: LlamaModel;
  readonly #plan: ChatRunPlan;
  readonly #settings: RunSettings;
  readonly #events: RunEvents;
  readonly #outputBefore: number;

  constructor(
    sequence: LlamaContextSequence,
    plan: ChatRunPlan,
    settings: RunSettings,
    events: RunEvents,
  ) {
    this.#sequence = sequence;
    this.#model = sequence.model;
    this.#plan = plan;
    this.#settings = settings;
    this.#events = events;
    this.#outputBefore = sequence.tokenMeter.usedOutputTokens;
  }

  /** Tokens this answer may still generate. */
  #left(): number {
    return (
      this.#settings.maxTokens - (this.#sequence.tokenMeter.usedOutputTokens - this.#outputBefore)
    );
  }

  async #generate(
    shape: PromptShape,
    history: ChatHistoryItem[],
    options: Pick<
      LLamaChatGenerateResponseOptions,
      "grammar" | "customStopTriggers" | "onTextChunk"
    >,
  ) {
    const chat = new LlamaChat({
      contextSequence: this.#sequence,
      chatWrapper: shapedWrapper(this.#plan.wrapper, shape),
      autoDisposeSequence: false,
    });
    try {
      const { samplers, signal } = this.#settings;
      return await chat.generateResponse(history, {
        ...(options.grammar ? samplers.held : samplers.free),
        signal,
        maxTokens: this.#left(),
        ...options,
      });
    } finally {
      chat.dispose({ disposeSequence: false });
    }
  }

  run(): Promise<RunResult> {
    const tools = this.#plan.tools;
    if (tools && tools.choice !== "auto") return this.#call(this.#plan.history, "");
    return this.#text();
  }

  async #text(): Promise<RunResult> {
    const { format, tools, stops } = this.#plan;
    const starts = tools ? callStarts(this.#plan.wrapper) : [];
    const onText = this.#events.onText;
    const result = await this.#generate(
      { functions: tools?.functions, grammarEnds: format !== undefined },
      this.#plan.history,
      {
        ...(format ? { grammar: format } : {}),
        customStopTriggers: [...stops, ...starts],
        ...(onText ? { onTextChunk: (text: string) => text && onText(text) } : {}),
      },
    );
    const { metadata } = result;
    if (metadata.stopReason !== "customStopTrigger")
      return {
        text: result.response,
        finishReason: metadata.stopReason === "maxTokens" ? "length" : "stop",
      };
    const trigger = metadata.customStopTrigger
      .map((piece) => (typeof piece === "string" ? piece : this.#model.detokenize([piece], true)))
      .join("");
    // A client's stop sequence wins over a call the same text would start.
    if (stops.includes(trigger) || !tools)
      return { text: result.response, finishReason: "stop", stopSequence: trigger };
    return this.#call(this.#plan.history, result.response);
  }

  /** A call of an allowed tool, after the answer's text so far (`before`). */
  async #call(history: ChatHistoryItem[], before: string): Promise<RunResult> {
    const tools = this.#plan.tools;
    if (!tools) throw new Error("a call needs tools");
    const wrapper = this.#plan.wrapper;
    const base = withAnswerText(history, before);
    const shape = { functions: tools.functions, grammarEnds: true };
    const cut: RunResult = { text: before, finishReason: "length" };
    let name = tools.allowed[0];
    if (tools.names) {
      if (this.#left() <= 0) return cut;
      const chosen = await this.#generate({ ...shape, inject: callOpening(wrapper) }, base, {
        grammar: tools.names,
      });
      if (chosen.metadata.stopReason === "maxTokens") return cut;
      name = tools.allowed.find((allowed) => allowed === chosen.response.trim());
    }
    const grammar = name === undefined ? undefined : tools.parameters.get(name);
    if (name === undefined || !grammar) throw new Error("the model chose no allowed tool");
    if (this.#left() <= 0) return cut;
    const onToolCall = this.#events.onToolCall;
    onToolCall?.({ type: "start", index: 0, name });
    const written = await this.#generate(
      { ...shape, inject: callUpToArguments(wrapper, name) },
      base,
      {
        grammar,
        ...(onToolCall
          ? {
              onTextChunk: (text: string) =>
                text && onToolCall({ type: "arguments", index: 0, text }),
            }
          : {}),
      },
    );
    return {
      text: before,
      finishReason: written.metadata.stopReason === "maxTokens" ? "length" : "tool_calls",
      toolCalls: [{ name, arguments: written.response }],
    };
  }
}

/** Generates one chat answer on `sequence` (which the caller holds). */
export const runChat = (
  sequence: LlamaContextSequence,
  plan: ChatRunPlan,
  settings: RunSettings,
  events: RunEvents,
): Promise<RunResult> => new ChatRun(sequence, plan, settings, events).run();
