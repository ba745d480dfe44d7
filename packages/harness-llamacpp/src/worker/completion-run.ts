import {
  LlamaCompletion,
  type LlamaContextSequence,
  type LlamaGrammar,
  type LlamaModel,
  LlamaVocabularyType,
  type Token,
} from "node-llama-cpp";
import type { RunResult, RunSettings } from "./chat-run.js";

// A plain-prompt completion on a sequence: LlamaCompletion, held to a response_format grammar
// when there is one (LlamaCompletion has no chat template, so nothing else ends a JSON answer
// early).

/**
 * The token LlamaCompletion puts before a prompt (node-llama-cpp's own rule, which follows
 * llama.cpp's tokenizer): BOS where the vocabulary asks for it.
 */
const beginningToken = (model: LlamaModel): Token | undefined => {
  const type = model.vocabularyType;
  if (type === LlamaVocabularyType.rwkv || type === LlamaVocabularyType.ugm) return undefined;
  if (type !== LlamaVocabularyType.wpm && !model.tokens.shouldPrependBosToken) return undefined;
  return model.tokens.bos ?? undefined;
};

/**
 * The prompt's tokens as LlamaCompletion evaluates them: given tokens, it evaluates them as
 * they are after its beginning token, so `evaluated` is exactly the prompt counted.
 */
export const completionTokensOf = (
  model: LlamaModel,
  prompt: string,
): { text: Token[]; evaluated: Token[] } => {
  const beginning = beginningToken(model);
  const text = model.tokenize(
    prompt,
    false,
    beginning === undefined ? undefined : "trimLeadingSpace",
  );
  return { text, evaluated: beginning === undefined ? text : [beginning, ...text] };
};

const isText = (piece: string | Token): piece is string => typeof piece === "string";

/** Completes `text` (the prompt's tokens after the beginning token) on `sequence`. */
export const runCompletion = async (
  sequence: LlamaContextSequence,
  text: Token[],
  options: {
    readonly grammar: LlamaGrammar | undefined;
    readonly stops: readonly string[];
    readonly onText: ((text: string) => void) | undefined;
  },
  settings: RunSettings,
): Promise<RunResult> => {
  const completion = new LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
  try {
    const { samplers, signal, maxTokens } = settings;
    const result = await completion.generateCompletionWithMeta(text, {
      ...(options.grammar ? { ...samplers.held, grammar: options.grammar } : samplers.free),
      signal,
      maxTokens,
      customStopTriggers: options.stops,
      ...(options.onText ? { onTextChunk: options.onText } : {}),
    });
    const { metadata } = result;
    return {
      text: result.response,
      finishReason: metadata.stopReason === "maxTokens" ? "length" : "stop",
      ...(metadata.stopReason === "customStopTrigger"
        ? { stopSequence: metadata.customStopTrigger.filter(isText).join("") }
        : {}),
    };
  } finally {
    completion.dispose({ disposeSequence: false });
  }
};
