// The OpenAI answers both fakes give: fixed text, valid against the official schemas.

export const FAKE_USAGE = { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 };

export const embeddingAnswer = (model: string, input: unknown) => {
  const inputs = Array.isArray(input) ? input : [input];
  return {
    object: "list",
    model,
    data: inputs.map((_, index) => ({ object: "embedding", index, embedding: [0.1, 0.2, 0.3] })),
    usage: { prompt_tokens: inputs.length, total_tokens: inputs.length },
  };
};

/** A whole chat completion (`chat`) or text completion. */
export const completionAnswer = (chat: boolean, id: string, created: number, model: string) =>
  chat
    ? {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: "fake answer", refusal: null },
            logprobs: null,
            finish_reason: "stop",
          },
        ],
        usage: FAKE_USAGE,
      }
    : {
        id,
        object: "text_completion",
        created,
        model,
        choices: [{ index: 0, text: "fake answer", logprobs: null, finish_reason: "stop" }],
        usage: FAKE_USAGE,
      };

/** Chunk `index` of a stream; the last one carries `finish_reason`. */
export const streamChunk = (
  chat: boolean,
  id: string,
  created: number,
  model: string,
  index: number,
  last: boolean,
) =>
  chat
    ? {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: [
          {
            index: 0,
            delta:
              index === 0 ? { role: "assistant", content: `c${index}` } : { content: ` c${index}` },
            logprobs: null,
            finish_reason: last ? "stop" : null,
          },
        ],
      }
    : {
        id,
        object: "text_completion",
        created,
        model,
        choices: [
          { index: 0, text: ` c${index}`, logprobs: null, finish_reason: last ? "stop" : null },
        ],
      };
