import { inferenceFields } from "@cortex/http-kit";
import { RequestFilters } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { applyFilters, hasFilters } from "./filters.js";

// A model's filters on a JSON body: what is stripped, set and kept, byte for byte.

const filters = (input: unknown) => RequestFilters.parse(input);

const apply = (body: string, input: unknown): string =>
  applyFilters(Buffer.from(body), filters(input)).toString("utf8");

describe("applyFilters", () => {
  it("strips named members and sets others, keeping the rest as sent", () => {
    const body =
      '{ "model" : "m",\n "messages":[{"role":"user","content":"top_k \\"x\\""}], "top_k": 40, "n":1.50, "seed": 12345678901234567890 }';
    const out = apply(body, {
      strip_params: ["top_k"],
      set_params: { temperature: 0.2, stop: ["</s>"] },
    });
    expect(out).toBe(
      '{"model" : "m","messages":[{"role":"user","content":"top_k \\"x\\""}],"n":1.50,"seed": 12345678901234567890,"temperature":0.2,"stop":["</s>"]}',
    );
    expect(JSON.parse(out)).toMatchObject({ model: "m", temperature: 0.2, n: 1.5 });
  });

  it("replaces a member the client set, however often it appears", () => {
    const out = apply('{"temperature":1.5,"model":"m","temperature":2}', {
      set_params: { temperature: 0 },
    });
    expect(out).toBe('{"model":"m","temperature":0}');
  });

  it("strips every copy of a repeated member", () => {
    expect(apply('{"top_k":1,"model":"m","top_k":2}', { strip_params: ["top_k"] })).toBe(
      '{"model":"m"}',
    );
  });

  it("matches names however the client escaped them, and leaves nested members alone", () => {
    const out = apply('{"model":"m","top\\u005fk":3,"options":{"top_k":4}}', {
      strip_params: ["top_k"],
    });
    expect(out).toBe('{"model":"m","options":{"top_k":4}}');
  });

  it("works on objects of every shape: empty, one member, values of every kind", () => {
    expect(apply("{}", { set_params: { a: 1 } })).toBe('{"a":1}');
    expect(apply(' {"top_k":1} ', { strip_params: ["top_k"] })).toBe("{}");
    const body =
      '{"a":"s,}]","b":-1e-3,"c":true,"d":false,"e":null,"f":[1,[2,{"g":"}"}]],"h":{},"i":[]}';
    expect(apply(body, { strip_params: ["zz"] })).toBe(body);
    expect(JSON.parse(apply(body, { strip_params: ["f", "b"] }))).toEqual({
      a: "s,}]",
      c: true,
      d: false,
      e: null,
      h: {},
      i: [],
    });
  });

  it("never decodes a key too long to be a filter's", () => {
    const long = "k".repeat(10_000);
    const body = `{"${long}":1,"model":"m"}`;
    expect(apply(body, { strip_params: ["k"] })).toBe(body);
  });

  it("gives a body the inference scan accepts, with the model where it was", () => {
    const out = applyFilters(
      Buffer.from('{"model":"m","stream":true,"top_k":1}'),
      filters({ strip_params: ["top_k"], set_params: { max_tokens: 16 } }),
    );
    expect(inferenceFields(out)).toMatchObject({ model: "m", stream: true });
  });

  it("copes with a deeply nested body without recursion", () => {
    const depth = 60;
    const body = `{"model":"m","x":${"[".repeat(depth)}${"]".repeat(depth)},"top_k":1}`;
    expect(apply(body, { strip_params: ["top_k"] })).toBe(
      `{"model":"m","x":${"[".repeat(depth)}${"]".repeat(depth)}}`,
    );
  });
});

describe("hasFilters", () => {
  it.each([
    [undefined, false],
    [{}, false],
    [{ strip_params: ["a"] }, true],
    [{ set_params: { a: 1 } }, true],
  ])("%j → %s", (input, expected) => {
    expect(hasFilters(input === undefined ? undefined : filters(input))).toBe(expected);
  });
});
