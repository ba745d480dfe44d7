import { ApiError, type Log, errorHandler as sharedErrorHandler } from "@cortex/http-kit";
import type { ErrorRequestHandler } from "express";
import { ContextOverflowError } from "./engine.js";

// The worker answers errors exactly as cortex and the neuron do: http-kit's error type, body
// validation and envelope writer. Only the engine's own overflow error is mapped here.

/** The worker logs to stderr, which the neuron keeps as the harness's output. */
const stderrLog: Log = {
  debug: () => {},
  info: () => {},
  warn: (object, message) => console.error(message, object),
  error: (object, message) => console.error(message, object),
};

const shared = sharedErrorHandler(stderrLog);

/**
 * The one place errors become responses: a prompt longer than the context is the client's
 * fault (400 `context_length_exceeded` on `messages`); everything else goes to http-kit's
 * handler, which answers unknown errors with a generic 500 and logs their stack.
 */
export const errorHandler: ErrorRequestHandler = (error, req, res, next) =>
  shared(
    error instanceof ContextOverflowError
      ? new ApiError("context_length_exceeded", error.message, { param: "messages" })
      : error,
    req,
    res,
    next,
  );
