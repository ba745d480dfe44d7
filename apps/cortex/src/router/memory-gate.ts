import { engineOutOfMemory, type FleetSnapshot } from "@cortex/protocol";
import type { Reject } from "@cortex/routing";
import { CortexError } from "../errors.js";
import type { MemoryStatus } from "../memory/gpu-memory.js";

/** What the dispatcher asks of cortex's GPU memory (memory/gpu-memory.ts). */
export interface MemoryGate {
  /** Whether a catalogue model (by id) can be placed now, waits for its estimate, or never. */
  status(model: string): MemoryStatus;
  /**
   * The fleet as placement should count it: residents at least at their measured footprint
   * (memory/measured-view.ts). Memoised per snapshot.
   */
  view(snapshot: FleetSnapshot): FleetSnapshot;
}

/**
 * A load failed because the engine ran out of GPU memory while starting (the neuron's own
 * words, ENGINE_OUT_OF_MEMORY): the model's figure was raised when it failed, so placing the
 * request once more gives it more room. A neuron refusing a load for want of room is not one.
 */
export const isEngineOutOfMemory = (error: unknown): error is CortexError =>
  error instanceof CortexError &&
  error.code === "no_capacity" &&
  engineOutOfMemory(error.message) !== null;

/** Why a model without a figure cannot be placed yet: its estimate is still being made. */
export const estimatePending = (model: string, detail: string | null): CortexError =>
  new CortexError(
    "service_unavailable",
    `model "${model}" declares no vram_mb and its GPU memory is still being estimated${
      detail === null ? "" : ` (last attempt: ${detail})`
    }; retry shortly`,
    { retryAfterS: 2 },
  );

/**
 * The client's error for routing's refusal to place `model`, naming its GPU memory when that is
 * why: still being estimated (503 `service_unavailable`), never estimable (503
 * `no_feasible_node`, the catalogue must declare it), or raised after the engine ran out of
 * memory and now fitting nowhere (503 `no_capacity`, quoting the engine's line).
 */
export const refusalOf = (
  model: string,
  decision: Reject,
  memory: MemoryStatus | undefined,
  outOfMemory: CortexError | undefined,
): CortexError => {
  if (memory?.kind === "pending") return estimatePending(model, memory.detail);
  if (memory?.kind === "refused") return new CortexError("no_feasible_node", memory.message);
  if (outOfMemory !== undefined)
    return new CortexError(
      "no_capacity",
      `${decision.message}; it was placed again after this: ${outOfMemory.message}`,
      { retryAfterS: decision.retry_after_s ?? outOfMemory.retryAfterS ?? null },
    );
  return new CortexError(decision.code, decision.message, { retryAfterS: decision.retry_after_s });
};
