import { type Abortable, ApiError } from "@cortex/http-kit";

/**
 * Cortex's errors: the shared ApiError (code, message, param, Retry-After), under a name that
 * says where a logged error came from.
 */
export class CortexError extends ApiError {
  override readonly name = "CortexError";
}

/** Settles with `promise` unless `signal` aborts first (then rejects with its reason). */
export const unlessAborted = <T>(promise: Promise<T>, signal: Abortable): Promise<T> => {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
};
