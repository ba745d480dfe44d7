import { ApiError } from "@cortex/http-kit";
import { describe, expect, it } from "vitest";
import { chatTurnsOf, toolUseOf } from "./chat-input.js";
import { ChatRequest } from "./requests.js";

const request = (body: Record<string, unknown>) =>
  ChatRequest.parse({ messages: [{ role: "user", content: "hi" }], ...body });

const call = (id: string, name = "get_weather", args = '{"city": "Paris"}') => ({
  id,
  type: "function",
  function: { name, arguments: args },
});

const apiError = (run: () => unknown): ApiError => {
  try {
    run();
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error("no error");
};

describe("chatTurnsOf", () => {
  it("keeps calls with their parsed arguments, and tool turns with the call they answer", () => {
    const { messages } = request({
      messages: [
        { role: "developer", content: "be brief" },
        { role: "user", content: [{ type: "text", text: "weather?" }] },
        {
          role: "assistant",
          content: null,
          tool_calls: [call("a"), call("b", "get_time", "{bad")],
        },
        { role: "tool", tool_call_id: "b", content: "noon" },
        { role: "tool", tool_call_id: "a", content: [{ type: "text", text: '{"temp": 21}' }] },
        { role: "assistant", content: "Sunny at noon." },
      ],
    });
    expect(chatTurnsOf(messages)).toEqual([
      { role: "system", text: "be brief" },
      { role: "user", text: "weather?" },
      {
        role: "assistant",
        text: "",
        toolCalls: [
          { id: "a", name: "get_weather", arguments: { city: "Paris" } },
          // Arguments that are not JSON (a model's answer cut short) are kept as their text.
          { id: "b", name: "get_time", arguments: "{bad" },
        ],
      },
      { role: "tool", text: "noon", toolCallId: "b" },
      { role: "tool", text: '{"temp": 21}', toolCallId: "a" },
      { role: "assistant", text: "Sunny at noon." },
    ]);
  });

  it.each([
    [
      "a tool message that answers no call",
      [{ role: "tool", tool_call_id: "x", content: "1" }],
      "messages[1].tool_call_id",
    ],
    [
      "a call left unanswered before the next message",
      [
        { role: "assistant", tool_calls: [call("a"), call("b")] },
        { role: "tool", tool_call_id: "a", content: "1" },
        { role: "user", content: "and?" },
      ],
      // The assistant message whose calls are not all answered.
      "messages[1]",
    ],
    [
      "a call left unanswered at the end",
      [{ role: "assistant", tool_calls: [call("a")] }],
      "messages[1]",
    ],
    [
      "an answer to an earlier message's call",
      [
        { role: "assistant", tool_calls: [call("a")] },
        { role: "tool", tool_call_id: "a", content: "1" },
        { role: "assistant", content: "ok" },
        { role: "tool", tool_call_id: "a", content: "again" },
      ],
      "messages[4].tool_call_id",
    ],
    [
      "two calls with one id",
      [{ role: "assistant", tool_calls: [call("a"), call("a")] }],
      "messages[1].tool_calls[1].id",
    ],
  ])("refuses %s", (_, messages, param) => {
    const { messages: parsed } = request({
      messages: [{ role: "user", content: "hi" }, ...messages],
    });
    expect(apiError(() => chatTurnsOf(parsed))).toMatchObject({
      code: "invalid_request_error",
      param,
    });
  });
});

describe("toolUseOf", () => {
  const tools = [
    { type: "function", function: { name: "a", description: "A", parameters: { type: "object" } } },
    { type: "function", function: { name: "b", strict: true } },
  ];

  it("defaults to auto with tools and to none without, as OpenAI does", () => {
    expect(toolUseOf(request({}))).toBeUndefined();
    expect(toolUseOf(request({ tools }))).toEqual({
      functions: [
        { name: "a", description: "A", parameters: { type: "object" } },
        { name: "b", strict: true },
      ],
      choice: "auto",
    });
    expect(toolUseOf(request({ tools, tool_choice: "none" }))).toBeUndefined();
    expect(toolUseOf(request({ tools, tool_choice: "required" }))?.choice).toBe("required");
    expect(
      toolUseOf(request({ tools, tool_choice: { type: "function", function: { name: "b" } } }))
        ?.choice,
    ).toEqual({ name: "b" });
  });

  it("refuses a choice that cannot be made", () => {
    expect(apiError(() => toolUseOf(request({ tool_choice: "required" })))).toMatchObject({
      param: "tool_choice",
    });
    const unknown = { type: "function", function: { name: "c" } };
    expect(apiError(() => toolUseOf(request({ tools, tool_choice: unknown }))).message).toContain(
      "not one of the request's tools",
    );
  });
});
