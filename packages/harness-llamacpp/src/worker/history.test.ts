import { describe, expect, it } from "vitest";
import { toHistory } from "./history.js";

describe("toHistory", () => {
  it("ends with an empty model item to answer in, or continues a last assistant turn", () => {
    expect(toHistory([{ role: "user", text: "hi" }])).toEqual([
      { type: "user", text: "hi" },
      { type: "model", response: [] },
    ]);
    expect(
      toHistory([
        { role: "system", text: "s" },
        { role: "user", text: "hi" },
        { role: "assistant", text: "Hel" },
      ]),
    ).toEqual([
      { type: "system", text: "s" },
      { type: "user", text: "hi" },
      { type: "model", response: ["Hel"] },
    ]);
  });

  it("makes calls, their results and the text after them one model turn", () => {
    const history = toHistory([
      { role: "user", text: "weather?" },
      {
        role: "assistant",
        text: "Checking.",
        toolCalls: [
          { id: "1", name: "get_weather", arguments: { city: "Paris" } },
          { id: "2", name: "get_time", arguments: {} },
        ],
      },
      { role: "tool", text: "noon", toolCallId: "2" },
      { role: "tool", text: '{"temp": 21}', toolCallId: "1" },
      { role: "assistant", text: "Sunny." },
      { role: "user", text: "thanks" },
      { role: "assistant", text: "", toolCalls: [{ id: "1", name: "log", arguments: "x" }] },
      { role: "tool", text: "done", toolCallId: "1" },
    ]);
    expect(history).toEqual([
      { type: "user", text: "weather?" },
      {
        type: "model",
        response: [
          "Checking.",
          {
            type: "functionCall",
            name: "get_weather",
            params: { city: "Paris" },
            result: { temp: 21 },
            startsNewChunk: true,
          },
          { type: "functionCall", name: "get_time", params: {}, result: "noon" },
          "Sunny.",
        ],
      },
      { type: "user", text: "thanks" },
      // The last turn is a call's result: the model goes on from it (an id used again later
      // in the conversation answers its own call).
      {
        type: "model",
        response: [
          { type: "functionCall", name: "log", params: "x", result: "done", startsNewChunk: true },
        ],
      },
    ]);
  });

  it("reads a tool turn without a call as the user's words", () => {
    expect(toHistory([{ role: "tool", text: "42", toolCallId: "x" }])).toEqual([
      { type: "user", text: "42" },
      { type: "model", response: [] },
    ]);
  });
});
