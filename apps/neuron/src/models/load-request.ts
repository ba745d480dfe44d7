import type { LoadRequest, NeuronModel } from "@cortex/protocol";
import { boundedError } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import type { ModelSpec } from "../harnesses/model-spec.js";
import { checkRequest, chooseDevices } from "./load-spec.js";
import type { ManagerDeps } from "./manager-deps.js";
import { candidateOf, describeEntry, type ModelEntry } from "./model-entry.js";
import { planRoom } from "./room.js";

// The manager's side of load-spec.ts and room.ts: what a load needs before it changes anything
// (its spec, then the evictions that make room for it), with the side effects the pure steps
// leave out (the source check reads the file system, devices come from discovery), and every
// refusal thrown as the NeuronError the load answers with.

/** What the node holds, as far as choosing a load's devices needs it. */
export interface Holdings {
  readonly get: (id: string) => ModelEntry | undefined;
  /** Every model the node lists but `id`; asked only when devices must be picked. */
  readonly others: (id: string) => NeuronModel[];
}

/** The spec `request` loads, on the devices it named or on picked ones; throws its refusal. */
export const specForLoad = (
  request: LoadRequest,
  deps: Pick<ManagerDeps, "harnesses" | "sources" | "devices">,
  defaultIdleTtlS: number,
  node: Holdings,
): ModelSpec => {
  const checked = checkRequest(request, deps.harnesses, defaultIdleTtlS);
  if (checked.kind === "reject") throw checked.error;
  // Before anything is evicted: a load with a bad source must change nothing.
  try {
    deps.sources.check(checked.spec.source);
  } catch (error) {
    throw error instanceof NeuronError ? boundedError(error) : error;
  }
  const devices = deps.devices();
  const here = node.get(checked.spec.id);
  const chosen = chooseDevices(
    checked.spec,
    request.devices !== undefined,
    devices,
    // Only when a pick is needed: listing also forgets expired failures.
    request.devices === undefined && checked.spec.vram_mb > 0 && devices.length > 0
      ? node.others(checked.spec.id)
      : [],
    here && { status: here.status, devices: here.spec.devices },
  );
  if (chosen.kind === "reject") throw chosen.error;
  return chosen.spec;
};

/**
 * Plans the evictions a fresh load of `entry` needs among the node's `entries`, or throws
 * insufficient_vram with the numbers. Claims nothing: the caller does, before any await.
 * `busyToo` (a lazy reload, which may wait its turn in the swap queue): busy residents a swap
 * may wait out count as well; the plan then names what must leave, busy or not.
 */
export const evictionsFor = (
  entry: ModelEntry,
  entries: readonly ModelEntry[],
  deps: Pick<ManagerDeps, "devices">,
  busyToo = false,
): string[] => {
  const { spec } = entry;
  if (spec.devices.length === 0 || spec.vram_mb === 0) return [];
  const others = entries.filter((other) => other !== entry);
  const plan = planRoom(
    deps.devices(),
    others.map((other) => describeEntry(other)),
    spec.devices,
    spec.vram_mb,
    entry.priority,
    others.map(candidateOf),
    busyToo,
  );
  if ("message" in plan) {
    throw new NeuronError("insufficient_vram", `model "${spec.id}" ${plan.message}`, {
      retryAfterS: 5,
    });
  }
  return plan.evict;
};

/**
 * Whether planning a fresh load of `entry` now would refuse it or evict for it. On a reading of
 * the GPUs older than the last exit that may be the exited harness's memory still counted: the
 * caller reads again once before deciding (no load is refused on a reading that predates an
 * unload, and nothing is evicted for memory that is already free).
 */
export const wantsRoom = (
  entry: ModelEntry,
  entries: readonly ModelEntry[],
  deps: Pick<ManagerDeps, "devices">,
  busyToo = false,
): boolean => {
  try {
    return evictionsFor(entry, entries, deps, busyToo).length > 0;
  } catch (error) {
    if (error instanceof NeuronError && error.code === "insufficient_vram") return true;
    throw error;
  }
};

/**
 * A new reading of the GPUs when the last one predates the last exit and, on it, `entry` would
 * be refused or evict for room; null when the reading may be used as it is (no await, so a
 * caller whose check and claims are one synchronous step stays so). After it, the caller plans
 * again and claims with no await between.
 */
export const readAgainFor = (
  entry: ModelEntry,
  entries: readonly ModelEntry[],
  deps: Pick<ManagerDeps, "devices" | "gpuMemory">,
  busyToo = false,
): Promise<void> | null => {
  const memory = deps.gpuMemory;
  if (!memory || memory.fresh() || !wantsRoom(entry, entries, deps, busyToo)) return null;
  return memory.refresh();
};
