import { ApiError } from "./api-error.js";
import { JsonScanError, type ScanProblem, type Span, scanJsonObject } from "./json-scan.js";
import { decodeQueryPart, queryParamSpan } from "./model-routes.js";
import { formBoundary, scanForm } from "./multipart.js";

// What the inference path reads of a request it forwards as sent: the model that should answer
// and whether the answer streams. A JSON body is scanned (json-scan.ts), a multipart upload
// walked (multipart.ts), a GET's query searched; none is parsed into a tree. Where the model's
// value lies is kept, so an alias is replaced by the model's id in those bytes and nowhere else.

/** How deeply a request body may nest objects and arrays (the body itself is level 1). */
export const MAX_BODY_DEPTH = 64;

/** Where a request names its model: a JSON body, a multipart form field, the query string. */
export type ModelCarrier = "json" | "multipart" | "query";

/** What the inference path reads of a request it forwards as sent. */
export interface InferenceFields {
  /** Where the model was read from, and so how it is replaced (`withModel`, `urlWithModel`). */
  readonly kind: ModelCarrier;
  readonly model: string;
  /**
   * Where the model's value lies, to replace it (an alias) without re-serialising anything: in
   * the body (JSON: the string with its quotes; multipart: the field's bytes), or in the
   * request's URL (`query`: the raw, percent-encoded parameter value).
   */
  readonly modelSpan: Span;
  readonly stream: boolean;
  /**
   * Where the members routing may read lie (`messages`, `prompt`, `prompt_cache_key`, `user`),
   * when present: for a conversation's affinity key, without parsing the body. JSON only.
   */
  readonly members: ReadonlyMap<string, Span>;
}

const WANTED: ReadonlySet<string> = new Set([
  "model",
  "stream",
  "messages",
  "prompt",
  "prompt_cache_key",
  "user",
]);

const FORM_WANTED: ReadonlySet<string> = new Set(["model", "stream"]);

const NO_MEMBERS: ReadonlyMap<string, Span> = new Map();

/** What a client is told for each way its body fails the scan. */
const SCAN_REFUSALS: Readonly<Record<ScanProblem, string>> = {
  empty: "the request body must be a JSON object with a model",
  invalid: "the request body is not valid JSON",
  too_deep: `the request body nests objects and arrays deeper than ${MAX_BODY_DEPTH} levels`,
  not_object: "the request body must be a JSON object",
};

const missingModel = (where: string): ApiError =>
  new ApiError("missing_model", `${where} has no model: say which model should answer`, {
    param: "model",
  });

/**
 * Reads `model` and `stream` from a JSON body without building its tree: 400 when the body is
 * empty, not JSON, nested deeper than MAX_BODY_DEPTH, or not an object; `missing_model` when it
 * names no model.
 */
export const inferenceFields = (body: Buffer): InferenceFields => {
  let members: Map<string, Span>;
  try {
    members = scanJsonObject(body, WANTED, MAX_BODY_DEPTH);
  } catch (error) {
    if (!(error instanceof JsonScanError)) throw error;
    throw new ApiError("invalid_request_error", SCAN_REFUSALS[error.problem]);
  }
  const modelSpan = members.get("model");
  const first = modelSpan === undefined ? undefined : body[modelSpan.start];
  // Only a string is decoded: any other value is refused without building it.
  const model =
    modelSpan !== undefined && first === 0x22
      ? (JSON.parse(body.toString("utf8", modelSpan.start, modelSpan.end)) as string)
      : undefined;
  if (modelSpan === undefined || first === 0x6e /* null */ || model === "")
    throw missingModel("the request body");
  if (model === undefined)
    throw new ApiError("invalid_request_error", "model must be a string", { param: "model" });
  const streamSpan = members.get("stream");
  const stream =
    streamSpan !== undefined &&
    streamSpan.end - streamSpan.start === 4 &&
    body.toString("latin1", streamSpan.start, streamSpan.end) === "true";
  return { kind: "json", model, modelSpan, stream, members };
};

