// Which free context sequence ("slot") a request takes. Pure: tokens and use counters in, a
// choice out; the engine does the I/O. A slot keeps the tokens it evaluated last (prompt and
// answer), and llama.cpp evaluates only the part of the next prompt after the longest prefix
// they share, so a conversation's next turn on the slot that served its last one costs only its
// new messages.

/** A free slot as the choice sees it. */
export interface SlotView {
  /** The tokens the slot's state holds now, in order. */
  readonly tokens: readonly number[];
  /** When the slot was last released, on any increasing counter; lower is older. */
  readonly lastUsed: number;
}

export interface SlotChoice {
  /** Index into the slots given. */
  readonly index: number;
  /** Prompt tokens that slot does not evaluate again (see reusablePrefix). */
  readonly reused: number;
}

/**
 * A match is worth taking a slot for only when it covers at least this share of the prompt
 * (llama-server's `--slot-prompt-similarity` default): otherwise the request would overwrite a
 * recently used conversation to save the chat template's first few tokens.
 */
export const MIN_REUSE_SHARE = 0.5;

export const commonPrefixLength = (a: readonly number[], b: readonly number[]): number => {
  const limit = Math.min(a.length, b.length);
  let index = 0;
  while (index < limit && a[index] === b[index]) index += 1;
  return index;
};

/**
 * How many of `prompt`'s tokens a slot holding `held` need not evaluate: the shared prefix, but
 * never the prompt's last token, which is always evaluated because its output is what the first
 * new token is sampled from (node-llama-cpp's LlamaChat and LlamaCompletion do the same).
 */
export const reusablePrefix = (held: readonly number[], prompt: readonly number[]): number =>
  Math.max(0, Math.min(commonPrefixLength(held, prompt), prompt.length - 1));

/**
 * The slot for `prompt` among `slots` (at least one): the one with the longest reusable prefix
 * when that covers `minShare` of the prompt, the least recently used among equals; otherwise the
 * least recently used slot (a never used one first, as its counter is lowest). Ties on the
 * counter go to the lowest index.
 */
export const pickSlot = (
  slots: readonly SlotView[],
  prompt: readonly number[],
  minShare = MIN_REUSE_SHARE,
): SlotChoice => {
  const candidates = slots.map((slot, index) => ({
    index,
    reused: reusablePrefix(slot.tokens, prompt),
    lastUsed: slot.lastUsed,
  }));
  const [first, ...rest] = candidates;
  if (!first) throw new Error("pickSlot needs at least one slot");
  let best = first;
  let oldest = first;
  for (const candidate of rest) {
    if (
      candidate.reused > best.reused ||
      (candidate.reused === best.reused && candidate.lastUsed < best.lastUsed)
    )
      best = candidate;
    if (candidate.lastUsed < oldest.lastUsed) oldest = candidate;
  }
  const useful = best.reused > 0 && best.reused >= minShare * prompt.length;
  const chosen = useful ? best : oldest;
  return { index: chosen.index, reused: chosen.reused };
};
