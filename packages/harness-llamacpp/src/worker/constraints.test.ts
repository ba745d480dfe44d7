import { ApiError } from "@cortex/http-kit";
import { describe, expect, it } from "vitest";
import { constraintsOf, MAX_TOOL_NODES } from "./constraints.js";
import type { Sampling, ToolUse } from "./requests.js";

const base: Sampling = {
  maxTokens: undefined,
  temperature: 0.8,
  topP: undefined,
  seed: undefined,
  stop: [],
};

const weather = {
  name: "get_weather",
  description: "Weather for a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

const refusal = (sampling: Sampling): ApiError => {
  try {
    constraintsOf(sampling);
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error("accepted");
};

describe("constraintsOf", () => {
  it("has nothing to hold free text to", () => {
    expect(constraintsOf(base)).toEqual({});
    expect(constraintsOf({ ...base, format: { type: "text" } })).toEqual({});
  });

  it("holds json_object to any object, and json_schema to its schema", () => {
    expect(constraintsOf({ ...base, format: { type: "json_object" } }).format).toContain(
      "root ::= r2",
    );
    const schema = { type: "object", properties: { n: { type: "integer" } } };
    expect(constraintsOf({ ...base, format: { type: "json_schema", schema } }).format).toContain(
      '"\\"n\\"" ws ":" ws integer',
    );
  });

  it("names the schema's fault, under response_format", () => {
    const format = { type: "json_schema", schema: { type: "string", pattern: "a" }, strict: true };
    expect(refusal({ ...base, format } as Sampling)).toMatchObject({
      param: "response_format",
      message: expect.stringContaining("response_format.json_schema.schema.pattern"),
    });
  });

  it("documents every tool, and allows the named one or all", () => {
    const tools: ToolUse = {
      functions: [weather, { name: "now" }],
      choice: "required",
    };
    const plan = constraintsOf({ ...base, tools }).tools;
    expect(plan?.allowed).toEqual(["get_weather", "now"]);
    expect(plan?.names).toBe('root ::= "get_weather" | "now"\n');
    expect(plan?.functions).toEqual({
      get_weather: {
        description: "Weather for a city",
        params: { type: "object", properties: { city: { type: "string" } } },
      },
      now: {},
    });
    // A function without parameters is called with an empty object.
    expect(plan?.parameters.get("now")).toContain('root ::= r1\nr1 ::= "{" ws "}"');
    const named = constraintsOf({ ...base, tools: { ...tools, choice: { name: "now" } } }).tools;
    expect(named?.allowed).toEqual(["now"]);
    expect(named?.names).toBeUndefined();
    expect([...(named?.parameters.keys() ?? [])]).toEqual(["now"]);
    expect(Object.keys(named?.functions ?? {})).toEqual(["get_weather", "now"]);
  });

  it("refuses parameters that are not an object, and strict tools with unenforceable checks", () => {
    const tools = (parameters: unknown, strict = false): ToolUse => ({
      functions: [{ name: "f", parameters, strict }],
      choice: "auto",
    });
    expect(refusal({ ...base, tools: tools({ type: "string" }) })).toMatchObject({
      param: "tools[0].function.parameters",
    });
    const minimum = { type: "object", properties: { n: { type: "integer", minimum: 1 } } };
    expect(refusal({ ...base, tools: tools(minimum, true) }).message).toContain(
      "tools[0].function.parameters.properties.n.minimum",
    );
    expect(constraintsOf({ ...base, tools: tools(minimum) }).tools?.allowed).toEqual(["f"]);
  });

  it("bounds the tools' schemas together", () => {
    const properties = Object.fromEntries(
      Array.from({ length: 1500 }, (_, i) => [`p${i}`, { type: "integer" }]),
    );
    const functions = Array.from({ length: 6 }, (_, i) => ({
      name: `f${i}`,
      parameters: { type: "object", properties },
    }));
    expect(refusal({ ...base, tools: { functions, choice: "auto" } })).toMatchObject({
      param: "tools",
      message: expect.stringContaining(`more than ${MAX_TOOL_NODES} subschemas`),
    });
  });

  it("refuses a format beside tools the model may call, and ignores tools it may not", () => {
    const format = { type: "json_object" } as const;
    const functions = [weather];
    expect(refusal({ ...base, format, tools: { functions, choice: "auto" } })).toMatchObject({
      param: "response_format",
    });
    expect(
      constraintsOf({ ...base, format, tools: { functions, choice: "required" } }).tools,
    ).toBeDefined();
    expect(constraintsOf({ ...base, tools: { functions, choice: "none" } })).toEqual({});
  });
});
