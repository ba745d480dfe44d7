import { describe, expect, it } from "vitest";
import { AnswerTail, usageOf } from "./forward.js";

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

describe("AnswerTail", () => {
  const tailOf = (chunks: readonly string[], whole = false) => {
    const tail = new AnswerTail(whole);
    for (const chunk of chunks) tail.push(Buffer.from(chunk));
    return tail;
  };
  const usage = { prompt_tokens: 4, completion_tokens: 6 };
  const stream = [
    'data: {"choices":[{"delta":{"content":"é"}}],"usage":null}\n\n',
    'data: {"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n',
    'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":6}}\n\n',
    "data: [DONE]\n\n",
  ].join("");

  it("reads the usage of a JSON body in one chunk", () => {
    expect(
      tailOf(['{"id":"é","usage":{"prompt_tokens":4,"completion_tokens":6},"x":1}']).usage(),
    ).toEqual(usage);
  });

  it.each([1, 2, 3, 5, 7, 64])("reads the last usage of a stream cut every %i bytes", (size) => {
    const bytes = Buffer.from(stream);
    const tail = new AnswerTail();
    for (let i = 0; i < bytes.length; i += size) tail.push(bytes.subarray(i, i + size));
    expect(tail.usage()).toEqual(usage);
  });

  it("reads the usage whose key is cut between two chunks", () => {
    expect(
      tailOf([
        'data: {"choices":[],"us',
        'age":{"prompt_tokens":4,"completion_tokens":6}}\n\n',
        "data: [DONE]\n\n",
      ]).usage(),
    ).toEqual(usage);
  });

  it("holds nothing of a stream without usage, and finds none", () => {
    const tail = tailOf(['data: {"choices":[]}\n\n', '"us', "x", "data: [DONE]\n\n"]);
    expect(tail.usage()).toBeNull();
    expect(tail.text()).toBe("");
  });

  it("keeps the text of an error body when asked for the whole tail", () => {
    const tail = tailOf(['{"error":', '{"message":"no"}}'], true);
    expect(tail.text()).toBe('{"error":{"message":"no"}}');
  });

  it("forgets a usage followed by more than 16 KiB, and keeps only about 16 KiB whole", () => {
    const chunks = ['{"usage":{"prompt_tokens":9,"completion_tokens":9}}', "x".repeat(20_000), "y"];
    expect(tailOf(chunks).usage()).toBeNull();
    expect(tailOf(chunks, true).text().length).toBeLessThan(20_002);
  });
});
