import { ModelAlias } from "@cortex/protocol";
import { z } from "zod";
import { CortexError } from "../errors.js";

// The fields every Ollama inference request may carry (`options`, `keep_alive`, `format`, the
// model's name), checked and turned into what cortex's OpenAI endpoint understands. Pure: what
// is ignored is returned as notes for the caller's debug line, never logged here.

/** The OpenAI (and llama.cpp-style) sampling fields an Ollama `options` object maps to. */
export interface SamplingFields {
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  seed?: number;
  stop?: string[];
  top_k?: number;
  min_p?: number;
  repeat_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
}

/** What an OpenAI body's `response_format` is for an Ollama `format`. */
export type ResponseFormat =
  | { type: "json_object" }
  | { type: "json_schema"; json_schema: { name: string; schema: object } };

/** Option names that may come in `options`, at most; more is refused rather than walked. */
const MAX_OPTIONS = 128;
/** Stop sequences at most (Ollama takes a list; the harness decides how many it honours). */
const MAX_STOP = 64;
/** The longest stop sequence. */
const MAX_STOP_CHARS = 1024;
/** Ignored option names a debug line lists at most (a client chooses them). */
const MAX_NOTED = 16;

/** The model's name, as aliases are: cortex resolves it (and `:latest`, see models.ts). */
export const OllamaModelName = ModelAlias;

/** `keep_alive`: a Go duration (`"5m"`, `"1h30m"`, `"0"`), or a number of seconds. */
export const KeepAlive = z
  .union([
    z.number().refine(Number.isFinite, "keep_alive must be a finite number of seconds"),
    z
      .string()
      .max(64)
      .regex(
        /^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)?)+$/,
        'keep_alive must be a duration such as "5m", "1h30m" or "0", or a number of seconds',
      ),
  ])
  .nullable()
  .optional();

/** Whether `keep_alive` says "unload now" (zero, in any unit). */
export const isZeroKeepAlive = (value: z.output<typeof KeepAlive>): boolean =>
  value !== undefined &&
  value !== null &&
  (typeof value === "number" ? value === 0 : !/[1-9]/.test(value));

/**
 * The `response_format` for an Ollama `format`: `"json"` → `json_object`, a JSON schema (an
 * object, passed on as sent) → `json_schema`; nothing for `""` or null; 400 otherwise.
 */
export const responseFormatOf = (format: unknown): ResponseFormat | undefined => {
  if (format === undefined || format === null || format === "") return undefined;
  if (format === "json") return { type: "json_object" };
  if (typeof format !== "object" || Array.isArray(format))
    throw new CortexError(
      "invalid_request_error",
      'format must be "json" or a JSON schema object',
      { param: "format" },
    );
  return { type: "json_schema", json_schema: { name: "ollama_format", schema: format } };
};

const finite = (name: string, value: unknown): number => {
  if (typeof value !== "number" || !Number.isFinite(value))
    throw new CortexError("invalid_request_error", `options.${name} must be a number`, {
      param: `options.${name}`,
    });
  return value;
};

const whole = (name: string, value: unknown): number => {
  const number = finite(name, value);
  if (!Number.isSafeInteger(number))
    throw new CortexError("invalid_request_error", `options.${name} must be a whole number`, {
      param: `options.${name}`,
    });
  return number;
};

const stopOf = (value: unknown): string[] => {
  const list = typeof value === "string" ? [value] : value;
  if (
    !Array.isArray(list) ||
    list.length > MAX_STOP ||
    !list.every((entry) => typeof entry === "string" && entry.length <= MAX_STOP_CHARS)
  )
    throw new CortexError(
      "invalid_request_error",
      `options.stop must be a list of at most ${MAX_STOP} strings of at most ${MAX_STOP_CHARS} characters`,
      { param: "options.stop" },
    );
  return list as string[];
};

/** Options passed on under the same name, as numbers. */
const SAME_NAME = [
  "temperature",
  "top_p",
  "min_p",
  "repeat_penalty",
  "presence_penalty",
  "frequency_penalty",
] as const;

/** The sampling fields of an Ollama `options` object, and the names it ignored. */
export interface MappedOptions {
  readonly fields: SamplingFields;
  /** Option names with no meaning behind an OpenAI endpoint (`num_ctx`, `num_gpu`, …). */
  readonly ignored: readonly string[];
}

