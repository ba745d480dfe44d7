import type { ServerResponse } from "node:http";
import { ERROR_CODES, errorEnvelope } from "@cortex/protocol";
import type { ErrorRequestHandler, RequestHandler } from "express";
import type { z } from "zod";
import { ApiError, type ErrorLog } from "./api-error.js";
import { capText } from "./cap-text.js";

/** The longest message an error envelope carries: messages may quote what a client sent. */
export const MAX_ERROR_MESSAGE_CHARS = 4096;

/**
 * Writes `error` as the OpenAI envelope with its status (and Retry-After when transient). Plain
 * `node:http` responses and express's alike: the inference fast path has no express.
 */
export const sendError = (res: ServerResponse, error: ApiError): void => {
  const body = JSON.stringify(
    errorEnvelope(error.code, capText(error.message, MAX_ERROR_MESSAGE_CHARS), error.param),
  );
  if (error.retryAfterS !== null) res.setHeader("Retry-After", String(error.retryAfterS));
  res.statusCode = ERROR_CODES[error.code].status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
};

const pathOf = (path: readonly PropertyKey[]): string =>
  path
    .map((key, i) =>
      typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`,
    )
    .join("");

/** Validates a body; every problem is listed, the first field named as `param`. */
export const parseBody = <S extends z.ZodType>(schema: S, body: unknown): z.output<S> => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError("invalid_request_error", "the request body must be a JSON object");
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const messages = result.error.issues.map((issue) => {
    const at = pathOf(
      issue.code === "unrecognized_keys" ? [...issue.path, ...issue.keys] : issue.path,
    );
    return `${at ? `${at}: ` : ""}${issue.code === "unrecognized_keys" ? "unknown key" : issue.message}`;
  });
  const first = result.error.issues[0];
  throw new ApiError(
    "invalid_request_error",
    messages.join("; "),
    first ? { param: pathOf(first.path) || "body" } : {},
  );
};

export const notFound: RequestHandler = (req, _res, next) => {
  next(new ApiError("not_found", `no route for ${req.method} ${req.path}`));
};

const isBodyParserError = (error: unknown): error is { type: string; status: number } =>
  typeof error === "object" && error !== null && "type" in error && "status" in error;

/** Owns the error envelope. Unknown errors are logged with their stack and answered generically. */
export const errorHandler =
  (log: ErrorLog): ErrorRequestHandler =>
  (error, req, res, _next) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (error instanceof ApiError) return sendError(res, error);
    if (isBodyParserError(error)) {
      if (error.type === "entity.parse.failed")
        return sendError(
          res,
          new ApiError("invalid_request_error", "the request body is not valid JSON"),
        );
      if (error.type === "entity.too.large")
        return sendError(res, new ApiError("payload_too_large", "the request body is too large"));
      if (error.status >= 400 && error.status < 500) {
        return sendError(
          res,
          new ApiError("invalid_request_error", "the request body could not be read"),
        );
      }
    }
    // The router could not decode a path parameter (`/models/%ZZ/logs`): the client's fault.
    if (error instanceof URIError)
      return sendError(
        res,
        new ApiError("invalid_request_error", "the path is not valid percent-encoding"),
      );
    log.error({ err: error, method: req.method, path: req.path }, "unexpected error");
    sendError(res, new ApiError("internal_error", "internal error"));
  };
