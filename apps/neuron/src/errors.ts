import type { ErrorCode } from "@cortex/protocol";

/**
 * The neuron's one error type: a stable code (its HTTP status comes from the shared table in
 * @cortex/protocol), a message that says what to fix, and whether to send Retry-After.
 */
export class NeuronError extends Error {
  readonly code: ErrorCode;
  readonly retryAfterS: number | null;
  readonly param: string | null;

  constructor(
    code: ErrorCode,
    message: string,
    options: { retryAfterS?: number; param?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "NeuronError";
    this.code = code;
    this.retryAfterS = options.retryAfterS ?? null;
    this.param = options.param ?? null;
  }
}
