import { ApiError } from "@cortex/http-kit";
import { type LlamaModel, type Token, TokenBias } from "node-llama-cpp";
import type { Sampling } from "./requests.js";

// A request's sampling settings as LlamaChat and LlamaCompletion take them. Fields a client
// leaves out keep node-llama-cpp's defaults, so an answer without them is what it always was.

/** The sampling options LlamaChat and LlamaCompletion both take. */
export interface SamplerOptions {
  readonly temperature: number;
  readonly topP?: number;
  readonly topK?: number;
  readonly minP?: number;
  readonly seed?: number;
  readonly repeatPenalty?: {
    readonly penalty?: number;
    readonly presencePenalty?: number;
    readonly frequencyPenalty?: number;
  };
  readonly tokenBias?: TokenBias;
}

/** What sampling needs to know of a model's vocabulary; read once, when the model loads. */
export interface Vocabulary {
  /** Tokens in the vocabulary, from the GGUF metadata (when it lists them). */
  readonly size: number | undefined;
  /**
   * Byte-fallback tokens of bytes no UTF-8 text contains (F5–FF). llama.cpp's grammars read
   * such a byte as the start of a character, node-llama-cpp decodes it (and what follows) as
   * several U+FFFD: a string held to maxLength would come out longer. Under a grammar the
   * model may not write them.
   */
  readonly unwritable: readonly Token[];
}

export const vocabularyOf = (model: LlamaModel): Vocabulary => {
  const tokens: unknown = model.fileInfo.metadata?.tokenizer?.ggml?.tokens;
  if (!Array.isArray(tokens)) return { size: undefined, unwritable: [] };
  const unwritable: Token[] = [];
  tokens.forEach((token, id) => {
    if (typeof token === "string" && /^<0x(F[5-9A-F])>$/.test(token)) unwritable.push(id as Token);
  });
  return { size: tokens.length, unwritable };
};

/** Sampling for free text, and for text a grammar holds (the same, less unwritable bytes). */
export interface Samplers {
  readonly free: SamplerOptions;
  readonly held: SamplerOptions;
}

/**
 * OpenAI's logit_bias on this model's token ids, set on `bias`. A bias is added to the token's
 * logit, as OpenAI does (-100 all but bans it, 100 all but forces it). Throws a 400 for an id
 * the vocabulary lacks, and for end-of-generation tokens, whose bias node-llama-cpp ignores.
 */
const setLogitBias = (
  bias: TokenBias,
  model: LlamaModel,
  size: number | undefined,
  biases: NonNullable<Sampling["logitBias"]>,
): void => {
  for (const [id, logit] of biases) {
    const token = id as Token;
    const param = `logit_bias.${id}`;
    // An id beyond the vocabulary must never reach llama.cpp, which does not check it.
    if (size === undefined || id >= size)
      throw new ApiError(
        "invalid_request_error",
        size === undefined
          ? "logit_bias: this model's vocabulary size is unknown, so token ids cannot be checked"
          : `logit_bias: token ${id} is not in this model's vocabulary of ${size} tokens`,
        { param },
      );
    if (model.isEogToken(token))
      throw new ApiError(
        "invalid_request_error",
        `logit_bias: token ${id} ends generation, and the built-in harness cannot bias it`,
        { param },
      );
    bias.set(token, { logit });
  }
};

export const samplersOf = (
  sampling: Sampling,
  model: LlamaModel,
  vocabulary: Vocabulary,
): Samplers => {
  const penalties = {
    ...(sampling.repeatPenalty === undefined ? {} : { penalty: sampling.repeatPenalty }),
    ...(sampling.presencePenalty === undefined
      ? {}
      : { presencePenalty: sampling.presencePenalty }),
    ...(sampling.frequencyPenalty === undefined
      ? {}
      : { frequencyPenalty: sampling.frequencyPenalty }),
  };
  const free: SamplerOptions = {
    temperature: sampling.temperature,
    ...(sampling.topP === undefined ? {} : { topP: sampling.topP }),
    ...(sampling.topK === undefined ? {} : { topK: sampling.topK }),
    ...(sampling.minP === undefined ? {} : { minP: sampling.minP }),
    ...(sampling.seed === undefined ? {} : { seed: sampling.seed }),
    ...(Object.keys(penalties).length > 0 ? { repeatPenalty: penalties } : {}),
  };
  const biased = (unwritable: readonly Token[]): TokenBias | undefined => {
    if (!sampling.logitBias?.length && unwritable.length === 0) return undefined;
    const bias = new TokenBias(model.tokenizer);
    if (sampling.logitBias) setLogitBias(bias, model, vocabulary.size, sampling.logitBias);
    for (const token of unwritable) bias.set(token, "never");
    return bias;
  };
  const freeBias = biased([]);
  const heldBias = biased(vocabulary.unwritable);
  return {
    free: freeBias ? { ...free, tokenBias: freeBias } : free,
    held: heldBias ? { ...free, tokenBias: heldBias } : free,
  };
};
