import { stat } from "node:fs/promises";
import {
  type ChatWrapper,
  getLlama,
  type Llama,
  type LlamaContextSequence,
  type LlamaEmbeddingContext,
  LlamaLogLevel,
  type LlamaModel,
  resolveChatWrapper,
  type Token,
} from "node-llama-cpp";
import { type RunResult, type RunSettings, runChat } from "./chat-run.js";
import { completionTokensOf, runCompletion } from "./completion-run.js";
import { constraintsOf } from "./constraints.js";
import { GrammarCache } from "./grammar-cache.js";
import { toHistory } from "./history.js";
import { commonPrefixLength, MIN_REUSE_SHARE, pickSlot, reusablePrefix } from "./prefix-cache.js";
import { shapedWrapper } from "./prompt-wrapper.js";
import type { Sampling } from "./requests.js";
import type { FinishReason } from "./responses.js";
import { samplersOf, type Vocabulary, vocabularyOf } from "./sampler.js";
import { SlotPool } from "./slots.js";

export interface EngineOptions {
  readonly modelPath: string;
  /** `auto` uses CUDA/Vulkan/Metal when a prebuilt binary for it is installed and works. */
  readonly gpu: "auto" | "off";
  /** Context sequences, i.e. requests generated at the same time. */
  readonly parallel: number;
  /** Tokens of context per sequence. */
  readonly contextSize: number;
  /** CPU threads; undefined picks one from the model's size (see threadsFor). */
  readonly threads?: number | undefined;
  readonly batchSize?: number | undefined;
  /** Layers on the GPU; undefined fits as many as free VRAM allows. Ignored with gpu "off". */
  readonly gpuLayers?: number | undefined;
  readonly flashAttention?: boolean;
  /**
   * Reuse what a sequence has evaluated (default true): a request takes the free sequence whose
   * tokens share the longest prefix with its prompt and evaluates only the rest. False makes
   * every request evaluate its whole prompt on a cleared sequence (a benchmark's baseline).
   */
  readonly prefixCache?: boolean;
}

/**
 * Below this size a token costs so little compute that waking a second thread costs more than
 * it saves: on a shared 2-core machine the tiny test model makes ~700 tokens/s on one thread
 * and ~50 on two, because llama.cpp's threads spin-wait for each other.
 */
export const SMALL_MODEL_BYTES = 256 * 1024 * 1024;

/** The thread count used when none is given: one for small models, llama.cpp's default otherwise. */
export const threadsFor = (modelBytes: number, requested: number | undefined): number | undefined =>
  requested ?? (modelBytes < SMALL_MODEL_BYTES ? 1 : undefined);

export interface Generation {
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Prompt tokens not evaluated again, because the sequence already held them. */
  readonly cachedTokens: number;
  /** The stop sequence that ended generation, when one did (Anthropic's `stop_sequence`). */
  readonly stopSequence?: string;
  /** The tool calls the answer ends with (chat with tools); `finishReason` is then tool_calls. */
  readonly toolCalls?: readonly GeneratedToolCall[];
}

/** A call the model made: a tool's name and its arguments, JSON text of an object. */
export interface GeneratedToolCall {
  readonly name: string;
  readonly arguments: string;
}

/** A call as it is generated: `start` once (its name), then its arguments' text in pieces. */
export type ToolCallEvent =
  | { readonly type: "start"; readonly index: number; readonly name: string }
  | { readonly type: "arguments"; readonly index: number; readonly text: string };

export interface GenerateOptions {
  /** Aborting stops generation and frees the sequence; the promise then rejects. */
  readonly signal: AbortSignal;
  /** Text as it is generated (text that might start a stop sequence is held back). */
  readonly onText?: (text: string) => void;
  /** Tool calls as they are generated (chat with tools). */
  readonly onToolCall?: (event: ToolCallEvent) => void;
}

/** A call in an assistant turn of the history; `arguments` as parsed from the client's JSON. */
export interface TurnToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: unknown;
}

export interface ChatTurn {
  readonly role: "system" | "user" | "assistant" | "tool";
  readonly text: string;
  /** The calls an assistant turn made; the tool turns after it answer them. */
  readonly toolCalls?: readonly TurnToolCall[];
  /** The call a tool turn answers. */
  readonly toolCallId?: string;
}

/**
 * A prompt that does not fit the context; the server answers 400. The message names the fix as
 * an operator makes it: the neuron starts this harness with `--ctx-size` from the model's
 * `context_length` (catalogue entry, or the load request), so that is the setting to raise.
 */
export class ContextOverflowError extends Error {
  constructor(tokens: number, contextSize: number) {
    super(
      `the prompt is ${tokens} tokens, but the context holds ${contextSize}: shorten it, or load the model with a larger context_length (in its catalogue entry or the load request; --ctx-size when running this harness by hand)`,
    );
    this.name = "ContextOverflowError";
  }
}

