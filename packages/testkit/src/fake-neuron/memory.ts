import type { Device, LoadRequest, NeuronModel } from "@cortex/protocol";
import { FakeError } from "./http.js";

// Memory like a real GPU: `vram_free_mb` given at start already counts the initial models, so
// what is neither free nor theirs is other use; free memory then follows loads and unloads, and
// a model holds what it was measured at (`vram_used_mb`) when that is more than it declared.

export interface FakeMemory {
  /** Free MB on `device`, leaving out the share of model `except` (the one being placed). */
  freeOn(device: Device, except: string | null): number;
  /** Devices for a load, checked against free memory the way routing counts it. */
  placeFor(request: LoadRequest): number[];
}

/** Create it once the initial models are in `entries`: their shares are not other use. */
export const createMemory = (
  devices: readonly Device[],
  entries: ReadonlyMap<string, { readonly model: NeuronModel }>,
): FakeMemory => {
  const sharesOn = (index: number, except: string | null): number => {
    let used = 0;
    for (const { model } of entries.values()) {
      if (model.id === except || model.devices.length === 0) continue;
      if (model.status !== "loading" && model.status !== "loaded" && model.status !== "recovering")
        continue;
      // What the model really holds when measured (a model bigger than it declared), as on a GPU.
      const held = Math.max(model.vram_mb, model.vram_used_mb ?? 0);
      if (model.devices.includes(index)) used += held / model.devices.length;
    }
    return used;
  };
  const otherUse = new Map(
    devices.map((device) => [
      device.index,
      Math.max(0, device.vram_total_mb - device.vram_free_mb - sharesOn(device.index, null)),
    ]),
  );
  const freeOn = (device: Device, except: string | null): number =>
    device.vram_total_mb - (otherUse.get(device.index) ?? 0) - sharesOn(device.index, except);

  const placeFor = (request: LoadRequest): number[] => {
    if (devices.length === 0) return request.devices ?? [];
    const unknown = (request.devices ?? []).filter(
      (index) => !devices.some((device) => device.index === index),
    );
    if (unknown.length > 0)
      throw new FakeError("invalid_request_error", `device(s) ${unknown.join(", ")} do not exist`, {
        param: "devices",
      });
    const free = new Map<number, number>();
    for (const device of devices) free.set(device.index, freeOn(device, request.model_id));
    const count = Math.min(request.tensor_parallel ?? 1, devices.length);
    const chosen =
      request.devices ??
      [...devices]
        .sort((a, b) => (free.get(b.index) ?? 0) - (free.get(a.index) ?? 0) || a.index - b.index)
        .slice(0, count)
        .map((device) => device.index)
        .sort((a, b) => a - b);
    const need = chosen.length === 0 ? 0 : (request.vram_mb ?? 0) / chosen.length;
    const short = chosen.filter((index) => (free.get(index) ?? 0) < need);
    if (short.length > 0) {
      throw new FakeError(
        "insufficient_vram",
        `model "${request.model_id}" needs ${Math.ceil(need)} MB on device(s) ${short.join(", ")}`,
        { retryAfterS: 5 },
      );
    }
    return chosen;
  };

  return { freeOn, placeFor };
};
