import { parseBody } from "@cortex/http-kit";
import { z } from "zod";
import { CortexError } from "../errors.js";
import type { AnswerShape } from "./answers.js";
import {
  ignoredFields,
  KeepAlive,
  loadOrUnload,
  mapOptions,
  OllamaModelName,
  type RequestPlan,
  responseFormatOf,
} from "./options.js";

// `POST /api/generate` → `POST /v1/chat/completions` (the model's chat template applies, as
// Ollama applies its template), or `POST /v1/completions` with `raw: true`. Pure.

export const OllamaGenerateRequest = z.object({
  model: OllamaModelName,
  prompt: z.string().nullable().optional(),
  system: z.string().nullable().optional(),
  suffix: z.string().nullable().optional(),
  template: z.string().nullable().optional(),
  context: z.array(z.unknown()).nullable().optional(),
  images: z.array(z.unknown()).nullable().optional(),
  raw: z.boolean().nullable().optional(),
  format: z.unknown().optional(),
  options: z.unknown().optional(),
  stream: z.boolean().nullable().optional(),
  keep_alive: KeepAlive,
  think: z
    .union([z.boolean(), z.enum(["high", "medium", "low"])])
    .nullable()
    .optional(),
});

/** The fields cortex accepts and does not act on (named in a debug line when sent). */
const IGNORED = ["keep_alive", "think", "logprobs", "top_logprobs"] as const;

const refuse = (param: string, message: string): never => {
  throw new CortexError("invalid_request_error", message, { param });
};

/**
 * What `POST /api/generate` asks for. An empty prompt: load the model (or unload it with
 * `keep_alive: 0`). Otherwise the system prompt and the prompt as chat messages, or the prompt
 * as it is with `raw: true` (`system` then has no meaning, as in Ollama). What cannot be done
 * behind an OpenAI endpoint is refused, not dropped: images, `suffix` (fill-in-the-middle),
 * `template` (the model's own template applies; send `raw: true` with a templated prompt),
 * and `context` (cortex answers none to send back: use `/api/chat` for a conversation).
 */
export const generatePlan = (raw: unknown, resolve: (name: string) => string): RequestPlan => {
  const request = parseBody(OllamaGenerateRequest, raw);
  const body = raw as Record<string, unknown>;
  if (request.images && request.images.length > 0)
    refuse("images", "images are not supported by cortex's Ollama API: send text");
  if (request.suffix)
    refuse("suffix", "suffix (fill-in-the-middle) is not supported by cortex's Ollama API");
  if (request.template)
    refuse(
      "template",
      "template is not supported: the model's own chat template applies; send raw: true with a prompt already templated",
    );
  if (request.context && request.context.length > 0)
    refuse(
      "context",
      "context is not supported: cortex answers none to send back; use /api/chat for a conversation",
    );
  const stream = request.stream ?? true;
  const model = resolve(request.model);
  const prompt = request.prompt ?? "";
  if (prompt === "") return loadOrUnload(model, request.keep_alive, stream);
  const options = mapOptions(request.options);
  const format = responseFormatOf(request.format);
  const common = {
    model,
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
    ...options.fields,
    ...(format ? { response_format: format } : {}),
  };
  const ignored = ignoredFields(body, request.raw ? [...IGNORED, "system"] : IGNORED, options);
  if (request.raw)
    return {
      kind: "infer",
      model,
      path: "/v1/completions",
      stream,
      ignored,
      body: { ...common, prompt },
    };
  const messages = [
    ...(request.system ? [{ role: "system", content: request.system }] : []),
    { role: "user", content: prompt },
  ];
  return {
    kind: "infer",
    model,
    path: "/v1/chat/completions",
    stream,
    ignored,
    body: { ...common, messages },
  };
};

/** Generate's answer lines: `response` with the text, and `thinking` when the model thought. */
export const generateShape: AnswerShape = (pieces) => ({
  response: pieces.text,
  ...(pieces.thinking === "" ? {} : { thinking: pieces.thinking }),
});
