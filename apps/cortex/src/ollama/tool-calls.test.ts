import { describe, expect, it } from "vitest";
import {
  argumentsObject,
  OllamaToolCalls,
  StreamedToolCalls,
  toOllamaToolCalls,
  toOpenAIToolCalls,
} from "./tool-calls.js";

describe("Ollama tool calls → OpenAI", () => {
  it("serialises arguments and names calls that have no id", () => {
    const calls = OllamaToolCalls.parse([
      { function: { name: "weather", arguments: { city: "Paris" } } },
      { id: "call_x", function: { name: "time", arguments: '{"tz":"UTC"}' } },
      { function: { name: "noop" } },
    ]);
    expect(toOpenAIToolCalls(calls, (n) => `call_3_${n}`)).toEqual([
      {
        id: "call_3_0",
        type: "function",
        function: { name: "weather", arguments: '{"city":"Paris"}' },
      },
      { id: "call_x", type: "function", function: { name: "time", arguments: '{"tz":"UTC"}' } },
      { id: "call_3_2", type: "function", function: { name: "noop", arguments: "{}" } },
    ]);
  });

  it.each([
    [[{ function: { name: "" } }]],
    [[{ function: { name: "f", arguments: [1] } }]],
    [[{ name: "f" }]],
    [Array.from({ length: 257 }, () => ({ function: { name: "f" } }))],
  ])("refuses %j", (calls) => {
    expect(OllamaToolCalls.safeParse(calls).success).toBe(false);
  });
});

describe("OpenAI tool calls → Ollama", () => {
  it("parses arguments into objects, keeping ids and order", () => {
    expect(
      toOllamaToolCalls([
        { id: "c1", type: "function", function: { name: "a", arguments: '{"x":1}' } },
        { id: "c2", type: "function", function: { name: "b", arguments: "" } },
      ]),
    ).toEqual([
      { id: "c1", function: { index: 0, name: "a", arguments: { x: 1 } } },
      { id: "c2", function: { index: 1, name: "b", arguments: {} } },
    ]);
    expect(toOllamaToolCalls(undefined)).toEqual([]);
  });

  it.each(["[1]", "not json", "3"])("refuses arguments %j that are no object", (text) => {
    expect(() => argumentsObject(text, "f")).toThrow(/tool "f" with arguments that are not/);
  });

  it("puts streamed fragments together by index", () => {
    const calls = new StreamedToolCalls();
    expect(calls.any).toBe(false);
    calls.push([
      { index: 0, id: "c1", type: "function", function: { name: "wea", arguments: "" } },
    ]);
    calls.push([{ index: 0, function: { name: "ther", arguments: '{"ci' } }]);
    calls.push([
      { index: 0, function: { arguments: 'ty":"Paris"}' } },
      { index: 1, id: "c2", function: { name: "time", arguments: "{}" } },
    ]);
    calls.push(undefined);
    expect(calls.any).toBe(true);
    expect(calls.calls()).toEqual([
      { id: "c1", function: { index: 0, name: "weather", arguments: { city: "Paris" } } },
      { id: "c2", function: { index: 1, name: "time", arguments: {} } },
    ]);
  });

  it("refuses a stream with an absurd tool call index", () => {
    const calls = new StreamedToolCalls();
    expect(() => calls.push([{ index: 100_000, function: { name: "f" } }])).toThrow(
      /more than 256 tool calls/,
    );
  });
});
