import { describe, expect, it } from "vitest";
import {
  ignoredFields,
  ignoredNote,
  isZeroKeepAlive,
  KeepAlive,
  loadOrUnload,
  mapOptions,
  responseFormatOf,
} from "./options.js";

describe("mapOptions", () => {
  it("maps the sampling options and names the rest as ignored", () => {
    expect(
      mapOptions({
        num_predict: 64,
        temperature: 0.2,
        top_p: 0.9,
        seed: 7,
        stop: ["\n\n", "User:"],
        top_k: 40,
        min_p: 0.05,
        repeat_penalty: 1.1,
        presence_penalty: 0.5,
        frequency_penalty: 0.25,
        num_ctx: 8192,
        num_gpu: 99,
        mirostat: 0,
      }),
    ).toEqual({
      fields: {
        max_tokens: 64,
        temperature: 0.2,
        top_p: 0.9,
        seed: 7,
        stop: ["\n\n", "User:"],
        top_k: 40,
        min_p: 0.05,
        repeat_penalty: 1.1,
        presence_penalty: 0.5,
        frequency_penalty: 0.25,
      },
      ignored: ["num_ctx", "num_gpu", "mirostat"],
    });
  });

  it.each([-1, -2])("num_predict %i means no limit", (value) => {
    expect(mapOptions({ num_predict: value }).fields).toEqual({});
  });

  it("takes a single stop string as a list, and null values as absent", () => {
    expect(mapOptions({ stop: "END", temperature: null }).fields).toEqual({ stop: ["END"] });
  });

  it.each([
    [{ num_predict: 0 }, /num_predict must be a positive/],
    [{ num_predict: 1.5 }, /num_predict must be a whole number/],
    [{ seed: "7" }, /seed must be a number/],
    [{ temperature: "hot" }, /temperature must be a number/],
    [{ top_k: 2.5 }, /top_k must be a whole number/],
    [{ stop: [1] }, /stop must be a list/],
    [{ stop: Array.from({ length: 65 }, () => "x") }, /stop must be a list of at most 64/],
    ["fast", /options must be an object/],
    [[1], /options must be an object/],
    [Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`o${i}`, 1])), /at most 128/],
  ])("refuses %j", (options, message) => {
    expect(() => mapOptions(options)).toThrow(message);
  });

  it("has nothing to map without options", () => {
    expect(mapOptions(undefined)).toEqual({ fields: {}, ignored: [] });
    expect(mapOptions(null)).toEqual({ fields: {}, ignored: [] });
  });

  it("reads own properties only", () => {
    const options = JSON.parse('{"__proto__": {"temperature": 2}, "top_p": 0.5}');
    expect(mapOptions(options)).toEqual({ fields: { top_p: 0.5 }, ignored: ["__proto__"] });
  });
});

describe("keep_alive", () => {
  it.each([
    [0, true],
    ["0", true],
    ["0s", true],
    ["0.0m", true],
    ["00h", true],
    [5, false],
    ["5m", false],
    ["1h0m", false],
    [-1, false],
    ["-1", false],
    [null, false],
    [undefined, false],
  ])("%j is zero: %s", (value, zero) => {
    expect(isZeroKeepAlive(KeepAlive.parse(value))).toBe(zero);
  });

  it.each(["five minutes", "5 m", "", "1d", "x".repeat(65)])("refuses %j", (value) => {
    expect(KeepAlive.safeParse(value).success).toBe(false);
  });

  it("plans an unload for zero and a load otherwise", () => {
    expect(loadOrUnload("m", 0, true)).toEqual({ kind: "unload", model: "m", stream: true });
    expect(loadOrUnload("m", "10m", false)).toEqual({ kind: "load", model: "m", stream: false });
    expect(loadOrUnload("m", undefined, false).kind).toBe("load");
  });
});

describe("responseFormatOf", () => {
  it("maps json and schemas, and nothing for empty formats", () => {
    expect(responseFormatOf("json")).toEqual({ type: "json_object" });
    const schema = { type: "object", properties: { a: { type: "string" } } };
    expect(responseFormatOf(schema)).toEqual({
      type: "json_schema",
      json_schema: { name: "ollama_format", schema },
    });
    expect(responseFormatOf("")).toBeUndefined();
    expect(responseFormatOf(null)).toBeUndefined();
    expect(responseFormatOf(undefined)).toBeUndefined();
  });

  it.each(["yaml", 1, ["json"]])("refuses %j", (format) => {
    expect(() => responseFormatOf(format)).toThrow(/format must be "json" or a JSON schema/);
  });
});

describe("ignored fields", () => {
  it("names the fields sent and the options ignored", () => {
    const body = { think: true, keep_alive: null, model: "m" };
    expect(
      ignoredFields(body, ["think", "keep_alive", "logprobs"], mapOptions({ num_ctx: 1 })),
    ).toEqual(["think", "options.num_ctx"]);
  });

  it("bounds what a debug line repeats of client-chosen names", () => {
    const names = Array.from({ length: 40 }, (_, i) => `${"n".repeat(100)}${i}`);
    const note = ignoredNote(names);
    expect(note).toHaveLength(16);
    expect(note[0]).toBe(`${"n".repeat(64)}…`);
  });
});
