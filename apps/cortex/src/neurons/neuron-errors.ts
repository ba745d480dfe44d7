import type { ErrorCode } from "@cortex/protocol";
import { CortexError } from "../errors.js";

/**
 * The one mapping from a failed neuron call to cortex's answer. Errors are classified by their
 * `code` (a NeuronCallError's, or a test fake's), never by `instanceof`: what the neuron said
 * decides what cortex's client hears.
 */

/** What cortex was doing when the call failed; each has its own table below. */
export type NeuronOperation = "load" | "evict" | "unload" | "logs";

interface ErrorLike {
  readonly code?: unknown;
  readonly message?: unknown;
  readonly retryAfterS?: unknown;
}

const fieldsOf = (error: unknown): ErrorLike =>
  typeof error === "object" && error !== null ? (error as ErrorLike) : {};

/** The neuron's code for a failed call, if it carried one. */
const neuronCode = (error: unknown): unknown => fieldsOf(error).code;

/** The model was not on the node (unloaded by hand since the last poll): gone all the same. */
export const isGone = (error: unknown): boolean => neuronCode(error) === "model_not_found";

const messageOf = (error: unknown): string => {
  const { message } = fieldsOf(error);
  return typeof message === "string" ? message : String(error);
};

/**
 * The CortexError for a neuron call that failed while cortex did `operation` with `model` on
 * `node`. A CortexError passes through unchanged (cortex's own refusal, e.g. an unknown node).
 */
export const fromNeuron = (
  error: unknown,
  operation: NeuronOperation,
  model: string,
  node: string,
): CortexError => {
  if (error instanceof CortexError) return error;
  const code = neuronCode(error);
  const { retryAfterS } = fieldsOf(error);
  const retry = typeof retryAfterS === "number" ? retryAfterS : 5;
  switch (operation) {
    case "load":
    case "evict": {
      const text =
        operation === "load"
          ? `loading "${model}" on ${node} failed: ${messageOf(error)}`
          : `evicting "${model}" from ${node} failed: ${messageOf(error)}`;
      // A neuron short of memory means the snapshot was stale: transient for the client.
      if (code === "insufficient_vram" || code === "model_busy")
        return new CortexError("no_capacity", text, { retryAfterS: retry });
      if (code === "upstream_timeout")
        return new CortexError("upstream_timeout", text, { retryAfterS: retry });
      if (code === "invalid_request_error" || code === "harness_not_found")
        return new CortexError(code as ErrorCode, `${text} (check the catalogue entry)`);
      return new CortexError("load_failed", text, { retryAfterS: retry });
    }
    case "unload":
      if (code === "model_busy")
        return new CortexError(
          "model_busy",
          `model "${model}" is busy on ${node}; retry, or send force: true`,
          { retryAfterS: 5 },
        );
      return new CortexError(
        "upstream_error",
        `unloading "${model}" from ${node} failed: ${messageOf(error)}`,
      );
    case "logs":
      return new CortexError(
        "upstream_error",
        `reading the logs of "${model}" from ${node} failed: ${messageOf(error)}`,
      );
  }
};
