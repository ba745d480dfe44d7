import { z } from "zod";

// The OpenAI request fields beyond plain sampling, and what the built-in harness does with each
// (README "What the built-in harness honours" says the same):
// - honoured: response_format (text, json_object, json_schema: a grammar holds the answer to
//   it), tools / tool_choice (a grammar makes a forced call certain), parallel_tool_calls (at
//   most one call per answer, which both values allow), presence_penalty and frequency_penalty
//   (over the last 64 generated tokens), logit_bias (token ids of this model's vocabulary), and
//   llama.cpp's own top_k, min_p and repeat_penalty;
// - refused with 400, because they change the answer and the harness cannot do them: logprobs
//   and top_logprobs (node-llama-cpp does not report token probabilities while it generates),
//   audio and non-text modalities, reasoning_effort, verbosity, web_search_options, the legacy
//   functions / function_call, llama-server's grammar and json_schema, and for completions
//   suffix, best_of > 1 and logprobs;
// - ignored, as metadata or hints that do not change the answer: user, metadata, store,
//   service_tier, safety_identifier, prompt_cache_key, prompt_cache_retention, prediction (a
//   latency hint), a message's name, and any field this list does not name.

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** A JSON object (a JSON Schema, here); its contents are checked where it is compiled. */
const JsonObject = z.custom<Record<string, unknown>>(isObject, { error: "must be a JSON object" });

/** A field the harness cannot honour: absent or null, otherwise a 400 saying so. */
export const refused = (message: string) =>
  z
    .unknown()
    .optional()
    .refine((value) => value === undefined || value === null, { error: message });

const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

const FunctionName = z
  .string()
  .regex(NAME, "a function name is 1 to 64 letters, digits, underscores or dashes");

export const ResponseFormat = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.literal("text") }),
    z.object({ type: z.literal("json_object") }),
    z.object({
      type: z.literal("json_schema"),
      json_schema: z.object({
        name: z
          .string()
          .regex(NAME, "json_schema.name is 1 to 64 letters, digits, underscores or dashes")
          .optional(),
        description: z.string().max(16_384).nullable().optional(),
        schema: JsonObject.optional(),
        strict: z.boolean().nullable().optional(),
      }),
    }),
  ],
  { error: 'response_format.type must be "text", "json_object" or "json_schema"' },
);
export type ResponseFormat = z.infer<typeof ResponseFormat>;

/** OpenAI's own limit on tools per request. */
export const MAX_TOOLS = 128;

const Tool = z.object({
  type: z.literal("function", { error: 'only tools of type "function" are supported' }),
  function: z.object({
    name: FunctionName,
    description: z.string().max(16_384).nullable().optional(),
    parameters: JsonObject.nullable().optional(),
    strict: z.boolean().nullable().optional(),
  }),
});

export const Tools = z
  .array(Tool)
  .max(MAX_TOOLS, `at most ${MAX_TOOLS} tools are supported`)
  .superRefine((tools, ctx) => {
    const seen = new Set<string>();
    tools.forEach((tool, index) => {
      if (seen.has(tool.function.name))
        ctx.addIssue({
          code: "custom",
          path: [index, "function", "name"],
          message: `${tool.function.name} names two tools`,
        });
      seen.add(tool.function.name);
    });
  })
  .nullable()
  .optional();

export const ToolChoiceField = z
  .union(
    [
      z.enum(["none", "auto", "required"]),
      z.object({ type: z.literal("function"), function: z.object({ name: FunctionName }) }),
    ],
    {
      error:
        'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": …}}',
    },
  )
  .nullable()
  .optional();

/** A tool call of an assistant message in the history, as a client sends it back. */
export const HistoryToolCall = z.object({
  id: z.string().min(1).max(256),
  type: z.literal("function", { error: 'only tool calls of type "function" are supported' }),
  function: z.object({ name: z.string().min(1).max(256), arguments: z.string() }),
});

/** `logit_bias`: token ids (as JSON object keys) to a bias from -100 to 100. */
export const LogitBias = z
  .record(z.string(), z.number().min(-100).max(100))
  .superRefine((bias, ctx) => {
    const keys = Object.keys(bias);
    if (keys.length > 1024) ctx.addIssue({ code: "custom", message: "at most 1024 tokens" });
    for (const key of keys.filter((key) => !/^(0|[1-9][0-9]{0,9})$/.test(key)))
      ctx.addIssue({ code: "custom", path: [key], message: "logit_bias keys are token ids" });
  })
  .nullable()
  .optional();

const NO_LOGPROBS =
  "the built-in llama.cpp harness does not produce log probabilities (node-llama-cpp does not report them while it generates): leave logprobs out";

/** Fields chat and completions share beyond sampling: honoured, refused or ignored. */
export const SHARED_FIELDS = {
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  logit_bias: LogitBias,
  // llama.cpp's own sampling parameters, as llama-server takes them.
  top_k: z.int().min(0).nullable().optional(),
  min_p: z.number().min(0).max(1).nullable().optional(),
  repeat_penalty: z.number().gt(0).max(10).nullable().optional(),
  response_format: ResponseFormat.nullable().optional(),
  grammar: refused(
    "grammar is not supported by the built-in harness: send response_format with a json_schema",
  ),
  json_schema: refused(
    "json_schema is llama-server's field: send response_format with a json_schema instead",
  ),
} as const;

/** Chat's own fields beyond messages and sampling. */
export const CHAT_FIELDS = {
  tools: Tools,
  tool_choice: ToolChoiceField,
  parallel_tool_calls: z.boolean().nullable().optional(),
  logprobs: z
    .boolean()
    .nullable()
    .optional()
    .refine((logprobs) => logprobs !== true, { error: NO_LOGPROBS }),
  top_logprobs: z
    .int()
    .min(0)
    .max(20)
    .nullable()
    .optional()
    .refine((top) => !top, { error: NO_LOGPROBS }),
  modalities: z
    .array(z.string())
    .nullable()
    .optional()
    .refine((modalities) => (modalities ?? []).every((modality) => modality === "text"), {
      error: 'only the "text" modality is supported: this model writes text',
    }),
  audio: refused("audio output is not supported: this model writes text"),
  reasoning_effort: refused(
    "reasoning_effort is not supported by the built-in harness: leave it out",
  ),
  verbosity: refused("verbosity is not supported by the built-in harness: leave it out"),
  web_search_options: refused("web search is not supported by the built-in harness"),
  functions: refused("the legacy functions field is not supported: send tools instead"),
  function_call: refused("the legacy function_call field is not supported: send tool_choice"),
} as const;

/** Completions' own fields the harness refuses. */
export const COMPLETION_FIELDS = {
  suffix: z
    .string()
    .nullable()
    .optional()
    .refine((suffix) => !suffix, { error: "suffix (fill-in-the-middle) is not supported" }),
  best_of: z.literal(1, { error: "only best_of = 1 is supported" }).nullable().optional(),
  logprobs: refused(NO_LOGPROBS),
} as const;
