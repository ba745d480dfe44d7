import { z } from "zod";

/**
 * Every error either server returns, in OpenAI's envelope. `code` is ours and stable;
 * `type` is the OpenAI error family that clients already switch on.
 */
export const ErrorBody = z.object({
  message: z.string(),
  type: z.string(),
  code: z.string().nullable(),
  param: z.string().nullable(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

export const ErrorEnvelope = z.object({ error: ErrorBody });
export type ErrorEnvelope = z.infer<typeof ErrorEnvelope>;

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "conflict_error"
  | "server_error";

interface ErrorCodeSpec {
  readonly status: number;
  readonly type: ErrorType;
  /** Transient: the answer carries Retry-After and the client may try again unchanged. */
  readonly retryable: boolean;
}

/**
 * The one table from error code to HTTP status. Every code the servers can emit is here;
 * the error middleware of each app looks the status up instead of choosing one.
 */
export const ERROR_CODES = {
  invalid_request_error: { status: 400, type: "invalid_request_error", retryable: false },
  missing_model: { status: 400, type: "invalid_request_error", retryable: false },
  payload_too_large: { status: 413, type: "invalid_request_error", retryable: false },
  context_length_exceeded: { status: 400, type: "invalid_request_error", retryable: false },
  invalid_api_key: { status: 401, type: "authentication_error", retryable: false },
  not_found: { status: 404, type: "not_found_error", retryable: false },
  model_not_found: { status: 404, type: "not_found_error", retryable: false },
  harness_not_found: { status: 400, type: "invalid_request_error", retryable: false },
  model_busy: { status: 409, type: "conflict_error", retryable: true },
  insufficient_vram: { status: 409, type: "conflict_error", retryable: true },
  load_failed: { status: 502, type: "server_error", retryable: true },
  upstream_error: { status: 502, type: "server_error", retryable: true },
  /** A model whose GPU memory cannot be worked out from its source (not GGUF, bad header). */
  not_estimable: { status: 422, type: "invalid_request_error", retryable: false },
  service_unavailable: { status: 503, type: "server_error", retryable: true },
  no_feasible_node: { status: 503, type: "server_error", retryable: false },
  no_capacity: { status: 503, type: "server_error", retryable: true },
  overloaded: { status: 503, type: "server_error", retryable: true },
  queue_timeout: { status: 504, type: "server_error", retryable: true },
  upstream_timeout: { status: 504, type: "server_error", retryable: true },
  internal_error: { status: 500, type: "server_error", retryable: false },
} as const satisfies Record<string, ErrorCodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const isErrorCode = (value: string): value is ErrorCode => Object.hasOwn(ERROR_CODES, value);

export const errorEnvelope = (
  code: ErrorCode,
  message: string,
  param: string | null = null,
): ErrorEnvelope => ({
  error: { message, type: ERROR_CODES[code].type, code, param },
});
