import { ApiError } from "@cortex/http-kit";

/**
 * Cortex's errors: the shared ApiError (code, message, param, Retry-After), under a name that
 * says where a logged error came from.
 */
export class CortexError extends ApiError {
  override readonly name = "CortexError";
}
