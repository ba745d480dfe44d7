import { describe, expect, it } from "vitest";
import { chatPlan } from "./translate-chat.js";

const same = (name: string) => name;

describe("chatPlan", () => {
  it("asks /v1/chat/completions, streamed with usage by default, with the options mapped", () => {
    expect(
      chatPlan(
        {
          model: "small:latest",
          messages: [
            { role: "system", content: "be brief" },
            { role: "user", content: "hi" },
          ],
          options: { num_predict: 10, temperature: 0, num_ctx: 4096 },
          think: false,
          keep_alive: "5m",
        },
        (name) => name.replace(":latest", ""),
      ),
    ).toEqual({
      kind: "infer",
      model: "small",
      path: "/v1/chat/completions",
      stream: true,
      ignored: ["keep_alive", "think", "options.num_ctx"],
      body: {
        model: "small",
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: "hi" },
        ],
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: 10,
        temperature: 0,
      },
    });
  });

  it("passes tools as sent, and history's tool calls and answers in OpenAI's form", () => {
    const tool = {
      type: "function",
      function: { name: "weather", parameters: { type: "object" }, strict: true },
    };
    const plan = chatPlan(
      {
        model: "m",
        stream: false,
        tools: [tool],
        format: "json",
        messages: [
          { role: "user", content: "weather in Oslo and the time?" },
          {
            role: "assistant",
            content: "",
            tool_calls: [
              { function: { name: "time", arguments: {} } },
              { function: { name: "weather", arguments: { city: "Oslo" } } },
            ],
          },
          { role: "tool", content: "rain", tool_name: "weather" },
          { role: "tool", content: "noon" },
          { role: "tool", content: "late", tool_call_id: "given" },
        ],
      },
      same,
    );
    expect(plan.kind === "infer" && plan.body).toEqual({
      model: "m",
      stream: false,
      tools: [tool],
      response_format: { type: "json_object" },
      messages: [
        { role: "user", content: "weather in Oslo and the time?" },
        {
          role: "assistant",
          content: "",
          tool_calls: [
            { id: "call_1_0", type: "function", function: { name: "time", arguments: "{}" } },
            {
              id: "call_1_1",
              type: "function",
              function: { name: "weather", arguments: '{"city":"Oslo"}' },
            },
          ],
        },
        { role: "tool", content: "rain", tool_call_id: "call_1_1" },
        { role: "tool", content: "noon", tool_call_id: "call_1_0" },
        { role: "tool", content: "late", tool_call_id: "given" },
      ],
    });
    // The tool object itself goes on, fields cortex does not know included.
    expect(plan.kind === "infer" && (plan.body.tools as unknown[])[0]).toBe(tool);
  });

  it("asks for a JSON schema's format", () => {
    const schema = { type: "object", properties: { ok: { type: "boolean" } } };
    const plan = chatPlan(
      { model: "m", messages: [{ role: "user", content: "?" }], format: schema },
      same,
    );
    expect(plan.kind === "infer" && plan.body.response_format).toEqual({
      type: "json_schema",
      json_schema: { name: "ollama_format", schema },
    });
  });

  it.each([
    [undefined, "load"],
    ["10m", "load"],
    [0, "unload"],
    ["0s", "unload"],
  ])("without messages (keep_alive %j) plans a %s", (keepAlive, kind) => {
    expect(
      chatPlan({ model: "m", messages: [], keep_alive: keepAlive, stream: false }, same),
    ).toEqual({
      kind,
      model: "m",
      stream: false,
    });
    expect(chatPlan({ model: "m", keep_alive: keepAlive }, same).kind).toBe(kind);
  });

  it.each([
    [{ messages: [] }, /model/],
    [{ model: "", messages: [] }, /model/],
    [{ model: "a b", messages: [] }, /model/],
    [
      { model: "m", messages: [{ role: "user", content: "x", images: ["aGk="] }] },
      /images are not supported/,
    ],
    [{ model: "m", messages: [{ role: "robot", content: "x" }] }, /messages\[0\]\.role/],
    [{ model: "m", messages: [{ role: "user", content: 1 }] }, /messages\[0\]\.content/],
    [{ model: "m", messages: "hi" }, /messages/],
    [
      { model: "m", messages: [{ role: "user", content: "x" }], tools: [{ type: "x" }] },
      /a tool must be/,
    ],
    [{ model: "m", messages: [{ role: "user", content: "x" }], format: "xml" }, /format must be/],
    [{ model: "m", messages: [{ role: "user", content: "x" }], stream: "yes" }, /stream/],
    [{ model: "m", messages: [{ role: "user", content: "x" }], think: "max" }, /think/],
    [{ model: "m", messages: [], keep_alive: "soon" }, /keep_alive/],
    [[1], /must be a JSON object/],
  ])("refuses %j", (body, message) => {
    expect(() => chatPlan(body, same)).toThrow(message);
  });
});
