import { ERROR_CODES, type ErrorCode, errorEnvelope } from "@cortex/protocol";
import type { ErrorRequestHandler, RequestHandler, Response } from "express";
import type { z } from "zod";
import { ContextOverflowError } from "./engine.js";

/** An error with a stable code; the status comes from the shared code table. */
export class HttpError extends Error {
  readonly code: ErrorCode;
  readonly param: string | null;
  readonly retryAfterS: number | null;

  constructor(
    code: ErrorCode,
    message: string,
    options: { param?: string | null; retryAfterS?: number } = {},
  ) {
    super(message);
    this.name = "HttpError";
    this.code = code;
    this.param = options.param ?? null;
    this.retryAfterS = options.retryAfterS ?? null;
  }
}

const formatIssuePath = (path: readonly PropertyKey[]): string =>
  path
    .map((key, index) =>
      typeof key === "number" ? `[${key}]` : index === 0 ? String(key) : `.${String(key)}`,
    )
    .join("");

/** Validates a body; the first problem becomes a 400 that names the field to fix. */
export const parseBody = <S extends z.ZodType>(schema: S, body: unknown): z.output<S> => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError("invalid_request_error", "the request body must be a JSON object");
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const param = issue ? formatIssuePath(issue.path) : "";
  const message = issue ? `${param ? `${param}: ` : ""}${issue.message}` : "invalid request";
  throw new HttpError("invalid_request_error", message, { param: param || null });
};

export const sendError = (res: Response, error: HttpError): void => {
  if (error.retryAfterS !== null) res.setHeader("Retry-After", String(error.retryAfterS));
  res
    .status(ERROR_CODES[error.code].status)
    .json(errorEnvelope(error.code, error.message, error.param));
};

export const notFound: RequestHandler = (req, _res, next) => {
  next(new HttpError("not_found", `no route for ${req.method} ${req.path}`));
};

const isBodyParserError = (error: unknown): error is { type: string; status: number } =>
  typeof error === "object" && error !== null && "type" in error && "status" in error;

/**
 * The one place errors become responses. Known errors keep their message; anything else is
 * logged with its stack and answered with a generic 500, never the internal text.
 */
export const errorHandler: ErrorRequestHandler = (error, _req, res, _next) => {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (error instanceof HttpError) return sendError(res, error);
  if (error instanceof ContextOverflowError) {
    return sendError(
      res,
      new HttpError("context_length_exceeded", error.message, { param: "messages" }),
    );
  }
  if (isBodyParserError(error)) {
    if (error.type === "entity.parse.failed") {
      return sendError(
        res,
        new HttpError("invalid_request_error", "the request body is not valid JSON"),
      );
    }
    if (error.type === "entity.too.large") {
      return sendError(res, new HttpError("payload_too_large", "the request body is too large"));
    }
    if (error.status >= 400 && error.status < 500) {
      return sendError(
        res,
        new HttpError("invalid_request_error", "the request body could not be read"),
      );
    }
  }
  console.error("unexpected error:", error);
  sendError(res, new HttpError("internal_error", "internal error"));
};
