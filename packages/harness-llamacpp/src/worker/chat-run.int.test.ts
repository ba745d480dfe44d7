import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiError } from "@cortex/http-kit";
import {
  type ChatWrapper,
  getLlama,
  type Llama,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
  resolveChatWrapper,
} from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { writeTinyModel } from "../gguf/index.js";
import { buildSpmVocab } from "../gguf/vocab.js";
import { type ChatRunPlan, type RunResult, runChat } from "./chat-run.js";
import { completionTokensOf, runCompletion } from "./completion-run.js";
import { constraintsOf } from "./constraints.js";
import type { ToolCallEvent } from "./engine.js";
import { GrammarCache, GrammarError } from "./grammar-cache.js";
import { toHistory } from "./history.js";
import { shapedWrapper } from "./prompt-wrapper.js";
import type { Sampling, ToolUse } from "./requests.js";
import { samplersOf, vocabularyOf } from "./sampler.js";
import { compileSchema } from "./schema-grammar.js";

// Grammars, calls and sampling on the real tiny model, in this process: what the model writes
// under each grammar is checked with zod's own JSON Schema reader, which shares no code with
// the grammar compiler. The model's text is noise; only grammars give it shape.

let dir: string;
let llama: Llama;
let model: LlamaModel;
let sequence: LlamaContextSequence;
let wrapper: ChatWrapper;
let grammars: GrammarCache;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "harness-chat-run-"));
  const path = join(dir, "tiny.gguf");
  await writeTinyModel(path, { seed: 1 });
  llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const context = await model.createContext({ sequences: 1, contextSize: 4096, threads: 1 });
  sequence = context.getSequence();
  wrapper = resolveChatWrapper(model);
  grammars = new GrammarCache(llama, model);
});

afterAll(async () => {
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const base: Sampling = {
  maxTokens: 1500,
  temperature: 1,
  topP: undefined,
  seed: 1,
  stop: [],
};

const question = toHistory([{ role: "user", text: "What is the weather in Paris?" }]);

const run = async (
  sampling: Sampling,
  events: { onText?: (text: string) => void; onToolCall?: (event: ToolCallEvent) => void } = {},
  plan: Partial<ChatRunPlan> = {},
): Promise<RunResult> => {
  const { format, tools } = await grammars.ready(constraintsOf(sampling));
  return runChat(
    sequence,
    { history: question, wrapper, format, tools, stops: sampling.stop, ...plan },
    {
      samplers: samplersOf(sampling, model, vocabularyOf(model)),
      signal: new AbortController().signal,
      maxTokens: sampling.maxTokens ?? 1500,
    },
    events,
  );
};

/** Characters as JSON Schema counts them (code points), for maxLength. */
const length = (text: string): number => Array.from(text).length;

/**
 * A validator of `schema` from zod's JSON Schema reader, without string lengths: zod counts
 * UTF-16 units where JSON Schema counts characters (`length` checks those).
 */
const checkerOf = (schema: object) => {
  const strip = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(strip)
      : typeof value === "object" && value !== null
        ? Object.fromEntries(
            Object.entries(value)
              .filter(([key]) => key !== "maxLength" && key !== "minLength")
              .map(([key, inner]) => [key, strip(inner)]),
          )
        : value;
  return z.fromJSONSchema(strip(schema) as z.core.JSONSchema.JSONSchema);
};

const person = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 12 },
    age: { type: "integer" },
    height: { type: "number" },
    tags: { type: "array", items: { enum: ["a", "b", 3, null] }, maxItems: 3 },
    nick: { anyOf: [{ type: "string", maxLength: 4 }, { type: "null" }] },
    born: { type: "string", format: "date" },
    pair: { type: "array", prefixItems: [{ type: "boolean" }, { const: "x" }], items: false },
  },
  required: ["name", "age", "height", "tags", "nick", "born", "pair"],
  additionalProperties: false,
};

const weather = {
  type: "object",
  properties: {
    city: { type: "string", maxLength: 20 },
    days: { type: "integer" },
    unit: { enum: ["c", "f"] },
  },
  required: ["city", "days", "unit"],
  additionalProperties: false,
};

const tools = (choice: ToolUse["choice"]): ToolUse => ({
  functions: [
    { name: "get_weather", description: "Weather for a city", parameters: weather },
    { name: "get_time", parameters: { type: "object", properties: { utc: { type: "boolean" } } } },
  ],
  choice,
});

