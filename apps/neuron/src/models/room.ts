import type { Device, NeuronModel } from "@cortex/protocol";
import { effectiveFree } from "@cortex/routing";

// Memory planning for a load on this node: pure functions over the devices and the models the
// neuron holds, using the same accounting as cortex's routing (reported free, capped by what
// resident models' shares leave), so the two never disagree about what fits.

export interface Candidate {
  readonly id: string;
  readonly devices: readonly number[];
  readonly vram_mb: number;
  readonly priority: number;
  readonly lastUsedMs: number;
  /** Loaded with nothing running, waiting or loading: evicting it costs no request anything. */
  readonly idle: boolean;
  /**
   * What a swap would wait out before evicting it: its requests, a load under way counting as
   * one (0 when idle). Null when no swap may take it (recovering, unloaded, failed).
   */
  readonly work: number | null;
}

export interface RoomPlan {
  readonly devices: number[];
  readonly evict: string[];
}

export interface Shortfall {
  readonly needPerDeviceMb: number;
  readonly freeMb: Record<number, number>;
  readonly message: string;
}

const shareOf = (model: { devices: readonly number[]; vram_mb: number }): number =>
  model.devices.length === 0 ? 0 : model.vram_mb / model.devices.length;

/** Devices for a load that did not name any: the `count` with most free memory. */
export const pickDevices = (
  devices: readonly Device[],
  models: readonly NeuronModel[],
  count: number,
): number[] => {
  const free = effectiveFree({ devices: [...devices], models: [...models] });
  return [...devices]
    .sort((a, b) => (free.get(b.index) ?? 0) - (free.get(a.index) ?? 0) || a.index - b.index)
    .slice(0, count)
    .map((device) => device.index)
    .sort((a, b) => a - b);
};

/**
 * Whether `vramMb` fits evenly over `wanted` devices, evicting candidates of priority at most
 * `priority` on the wanted devices as needed: idle ones (least recently used first) and, when
 * `busyToo` (a lazy reload that may wait its turn), then busy ones a swap may wait out (least
 * work first). The plan evicts only as many as it needs.
 */
export const planRoom = (
  devices: readonly Device[],
  residents: readonly NeuronModel[],
  wanted: readonly number[],
  vramMb: number,
  priority: number,
  candidates: readonly Candidate[],
  busyToo = false,
): RoomPlan | Shortfall => {
  const need = wanted.length === 0 ? 0 : vramMb / wanted.length;
  const free = new Map(effectiveFree({ devices: [...devices], models: [...residents] }));
  const fits = () => wanted.every((index) => (free.get(index) ?? 0) >= need);
  const evict: string[] = [];
  if (!fits()) {
    const eligible = candidates
      .filter(
        (c) =>
          (c.idle || (busyToo && c.work !== null)) &&
          c.priority <= priority &&
          c.devices.some((index) => wanted.includes(index)),
      )
      // Idle ones (no work) first, then the least busy; least recently used first among equals.
      .sort(
        (a, b) =>
          (a.work ?? 0) - (b.work ?? 0) || a.lastUsedMs - b.lastUsedMs || (a.id < b.id ? -1 : 1),
      );
    for (const candidate of eligible) {
      for (const index of candidate.devices)
        free.set(index, (free.get(index) ?? 0) + shareOf(candidate));
      evict.push(candidate.id);
      if (fits()) break;
    }
  }
  if (fits()) return { devices: [...wanted], evict };
  const before = effectiveFree({ devices: [...devices], models: [...residents] });
  const freeMb = Object.fromEntries(
    wanted.map((index) => [index, Math.floor(before.get(index) ?? 0)]),
  );
  return {
    needPerDeviceMb: Math.ceil(need),
    freeMb,
    message: `needs ${Math.ceil(need)} MB on each of device(s) ${wanted.join(", ")}; free now: ${wanted
      .map((index) => `${index}: ${freeMb[index]} MB`)
      .join(
        ", ",
      )}; evicting every ${busyToo ? "model (busy ones included)" : "idle model"} of priority ≤ ${priority} would not make enough room`,
  };
};