/**
 * Maps Ollama's `options`: `num_predict` → `max_tokens` (-1 and -2, "no limit" and "fill the
 * context", → none), `temperature`, `top_p`, `seed`, `stop` as they are, and `top_k`, `min_p`,
 * `repeat_penalty`, `presence_penalty`, `frequency_penalty` as llama.cpp's server reads them.
 * Everything else (`num_ctx`, runtime options: the catalogue and the harness own them) is
 * ignored and named in `ignored`. Own properties only; a null value counts as absent.
 */
export const mapOptions = (options: unknown): MappedOptions => {
  if (options === undefined || options === null) return { fields: {}, ignored: [] };
  if (typeof options !== "object" || Array.isArray(options))
    throw new CortexError("invalid_request_error", "options must be an object", {
      param: "options",
    });
  const names = Object.keys(options);
  if (names.length > MAX_OPTIONS)
    throw new CortexError(
      "invalid_request_error",
      `options may hold at most ${MAX_OPTIONS} names`,
      { param: "options" },
    );
  const fields: SamplingFields = {};
  const ignored: string[] = [];
  const record = options as Record<string, unknown>;
  for (const name of names) {
    const value = record[name];
    if (value === null || value === undefined) continue;
    switch (name) {
      case "num_predict": {
        const tokens = whole(name, value);
        if (tokens === -1 || tokens === -2) break;
        if (tokens <= 0)
          throw new CortexError(
            "invalid_request_error",
            "options.num_predict must be a positive number of tokens, or -1 for no limit",
            { param: "options.num_predict" },
          );
        fields.max_tokens = tokens;
        break;
      }
      case "seed":
        fields.seed = whole(name, value);
        break;
      case "top_k":
        fields.top_k = whole(name, value);
        break;
      case "stop":
        fields.stop = stopOf(value);
        break;
      case "temperature":
      case "top_p":
      case "min_p":
      case "repeat_penalty":
      case "presence_penalty":
      case "frequency_penalty":
        fields[name satisfies (typeof SAME_NAME)[number]] = finite(name, value);
        break;
      default:
        ignored.push(name);
    }
  }
  return { fields, ignored };
};

/**
 * What a debug line says about the fields a request carried that cortex does not act on:
 * bounded, since a client chooses the names.
 */
export const ignoredNote = (ignored: readonly string[]): string[] =>
  ignored.slice(0, MAX_NOTED).map((name) => (name.length > 64 ? `${name.slice(0, 64)}…` : name));

/** Where an Ollama inference request goes on cortex's own OpenAI endpoint. */
export type InferencePath = "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings";

/**
 * What an Ollama inference request asks for: a model loaded (an empty prompt), unloaded (an
 * empty prompt with `keep_alive: 0`), or an answer from cortex's OpenAI endpoint (`body`, for
 * `path`). `ignored` names the fields it carried that have no meaning here, for a debug line.
 */
export type RequestPlan =
  | { readonly kind: "load" | "unload"; readonly model: string; readonly stream: boolean }
  | {
      readonly kind: "infer";
      readonly model: string;
      readonly path: InferencePath;
      readonly body: Record<string, unknown>;
      readonly stream: boolean;
      readonly ignored: readonly string[];
    };

/**
 * The plan for a request with nothing to answer (an empty prompt): an unload when keep_alive
 * is zero, else a load.
 */
export const loadOrUnload = (
  model: string,
  keepAlive: z.output<typeof KeepAlive>,
  stream: boolean,
): RequestPlan => ({ kind: isZeroKeepAlive(keepAlive) ? "unload" : "load", model, stream });

/**
 * The names of the fields a request carried that cortex does not act on (`think`, `keep_alive`
 * with a prompt, …), with `options.` before each ignored option.
 */
export const ignoredFields = (
  body: Record<string, unknown>,
  names: readonly string[],
  options: MappedOptions,
): string[] => [
  ...names.filter(
    (name) => Object.hasOwn(body, name) && body[name] !== null && body[name] !== undefined,
  ),
  ...options.ignored.map((name) => `options.${name}`),
];
