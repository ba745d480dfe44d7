import { openAIProblems } from "@cortex/testkit/openai";
import { describe, expect, it } from "vitest";
import { AnswerStream, wholeAnswer } from "./answers.js";
import { chatShape } from "./translate-chat.js";
import { generateShape } from "./translate-generate.js";

// OpenAI answers (checked against OpenAI's schemas, so the inputs are real shapes) into
// Ollama's, whole and streamed.

const AT = "2025-01-02T03:04:05.678Z";
const createdAt = () => AT;
const usage = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 };
const timing = { startedMs: 0, sentMs: 1, loadMs: 0, queueMs: 0, firstTokenMs: null, endMs: 41 };

const chatCompletion = (message: Record<string, unknown>, finish: string) => ({
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: "m",
  choices: [
    {
      index: 0,
      message: { role: "assistant", refusal: null, ...message },
      logprobs: null,
      finish_reason: finish,
    },
  ],
  usage,
});

const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
  id: "chatcmpl-1",
  object: "chat.completion.chunk",
  created: 1,
  model: "m",
  choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
});

const textChunk = (text: string, finish: string | null = null) => ({
  id: "cmpl-1",
  object: "text_completion",
  created: 1,
  model: "m",
  choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
});

describe("wholeAnswer", () => {
  it("answers a chat completion as Ollama's chat, with tool calls as objects", () => {
    const answer = chatCompletion(
      {
        content: "",
        tool_calls: [
          {
            id: "c1",
            type: "function",
            function: { name: "weather", arguments: '{"city":"Oslo"}' },
          },
        ],
      },
      "tool_calls",
    );
    expect(openAIProblems("CreateChatCompletionResponse", answer)).toEqual([]);
    expect(
      wholeAnswer(answer, { model: "small", createdAt, source: "chat", shape: chatShape, timing }),
    ).toEqual({
      model: "small",
      created_at: AT,
      message: {
        role: "assistant",
        content: "",
        tool_calls: [
          { id: "c1", function: { index: 0, name: "weather", arguments: { city: "Oslo" } } },
        ],
      },
      done: true,
      done_reason: "stop",
      total_duration: 41_000_000,
      load_duration: 0,
      prompt_eval_count: 11,
      prompt_eval_duration: 0,
      eval_count: 7,
      eval_duration: 40_000_000,
    });
  });

  it("answers a reasoning model's thinking, and length as the reason", () => {
    const answer = chatCompletion({ content: "42", reasoning_content: "hmm" }, "length");
    const ollama = wholeAnswer(answer, {
      model: "m",
      createdAt,
      source: "chat",
      shape: chatShape,
      timing,
    });
    expect(ollama.message).toEqual({ role: "assistant", content: "42", thinking: "hmm" });
    expect(ollama.done_reason).toBe("length");
  });

  it("answers generate's response from a chat completion or a text completion", () => {
    const chat = wholeAnswer(chatCompletion({ content: "hello" }, "stop"), {
      model: "m",
      createdAt,
      source: "chat",
      shape: generateShape,
      timing,
    });
    expect(chat).toMatchObject({ response: "hello", done: true, done_reason: "stop" });
    expect(chat).not.toHaveProperty("message");
    const completion = { ...textChunk("raw text", "stop"), usage };
    expect(openAIProblems("CreateCompletionResponse", completion)).toEqual([]);
    expect(
      wholeAnswer(completion, {
        model: "m",
        createdAt,
        source: "completion",
        shape: generateShape,
        timing,
      }),
    ).toMatchObject({ response: "raw text", eval_count: 7, prompt_eval_count: 11 });
  });

  it("answers an empty message when the answer has no choice", () => {
    expect(
      wholeAnswer({}, { model: "m", createdAt, source: "chat", shape: chatShape, timing }),
    ).toMatchObject({ message: { role: "assistant", content: "" }, done: true, eval_count: 0 });
  });
});

describe("AnswerStream", () => {
  it("writes a line per piece of text, then the tool calls whole, then the final line", () => {
    const chunks = [
      chunk({ role: "assistant", content: "" }),
      chunk({ content: "It is" }),
      chunk({ reasoning_content: "checking" }),
      chunk({ content: " sunny" }),
      chunk({
        tool_calls: [
          { index: 0, id: "c1", type: "function", function: { name: "log", arguments: '{"a"' } },
        ],
      }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: ":1}" } }] }, "tool_calls"),
      { ...chunk({}), choices: [], usage },
    ];
    for (const value of chunks)
      expect(openAIProblems("CreateChatCompletionStreamResponse", value)).toEqual([]);
    const stream = new AnswerStream({
      model: "small",
      createdAt,
      source: "chat",
      shape: chatShape,
    });
    const lines = chunks.flatMap((value, i) => stream.push(value, 10 + i));
    expect(stream.firstTokenMs).toBe(11);
    lines.push(...stream.end({ startedMs: 0, sentMs: 2, loadMs: 0, queueMs: 3, endMs: 21 }));
    expect(lines).toEqual([
      {
        model: "small",
        created_at: AT,
        message: { role: "assistant", content: "It is" },
        done: false,
      },
      {
        model: "small",
        created_at: AT,
        message: { role: "assistant", content: "", thinking: "checking" },
        done: false,
      },
      {
        model: "small",
        created_at: AT,
        message: { role: "assistant", content: " sunny" },
        done: false,
      },
      {
        model: "small",
        created_at: AT,
        message: {
          role: "assistant",
          content: "",
          tool_calls: [{ id: "c1", function: { index: 0, name: "log", arguments: { a: 1 } } }],
        },
        done: false,
      },
      {
        model: "small",
        created_at: AT,
        message: { role: "assistant", content: "" },
        done: true,
        done_reason: "stop",
        total_duration: 21_000_000,
        load_duration: 0,
        prompt_eval_count: 11,
        prompt_eval_duration: 6_000_000,
        eval_count: 7,
        eval_duration: 10_000_000,
      },
    ]);
  });

  it("streams a text completion as generate's response lines", () => {
    const stream = new AnswerStream({
      model: "m",
      createdAt,
      source: "completion",
      shape: generateShape,
    });
    const lines = stream.push(textChunk("a"), 5);
    expect(stream.finished).toBe(false);
    lines.push(...stream.push(textChunk("b", "length"), 6));
    expect(stream.finished).toBe(true);
    lines.push(...stream.end({ startedMs: 0, sentMs: 1, loadMs: 0, queueMs: 0, endMs: 7 }));
    expect(lines.map((line) => [line.response, line.done, line.done_reason])).toEqual([
      ["a", false, undefined],
      ["b", false, undefined],
      ["", true, "length"],
    ]);
  });

  it("fails the end of a stream whose tool call arguments are no JSON object", () => {
    const stream = new AnswerStream({ model: "m", createdAt, source: "chat", shape: chatShape });
    stream.push(chunk({ tool_calls: [{ index: 0, function: { name: "f", arguments: "{" } }] }), 1);
    expect(() => stream.end(timing)).toThrow(/not a JSON object/);
  });
});
