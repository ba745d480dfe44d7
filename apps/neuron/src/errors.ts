import { ApiError } from "@cortex/http-kit";

/**
 * The neuron's errors: the shared ApiError (code, message, param, Retry-After), under a name that
 * says where a logged error came from.
 */
export class NeuronError extends ApiError {
  override readonly name = "NeuronError";
}