/**
 * Reads `model` and `stream` from a multipart/form-data upload: the form's `model` field, and
 * `stream` when that field is exactly `true` (what OpenAI's clients send for a streamed
 * transcription; anything else leaves the answer's framing to the harness). 400 when the form
 * is malformed (multipart.ts), `missing_model` when it has no model field or an empty one.
 */
export const formFields = (contentType: string, body: Buffer): InferenceFields => {
  const fields = scanForm(body, formBoundary(contentType), FORM_WANTED);
  const modelSpan = fields.get("model");
  if (modelSpan === undefined || modelSpan.end === modelSpan.start) throw missingModel("the form");
  const streamSpan = fields.get("stream");
  const stream =
    streamSpan !== undefined &&
    streamSpan.end - streamSpan.start === 4 &&
    body.toString("latin1", streamSpan.start, streamSpan.end) === "true";
  const model = body.toString("utf8", modelSpan.start, modelSpan.end);
  return { kind: "multipart", model, modelSpan, stream, members: NO_MEMBERS };
};

/** The lowercased media type of a content type, without its parameters. */
const mediaTypeOf = (contentType: string): string => {
  const semicolon = contentType.indexOf(";");
  return (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
};

/**
 * The fields of a request body, read the way its content type says: a multipart/form-data
 * upload, or JSON for every other type. `curl -d` labels a JSON body
 * application/x-www-form-urlencoded unless told otherwise, and OpenAI-compatible servers read
 * such a body as JSON: so does this (it goes on labelled application/json, `forwardedType`).
 */
export const requestFields = (contentType: string | undefined, body: Buffer): InferenceFields => {
  // The usual request costs one comparison here.
  if (contentType === undefined || contentType === "application/json") return inferenceFields(body);
  if (mediaTypeOf(contentType) === "multipart/form-data") return formFields(contentType, body);
  return inferenceFields(body);
};

/**
 * The content type a body read as `fields` goes on with: an upload's as sent (its boundary),
 * a JSON body's as sent when it says JSON (a charset kept), else application/json.
 */
export const forwardedType = (fields: InferenceFields, contentType: string | undefined): string =>
  contentType !== undefined &&
  (fields.kind === "multipart" || mediaTypeOf(contentType) === "application/json")
    ? contentType
    : "application/json";

/**
 * Reads the model of a request without a body (`GET /v1/audio/voices?model=…`) from its `model`
 * query parameter: `missing_model` when there is none or it is empty, 400 when it is named
 * twice or is not valid percent-encoding. Such a request never streams.
 */
export const queryFields = (url: string): InferenceFields => {
  const modelSpan = queryParamSpan(url, "model");
  if (modelSpan === null || modelSpan.end === modelSpan.start)
    throw missingModel("the query string");
  const model = decodeQueryPart(url.slice(modelSpan.start, modelSpan.end));
  if (model === null)
    throw new ApiError(
      "invalid_request_error",
      "the model query parameter is not valid percent-encoding",
      {
        param: "model",
      },
    );
  if (model === "") throw missingModel("the query string");
  return { kind: "query", model, modelSpan, stream: false, members: NO_MEMBERS };
};

/**
 * `body` with the model's value replaced by `model`; every other byte stays as sent. A JSON
 * body gets the JSON string; a form field the bytes themselves (a model id, which has no line
 * breaks: one would end the field early); a request whose model is in its query keeps its body.
 */
export const withModel = (body: Buffer, fields: InferenceFields, model: string): Buffer => {
  if (fields.kind === "query") return body;
  if (fields.kind === "multipart" && /[\r\n]/.test(model))
    throw new TypeError("a form field cannot hold a line break");
  const span = fields.modelSpan;
  return Buffer.concat([
    body.subarray(0, span.start),
    Buffer.from(fields.kind === "json" ? JSON.stringify(model) : model, "utf8"),
    body.subarray(span.end),
  ]);
};

/** `url` with its `model` query parameter replaced by `model` when that is where it was read. */
export const urlWithModel = (url: string, fields: InferenceFields, model: string): string =>
  fields.kind === "query"
    ? `${url.slice(0, fields.modelSpan.start)}${encodeURIComponent(model)}${url.slice(fields.modelSpan.end)}`
    : url;