/** What the HTTP layer needs from a loaded model; a fake implements it in unit tests. */
export interface Engine {
  readonly contextSize: number;
  readonly parallel: number;
  readonly gpu: string | false;
  /** CPU threads generation runs on. */
  readonly threads: number;
  /** The length of the vectors `embed` returns (the model's embedding width). */
  readonly embeddingSize: number;
  chat(
    turns: readonly ChatTurn[],
    sampling: Sampling,
    options: GenerateOptions,
  ): Promise<Generation>;
  complete(prompt: string, sampling: Sampling, options: GenerateOptions): Promise<Generation>;
  embed(
    inputs: readonly string[],
    signal: AbortSignal,
  ): Promise<{ vectors: number[][]; promptTokens: number }>;
  /** Sequences generating now, and requests waiting for one. */
  load(): { busy: number; waiting: number };
  /** The prompt's length in tokens, as `chat` renders and counts it (for `count_tokens`). */
  countTokens(turns: readonly ChatTurn[]): number;
  dispose(): Promise<void>;
}

/** Embedding requests share one context of at most this many tokens. */
const EMBEDDING_CONTEXT_MAX = 2048;

class LlamaEngine implements Engine {
  readonly #llama: Llama;
  readonly #model: LlamaModel;
  readonly #pool: SlotPool<LlamaContextSequence>;
  readonly #prefixCache: boolean;
  // When each sequence was last released (a counter, not a clock); never used ones are absent.
  readonly #lastUsed = new Map<LlamaContextSequence, number>();
  #releases = 0;
  readonly #disposeContext: () => Promise<void>;
  // Resolved once: working it out from the model's Jinja template takes ~300 ms, which
  // LlamaChat would otherwise spend again on every request.
  readonly #chatWrapper: ChatWrapper;
  readonly #grammars: GrammarCache;
  readonly #vocabulary: Vocabulary;
  #embedding: Promise<LlamaEmbeddingContext> | undefined;
  // Embedding requests share one embedding context, one at a time.
  readonly #embedPool = new SlotPool<number>([0]);
  readonly contextSize: number;
  readonly parallel: number;
  readonly threads: number;

  constructor(
    llama: Llama,
    model: LlamaModel,
    sequences: LlamaContextSequence[],
    threads: number,
    prefixCache: boolean,
    disposeContext: () => Promise<void>,
  ) {
    this.threads = threads;
    this.#prefixCache = prefixCache;
    this.#llama = llama;
    this.#model = model;
    this.#pool = new SlotPool(sequences);
    this.#disposeContext = disposeContext;
    this.#chatWrapper = resolveChatWrapper(model);
    this.#grammars = new GrammarCache(llama, model);
    this.#vocabulary = vocabularyOf(model);
    this.contextSize = sequences[0]?.contextSize ?? 0;
    this.parallel = sequences.length;
  }

  get gpu(): string | false {
    return this.#llama.gpu;
  }

  get embeddingSize(): number {
    return this.#model.embeddingVectorSize;
  }

