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

/**
 * The one logging interface of both servers and the worker: pino's logger satisfies it, tests
 * pass `silentLog`. Code that needs less takes a `Pick` of it (`LevelLog`, `ErrorLog`), so a
 * test may hand it a smaller object.
 */
export interface Log {
  debug(object: object, message: string): void;
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}

/** The levels that reach an operator by default. */
export type LevelLog = Pick<Log, "info" | "warn" | "error">;
/** What the shared error handlers use: they only report bugs. */
export type ErrorLog = Pick<Log, "error">;

export const silentLog: Log = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