describe("grammars", () => {
  it.each([
    ["a person", person],
    ["any object", { type: "object" }],
    [
      "a recursive list",
      { $defs: { n: { type: "array", items: { $ref: "#/$defs/n" } } }, $ref: "#/$defs/n" },
    ],
    ["a map of integers", { additionalProperties: { type: "integer" }, minProperties: 1 }],
    ["date-times and uuids", { prefixItems: [{ format: "date-time" }, { format: "uuid" }] }],
    ["odd property names", { properties: { 'a"b\\c': { const: "\n" }, "é ü": { type: "null" } } }],
    ["a long bounded string", { type: "string", minLength: 100, maxLength: 4096 }],
  ])("llama.cpp parses the grammar of %s", async (_, schema) => {
    await expect(
      grammars.get(compileSchema(schema, { strict: false, path: "s" }).grammar),
    ).resolves.toBeDefined();
  });

  it("refuses a grammar llama.cpp cannot parse, and does not keep it", async () => {
    await expect(grammars.get("root ::= nowhere\n")).rejects.toBeInstanceOf(GrammarError);
    await expect(grammars.get("root ::= nowhere\n")).rejects.toBeInstanceOf(GrammarError);
  });

  it("holds a chat answer to a schema: every answer parses and validates", async () => {
    const check = checkerOf(person);
    const format = { type: "json_schema", schema: person, strict: true } as const;
    for (const seed of [1, 2, 3, 4, 5]) {
      const pieces: string[] = [];
      const answer = await run({ ...base, seed, format }, { onText: (text) => pieces.push(text) });
      expect(answer.finishReason).toBe("stop");
      expect(pieces.join("")).toBe(answer.text);
      const value = JSON.parse(answer.text) as { name: string; nick: string | null };
      expect(check.safeParse(value).error).toBeUndefined();
      expect(length(value.name)).toBeLessThanOrEqual(12);
      expect(length(value.nick ?? "")).toBeLessThanOrEqual(4);
    }
  });

  it("holds a completion to a schema", async () => {
    const format = { type: "json_schema", schema: weather } as const;
    const grammar = await grammars.get(constraintsOf({ ...base, format }).format ?? "");
    const { text } = completionTokensOf(model, "Weather as JSON:");
    const answer = await runCompletion(
      sequence,
      text,
      { grammar, stops: [], onText: undefined },
      {
        samplers: samplersOf({ ...base, seed: 3 }, model, vocabularyOf(model)),
        signal: new AbortController().signal,
        maxTokens: 500,
      },
    );
    expect(answer.finishReason).toBe("stop");
    const check = checkerOf(weather);
    expect(check.safeParse(JSON.parse(answer.text)).error).toBeUndefined();
  });
});