  load(): { busy: number; waiting: number } {
    return { busy: this.#pool.busy, waiting: this.#pool.waiting };
  }

  countTokens(turns: readonly ChatTurn[]): number {
    return this.#chatWrapper
      .generateContextState({ chatHistory: toHistory(turns) })
      .contextText.tokenize(this.#model.tokenizer).length;
  }

  async chat(
    turns: readonly ChatTurn[],
    sampling: Sampling,
    options: GenerateOptions,
  ): Promise<Generation> {
    const history = toHistory(turns);
    const { format, tools } = await this.#grammars.ready(constraintsOf(sampling));
    // The tokens LlamaChat evaluates first for this history (it renders it the same way).
    const tokens = shapedWrapper(this.#chatWrapper, { functions: tools?.functions })
      .generateContextState({ chatHistory: history })
      .contextText.tokenize(this.#model.tokenizer);
    const plan = { history, wrapper: this.#chatWrapper, format, tools, stops: sampling.stop };
    return this.#generate(tokens, sampling, options, (slot, settings) =>
      runChat(slot, plan, settings, options),
    );
  }

  async complete(
    prompt: string,
    sampling: Sampling,
    options: GenerateOptions,
  ): Promise<Generation> {
    const { text, evaluated } = completionTokensOf(this.#model, prompt);
    const { format } = await this.#grammars.ready(constraintsOf(sampling));
    return this.#generate(evaluated, sampling, options, (slot, settings) =>
      runCompletion(
        slot,
        text,
        { grammar: format, stops: sampling.stop, onText: options.onText },
        settings,
      ),
    );
  }

  /**
   * One generation of the prompt `tokens` on a free sequence: what chat and completion share
   * (the context check, the choice of sequence, sampling settings, token counts). `run` wraps
   * the sequence in LlamaChat or LlamaCompletion, which erase what the sequence holds after its
   * common prefix with the prompt and evaluate only the rest; the sequence is released however
   * it ends.
   */
  async #generate(
    tokens: readonly Token[],
    sampling: Sampling,
    options: GenerateOptions,
    run: (slot: LlamaContextSequence, settings: RunSettings) => Promise<RunResult>,
  ): Promise<Generation> {
    const promptTokens = tokens.length;
    if (promptTokens >= this.contextSize)
      throw new ContextOverflowError(promptTokens, this.contextSize);
    // Before a sequence is taken: a logit_bias the model cannot take is a 400.
    const samplers = samplersOf(sampling, this.#model, this.#vocabulary);
    const { slot, release } = await this.#pool.acquire(options.signal, (free) => {
      const views = free.map((sequence) => ({
        tokens: sequence.contextTokens,
        lastUsed: this.#lastUsed.get(sequence) ?? 0,
      }));
      // With reuse off, no match is ever useful: the least recently used sequence.
      return pickSlot(views, tokens, this.#prefixCache ? MIN_REUSE_SHARE : Number.POSITIVE_INFINITY)
        .index;
    });
    try {
      if (!this.#prefixCache) await slot.clearHistory();
      const reused = reusablePrefix(slot.contextTokens, tokens);
      // Counted by the sequence's meter, not onToken: tokens of an unfinished UTF-8 character
      // are held back from onToken and never reported when generation stops between them.
      const outputBefore = slot.tokenMeter.usedOutputTokens;
      const result = await run(slot, {
        samplers,
        signal: options.signal,
        maxTokens: sampling.maxTokens ?? this.contextSize - promptTokens,
      });
      // The sequence now holds the prompt it evaluated, then the answer. Had node-llama-cpp
      // evaluated other tokens than counted here, it would have erased from the first difference
      // and the prefix still shared would end there: the count is never more than was reused.
      const cachedTokens = Math.min(reused, commonPrefixLength(slot.contextTokens, tokens));
      return {
        ...result,
        promptTokens,
        completionTokens: slot.tokenMeter.usedOutputTokens - outputBefore,
        cachedTokens,
      };
    } finally {
      this.#releases += 1;
      this.#lastUsed.set(slot, this.#releases);
      release();
    }
  }

  async embed(
    inputs: readonly string[],
    signal: AbortSignal,
  ): Promise<{ vectors: number[][]; promptTokens: number }> {
    const { release } = await this.#embedPool.acquire(signal);
    try {
      // Created on first use: chat-only deployments never pay for an embedding context.
      this.#embedding ??= this.#model.createEmbeddingContext({
        contextSize: Math.min(this.contextSize, EMBEDDING_CONTEXT_MAX),
        threads: this.threads,
      });
      const context = await this.#embedding;
      const vectors: number[][] = [];
      let promptTokens = 0;
      for (const input of inputs) {
        signal.throwIfAborted();
        const tokens = this.#model.tokenize(input);
        const length = context.calculateInputLength(tokens);
        // The embedding context is smaller than the generation one (at most 2,048 tokens).
        const limit = Math.min(this.contextSize, EMBEDDING_CONTEXT_MAX);
        if (length >= limit) throw new ContextOverflowError(length, limit);
        promptTokens += tokens.length;
        vectors.push([...(await context.getEmbeddingFor(tokens)).vector]);
      }
      return { vectors, promptTokens };
    } finally {
      release();
    }
  }

  async dispose(): Promise<void> {
    if (this.#embedding) await (await this.#embedding.catch(() => undefined))?.dispose();
    await this.#disposeContext();
    await this.#model.dispose();
    await this.#llama.dispose();
  }
}

/** Loads the model with llama.cpp's prebuilt binaries; never downloads or compiles anything. */
export const loadEngine = async (options: EngineOptions): Promise<Engine> => {
  const llama = await getLlama({
    gpu: options.gpu === "off" ? false : "auto",
    build: "never",
    logLevel: LlamaLogLevel.warn,
  });
  try {
    const model = await llama.loadModel({
      modelPath: options.modelPath,
      ...(options.gpu === "off"
        ? { gpuLayers: 0 }
        : options.gpuLayers === undefined
          ? {}
          : { gpuLayers: options.gpuLayers }),
      ...(options.flashAttention ? { defaultContextFlashAttention: true } : {}),
    });
    const threads = threadsFor((await stat(options.modelPath)).size, options.threads);
    const context = await model.createContext({
      sequences: options.parallel,
      contextSize: options.contextSize,
      ...(threads === undefined ? {} : { threads }),
      ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
    });
    const sequences = Array.from({ length: options.parallel }, () => context.getSequence());
    return new LlamaEngine(
      llama,
      model,
      sequences,
      context.currentThreads,
      options.prefixCache ?? true,
      () => context.dispose(),
    );
  } catch (error) {
    await llama.dispose();
    throw error;
  }
};
