/**
 * An expected failure of a command (cortex said no, cortex is unreachable, bad input): the
 * shell prints its message alone, without a stack, and exits with `exitCode`.
 */
export class CtlError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CtlError";
    this.exitCode = exitCode;
  }
}
