import type { Device, HarnessInfo, HeldSources, NeuronModel, NodeInfo } from "@cortex/protocol";

// Field-by-field equality of the answer shapes, so unchanged answers keep the previous objects
// (no JSON.stringify, no new objects): consumers can compare by reference, and a quiet fleet
// of 500 nodes costs only the parse.

const sameNumbers = (a: readonly number[], b: readonly number[]): boolean => {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
};

export const sameModel = (a: NeuronModel, b: NeuronModel): boolean =>
  a.id === b.id &&
  a.status === b.status &&
  a.in_flight === b.in_flight &&
  a.queued === b.queued &&
  a.last_accessed === b.last_accessed &&
  a.harness === b.harness &&
  a.vram_mb === b.vram_mb &&
  // A new measurement is news: the memory learns peaks from it.
  a.vram_used_mb === b.vram_used_mb &&
  a.max_concurrency === b.max_concurrency &&
  a.loaded_at === b.loaded_at &&
  a.error === b.error &&
  sameNumbers(a.devices, b.devices);

export const sameDevice = (a: Device, b: Device): boolean =>
  a.index === b.index &&
  a.vram_free_mb === b.vram_free_mb &&
  a.utilization_pct === b.utilization_pct &&
  a.temperature_c === b.temperature_c &&
  a.vram_total_mb === b.vram_total_mb &&
  a.vendor === b.vendor &&
  a.name === b.name &&
  a.bus_id === b.bus_id &&
  a.driver_version === b.driver_version;

export const sameHarness = (a: HarnessInfo, b: HarnessInfo): boolean =>
  a.name === b.name && a.kind === b.kind;

export const sameNodeInfo = (a: NodeInfo, b: NodeInfo): boolean =>
  a.name === b.name &&
  a.hostname === b.hostname &&
  a.os === b.os &&
  a.kernel === b.kernel &&
  a.cpu === b.cpu &&
  a.memory_mb === b.memory_mb;

/** Equal held-sources answers (both absent counts as equal: an older neuron, unchanged). */
export const sameSources = (a: HeldSources | undefined, b: HeldSources | undefined): boolean => {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  if (a.models_dir !== b.models_dir || a.complete !== b.complete) return false;
  if (a.files.length !== b.files.length) return false;
  for (let i = 0; i < a.files.length; i += 1) {
    const x = a.files[i];
    const y = b.files[i];
    if (x?.path !== y?.path || x?.size_bytes !== y?.size_bytes) return false;
  }
  return true;
};

/**
 * `fresh` with every element equal to the previous one at its position replaced by the previous
 * object; the previous array itself when nothing changed. `fresh` is a parsed answer the poller
 * owns, so it is updated in place instead of copied.
 */
export const reuse = <T>(previous: T[], fresh: T[], same: (a: T, b: T) => boolean): T[] => {
  let changed = previous.length !== fresh.length;
  for (let i = 0; i < fresh.length; i += 1) {
    const old = previous[i];
    const next = fresh[i] as T;
    if (old !== undefined && same(old, next)) fresh[i] = old;
    else changed = true;
  }
  return changed ? fresh : previous;
};
