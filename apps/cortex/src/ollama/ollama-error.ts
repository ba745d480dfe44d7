import type { ServerResponse } from "node:http";
import { ApiError, capText, type ErrorLog } from "@cortex/http-kit";
import { ERROR_CODES, isErrorCode } from "@cortex/protocol";
import type { ErrorRequestHandler } from "express";

// Ollama's errors: `{"error": "message"}` (a string, which the ollama clients show) with the
// HTTP status, and in a stream a last NDJSON line of that shape. Cortex's own errors keep their
// status; an answer of cortex's OpenAI endpoint keeps its status and its envelope's message.

/** The longest message an Ollama error carries: messages may quote what a client sent. */
const MAX_MESSAGE_CHARS = 4096;

/** An error answered with this status and message, as Ollama's `{"error": "..."}`. */
export class OllamaError extends Error {
  readonly status: number;
  /** Retry-After, passed on from the inner answer or the error code. */
  readonly retryAfter: string | null;

  constructor(status: number, message: string, retryAfter: string | null = null) {
    super(capText(message, MAX_MESSAGE_CHARS));
    this.name = "OllamaError";
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const own = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null && Object.hasOwn(value, key)
    ? (value as Record<string, unknown>)[key]
    : undefined;

/**
 * The message of an error body: OpenAI's envelope (`{"error": {"message"}}`), a bare
 * `{"error": "..."}` or `{"message"}`, or the text itself; null when it holds none.
 */
export const messageOf = (body: string): string | null => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return body.trim() === "" ? null : body.trim();
  }
  return messageIn(parsed);
};

/** The message of a parsed error body (see messageOf). */
const messageIn = (parsed: unknown): string | null => {
  const error = own(parsed, "error");
  for (const candidate of [own(error, "message"), error, own(parsed, "message")])
    if (typeof candidate === "string" && candidate !== "") return candidate;
  return null;
};

/** An error answer of cortex's OpenAI endpoint, as an Ollama error of the same status. */
export const innerAnswerError = (
  status: number,
  body: string,
  retryAfter: string | undefined,
): OllamaError => new OllamaError(status, messageOf(body) ?? `HTTP ${status}`, retryAfter ?? null);

/**
 * The error event of a stream (`data: {"error": {code, message}}`, as cortex and the harnesses
 * end a failed stream): the status of its code, 502 when it has none cortex knows.
 */
export const streamEventError = (event: unknown): OllamaError => {
  const error = own(event, "error");
  const code = own(error, "code");
  const status = typeof code === "string" && isErrorCode(code) ? ERROR_CODES[code].status : 502;
  return new OllamaError(status, messageIn(event) ?? "the answer failed");
};

/** Cortex's own errors keep their status and Retry-After. */
export const fromApiError = (error: ApiError): OllamaError =>
  new OllamaError(
    ERROR_CODES[error.code].status,
    error.message,
    error.retryAfterS === null ? null : String(error.retryAfterS),
  );

/** Whether a value is one of the errors an Ollama route answers as such (not a bug). */
export const ollamaErrorOf = (error: unknown): OllamaError | null =>
  error instanceof OllamaError ? error : error instanceof ApiError ? fromApiError(error) : null;

/** One NDJSON line saying the stream failed: what the ollama clients raise. */
export const errorLine = (error: OllamaError): string =>
  `${JSON.stringify({ error: error.message })}\n`;

/** Answers `error` as Ollama does: its status and `{"error": "..."}`. */
export const sendOllamaError = (res: ServerResponse, error: OllamaError): void => {
  const body = JSON.stringify({ error: error.message });
  if (error.retryAfter !== null) res.setHeader("Retry-After", error.retryAfter);
  res.statusCode = error.status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
};

/**
 * The Ollama routes' error handler: their errors in Ollama's shape, anything else logged and
 * answered 500. An answer already streaming ends with an error line; one that is not NDJSON is
 * cut.
 */
export const ollamaErrorHandler =
  (log: ErrorLog): ErrorRequestHandler =>
  (error, req, res, _next) => {
    const known = ollamaErrorOf(error);
    if (!known) log.error({ err: error, method: req.method, path: req.path }, "unexpected error");
    const answer = known ?? new OllamaError(500, "internal error");
    if (!res.headersSent) return sendOllamaError(res, answer);
    const ndjson = String(res.getHeader("content-type") ?? "").startsWith("application/x-ndjson");
    if (ndjson && !res.writableEnded) res.end(errorLine(answer));
    else res.destroy();
  };
