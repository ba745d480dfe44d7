import { ApiError } from "@cortex/http-kit";
import type { ChatModelFunctions, GbnfJsonSchema } from "node-llama-cpp";
import { literal } from "./gbnf.js";
import type { Sampling, ToolChoice, ToolFunction } from "./requests.js";
import { compileSchema, SCHEMA_LIMITS, SchemaError } from "./schema-grammar.js";

/** Subschemas of all of a request's tools together: each grammar is parsed, and documented. */
export const MAX_TOOL_NODES = 4 * SCHEMA_LIMITS.nodes;

// What a request's response_format and tools ask of generation, as grammars (GBNF text) and
// the functions a chat wrapper documents to the model. Pure, so a route can check a request
// before it waits for a slot; the engine turns the texts into llama.cpp grammars (cached).

/** How tool calls are made: the names a forced call may take, and each one's grammar. */
export interface ToolPlan {
  readonly choice: Exclude<ToolChoice, "none">;
  /** What the model is told it may call: every tool of the request. */
  readonly functions: ChatModelFunctions;
  /** The names a call may take: the named one, or every tool. */
  readonly allowed: readonly string[];
  /** The grammar of each allowed tool's arguments (a JSON object). */
  readonly parameters: ReadonlyMap<string, string>;
  /** The grammar of a name among `allowed`, when there are several. */
  readonly names?: string;
}

export interface Constraints {
  /** The grammar a text answer is held to; free text when absent. */
  readonly format?: string;
  readonly tools?: ToolPlan;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const compiled = (schema: unknown, strict: boolean, path: string, param: string) => {
  try {
    return compileSchema(schema, { strict, path });
  } catch (error) {
    if (error instanceof SchemaError)
      throw new ApiError("invalid_request_error", error.message, { param });
    throw error;
  }
};

const ANY_OBJECT = { type: "object" };
const NO_ARGUMENTS = { type: "object", properties: {}, additionalProperties: false };

const formatGrammar = (format: Sampling["format"]): string | undefined => {
  if (!format || format.type === "text") return undefined;
  const path = "response_format.json_schema.schema";
  const schema = format.type === "json_object" ? ANY_OBJECT : (format.schema ?? ANY_OBJECT);
  const strict = format.type === "json_schema" && format.strict === true;
  return compiled(schema, strict, path, "response_format").grammar;
};

/** A function's parameters must describe an object, as OpenAI requires. */
const describesObject = (schema: Record<string, unknown>): boolean =>
  schema.type === "object" || (schema.type === undefined && isObject(schema.properties));

const toolPlan = (functions: readonly ToolFunction[], choice: Exclude<ToolChoice, "none">) => {
  const documented: Record<string, ChatModelFunctions[string]> = Object.create(null);
  const parameters = new Map<string, string>();
  const allowed = typeof choice === "object" ? [choice.name] : functions.map((fn) => fn.name);
  let nodes = 0;
  functions.forEach((fn, index) => {
    const path = `tools[${index}].function.parameters`;
    const schema = fn.parameters ?? NO_ARGUMENTS;
    if (!isObject(schema) || !describesObject(schema))
      throw new ApiError(
        "invalid_request_error",
        `${path} must be a JSON Schema of an object (type: "object")`,
        { param: path },
      );
    const { grammar, docs, nodes: used } = compiled(schema, fn.strict === true, path, path);
    nodes += used;
    if (nodes > MAX_TOOL_NODES)
      throw new ApiError(
        "invalid_request_error",
        `tools: the tools' parameters have more than ${MAX_TOOL_NODES} subschemas in all`,
        { param: "tools" },
      );
    if (allowed.includes(fn.name)) parameters.set(fn.name, grammar);
    documented[fn.name] = {
      ...(fn.description ? { description: fn.description } : {}),
      ...(fn.parameters ? { params: docs as GbnfJsonSchema } : {}),
    };
  });
  return {
    choice,
    functions: documented,
    allowed,
    parameters,
    ...(allowed.length > 1
      ? { names: `root ::= ${allowed.map((name) => literal(name)).join(" | ")}\n` }
      : {}),
  };
};

/** Throws a 400 ApiError for a schema or combination the harness cannot honour. */
export const constraintsOf = (sampling: Sampling): Constraints => {
  const format = formatGrammar(sampling.format);
  const tools = sampling.tools;
  if (!tools || tools.choice === "none" || tools.functions.length === 0)
    return format === undefined ? {} : { format };
  if (tools.choice === "auto" && format !== undefined)
    throw new ApiError(
      "invalid_request_error",
      'response_format with tools the model may call (tool_choice "auto") is not supported by the built-in harness: a grammar holds the text to the format, so no call could start; send tool_choice "required", a named function or "none"',
      { param: "response_format" },
    );
  const plan = toolPlan(tools.functions, tools.choice);
  return format === undefined ? { tools: plan } : { format, tools: plan };
};
