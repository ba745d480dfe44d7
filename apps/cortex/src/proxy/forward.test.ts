import { describe, expect, it } from "vitest";
import { usageOf } from "./forward.js";

describe("usageOf", () => {
  it.each([
    ['{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}', 3, 5],
    [
      '{"usage":{"prompt_tokens":7,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1},"total_tokens":9}}',
      7,
      2,
    ],
    [
      'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\ndata: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":6}}\n\ndata: [DONE]\n\n',
      4,
      6,
    ],
    ['{"usage":{"prompt_tokens":1,"note":"a } in a string"}}', 1, null],
  ])("reads the last usage of %s", (text, prompt, completion) => {
    expect(usageOf(text)).toEqual({ prompt_tokens: prompt, completion_tokens: completion });
  });

  it.each(['{"id":"x"}', '{"usage":null}', '{"usage":{"prompt_tokens":1', "not json"])(
    "finds none in %s",
    (text) => {
      expect(usageOf(text)).toBeNull();
    },
  );
});
