// The numbers Ollama's final answer carries (durations in nanoseconds, token counts, why it
// stopped), from what the relay measured and what the OpenAI answer said. Pure.

/** Token counts of an OpenAI answer's `usage`, when it had one. */
export interface TokenUsage {
  readonly prompt_tokens?: number;
  readonly completion_tokens?: number;
}

/** When things happened, in ms of one monotonic clock (`performance.now()`). */
export interface Timing {
  /** The Ollama request arrived. */
  readonly startedMs: number;
  /** The request to cortex's OpenAI endpoint left. */
  readonly sentMs: number;
  /**
   * How long that request waited for a load before it was served, when known: its
   * `X-Cortex-Queue-Ms` when `X-Cortex-Cold-Start` was true, or the wait a stream's keep-alive
   * comments said was a load; 0 when it waited for no load.
   */
  readonly loadMs: number;
  /** How long it waited in all (load, slot, swap), when known; else the same as loadMs. */
  readonly queueMs: number;
  /** The first token (text, thinking or a tool call) arrived; null for a whole answer. */
  readonly firstTokenMs: number | null;
  /** The answer was complete. */
  readonly endMs: number;
}

/** The duration and count fields of Ollama's final answer. */
export interface OllamaDurations {
  readonly total_duration: number;
  readonly load_duration: number;
  readonly prompt_eval_count: number;
  readonly prompt_eval_duration: number;
  readonly eval_count: number;
  readonly eval_duration: number;
}

/** Milliseconds as whole nanoseconds, never negative. */
export const ns = (ms: number): number => Math.max(0, Math.round(ms * 1e6));

const count = (value: number | undefined): number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : 0;

/**
 * Ollama's durations: total from the request's arrival; load from the wait for a load; prompt
 * evaluation from the time served to the first token (streams only: a whole answer cannot tell
 * it apart, so it is 0 and evaluation takes the whole time served); evaluation from the first
 * token to the end. Counts from `usage`, 0 when the answer had none.
 */
export const durationsOf = (timing: Timing, usage: TokenUsage | null): OllamaDurations => {
  const servedMs = timing.sentMs + timing.queueMs;
  return {
    total_duration: ns(timing.endMs - timing.startedMs),
    load_duration: ns(timing.loadMs),
    prompt_eval_count: count(usage?.prompt_tokens),
    prompt_eval_duration: timing.firstTokenMs === null ? 0 : ns(timing.firstTokenMs - servedMs),
    eval_count: count(usage?.completion_tokens),
    eval_duration: ns(timing.endMs - (timing.firstTokenMs ?? servedMs)),
  };
};

/** Ollama's `done_reason` for an OpenAI `finish_reason`: "length" stays, the rest is "stop". */
export const doneReasonOf = (finishReason: unknown): "stop" | "length" =>
  finishReason === "length" ? "length" : "stop";

/** The usage of an OpenAI answer or chunk, when it carries one. */
export const usageOf = (answer: unknown): TokenUsage | null => {
  if (typeof answer !== "object" || answer === null || !Object.hasOwn(answer, "usage")) return null;
  const usage = (answer as { usage: unknown }).usage;
  return typeof usage === "object" && usage !== null ? (usage as TokenUsage) : null;
};
