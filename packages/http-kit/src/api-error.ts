import type { ErrorCode } from "@cortex/protocol";

/**
 * The one error type of both servers: a stable code (its HTTP status and OpenAI error type come
 * from the shared table in @cortex/protocol), a message that says what to fix, the request field
 * at fault, and how long a client should wait before retrying (sent as Retry-After).
 */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly retryAfterS: number | null;
  readonly param: string | null;

  constructor(
    code: ErrorCode,
    message: string,
    options: { retryAfterS?: number | null; param?: string | null; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ApiError";
    this.code = code;
    this.retryAfterS = options.retryAfterS ?? null;
    this.param = options.param ?? null;
  }
}

/** The logging the shared handlers need; pino's logger satisfies it. */
export interface Log {
  debug?(object: object, message: string): void;
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}