describe("tool calls", () => {
  const weatherCheck = checkerOf(weather);

  it("makes a required call: an allowed tool, arguments that validate, streamed in order", async () => {
    const names = new Set<string>();
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const events: ToolCallEvent[] = [];
      const answer = await run(
        { ...base, seed, tools: tools("required") },
        { onToolCall: (event) => events.push(event) },
      );
      expect(answer.finishReason).toBe("tool_calls");
      expect(answer.text).toBe("");
      const [call] = answer.toolCalls ?? [];
      if (!call) throw new Error("no call");
      names.add(call.name);
      expect(events[0]).toEqual({ type: "start", index: 0, name: call.name });
      const streamed = events.flatMap((event) => (event.type === "arguments" ? [event.text] : []));
      expect(streamed.join("")).toBe(call.arguments);
      const args = JSON.parse(call.arguments) as { city?: string };
      if (call.name === "get_weather") {
        expect(weatherCheck.safeParse(args).error).toBeUndefined();
        expect(length(args.city ?? "")).toBeLessThanOrEqual(20);
      } else expect(Object.keys(args)).toEqual(["utc"]);
    }
    expect([...names].every((name) => ["get_weather", "get_time"].includes(name))).toBe(true);
  });

  it("calls a named function", async () => {
    const answer = await run({ ...base, seed: 9, tools: tools({ name: "get_weather" }) });
    expect(answer.toolCalls?.map((call) => call.name)).toEqual(["get_weather"]);
    const args: unknown = JSON.parse(answer.toolCalls?.[0]?.arguments ?? "");
    expect(weatherCheck.safeParse(args).error).toBeUndefined();
  });

  it("reports a call cut by max_tokens as length", async () => {
    const answer = await run({ ...base, maxTokens: 4, tools: tools({ name: "get_weather" }) });
    expect(answer.finishReason).toBe("length");
  });

  it("with auto, writes text until the model opens a call, then makes the call", async () => {
    // The tiny model writes noise, so the call's opening is made a letter it soon writes.
    const settings = wrapper.settings;
    const opening = {
      ...settings,
      functions: {
        ...settings.functions,
        call: { ...settings.functions.call, prefix: "e", prefixAlternateMatches: [] },
      },
    };
    const eager = new Proxy(wrapper, {
      get: (target, property) => {
        if (property === "settings") return opening;
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const pieces: string[] = [];
    const answer = await run(
      { ...base, tools: tools("auto") },
      { onText: (text) => pieces.push(text) },
      { wrapper: eager },
    );
    expect(answer.finishReason).toBe("tool_calls");
    expect(answer.text).not.toContain("e");
    expect(pieces.join("")).toBe(answer.text);
    expect(answer.toolCalls).toHaveLength(1);
    // A client's stop sequence wins over a call the same text would start.
    const stopped = await run(
      { ...base, tools: tools("auto"), stop: ["e"] },
      {},
      { wrapper: eager },
    );
    expect(stopped).toMatchObject({ finishReason: "stop", stopSequence: "e" });
    expect(stopped.toolCalls).toBeUndefined();
  });

  it("shows the model calls and results of the history in its template's syntax", () => {
    const history = toHistory([
      { role: "user", text: "weather?" },
      {
        role: "assistant",
        text: "",
        toolCalls: [{ id: "1", name: "get_weather", arguments: { city: "Paris" } }],
      },
      { role: "tool", text: '{"temp": 21}', toolCallId: "1" },
    ]);
    const { functions } = constraintsOf({ ...base, tools: tools("auto") }).tools ?? {};
    const prompt = shapedWrapper(wrapper, { functions })
      .generateContextState({ chatHistory: history })
      .contextText.toString();
    expect(prompt).toContain("function get_weather(params: {");
    expect(prompt).toContain('unit: "c" | "f"');
    expect(prompt).toContain("function get_time(params: {utc: boolean});");
    expect(prompt).toContain('||call: get_weather({"city": "Paris"})');
    expect(prompt).toContain('||result: {"temp": 21}');
  });
});

describe("sampling", () => {
  const x = buildSpmVocab().tokens.indexOf("x");

  it("adds logit_bias to a token's logit", async () => {
    const answer = await run({ ...base, temperature: 0, maxTokens: 6, logitBias: [[x, 100]] });
    expect(answer.text).toBe("xxxxxx");
  });

  it("refuses ids outside the vocabulary and end-of-generation tokens", () => {
    const vocabulary = vocabularyOf(model);
    const tokens = buildSpmVocab().tokens;
    expect(vocabulary.size).toBe(tokens.length);
    for (const token of [tokens.length, model.tokens.eos ?? 2])
      expect(() => samplersOf({ ...base, logitBias: [[token, 1]] }, model, vocabulary)).toThrow(
        ApiError,
      );
  });

  it("keeps a grammar from bytes no UTF-8 text contains, and only a grammar", () => {
    const vocabulary = vocabularyOf(model);
    const tokens = buildSpmVocab().tokens;
    expect(vocabulary.unwritable.map((token) => tokens[token])).toEqual(
      ["F5", "F6", "F7", "F8", "F9", "FA", "FB", "FC", "FD", "FE", "FF"].map((hex) => `<0x${hex}>`),
    );
    const samplers = samplersOf(base, model, vocabulary);
    expect(samplers.free.tokenBias).toBeUndefined();
    expect(samplers.held.tokenBias).toBeDefined();
  });

  it("takes the penalties and llama.cpp's own samplers", async () => {
    const sampling = {
      ...base,
      maxTokens: 8,
      presencePenalty: 1.5,
      frequencyPenalty: 1,
      repeatPenalty: 1.3,
      topK: 5,
      minP: 0.1,
    };
    expect(samplersOf(sampling, model, vocabularyOf(model)).free).toMatchObject({
      topK: 5,
      minP: 0.1,
      repeatPenalty: { penalty: 1.3, presencePenalty: 1.5, frequencyPenalty: 1 },
    });
    const answer = await run(sampling);
    expect(answer.finishReason).toBe("length");
  });
});
