import type { Device, DeviceOverride } from "@cortex/protocol";
import { type GpuSource, normalizeBusId } from "./gpu-source.js";

/**
 * The devices written in neuron.yaml, for hosts where probing is impossible or wrong (a VM with
 * a passed-through GPU and no driver tools, tests, a CPU box that should pretend). Nothing is
 * measured, so free memory is what the file says, or all of it.
 */
export const staticSource = (overrides: readonly DeviceOverride[]): GpuSource => {
  const devices: Device[] = overrides.map((override, position) => ({
    index: override.index ?? position,
    vendor: override.vendor,
    name: override.name,
    vram_total_mb: override.vram_total_mb,
    vram_free_mb: override.vram_free_mb ?? override.vram_total_mb,
    utilization_pct: null,
    temperature_c: null,
    bus_id: normalizeBusId(override.bus_id),
    driver_version: null,
  }));
  // Fail at startup, where the operator reads it, rather than place two models on "one" GPU.
  const seen = new Set<number>();
  for (const device of devices) {
    if (seen.has(device.index)) {
      throw new Error(
        `devices in the configuration: index ${device.index} is used twice; give every device its own index (or leave index out to number them in order)`,
      );
    }
    seen.add(device.index);
  }
  // Copies, so a caller that edits what it got cannot change the next read.
  return { read: async () => devices.map((device) => ({ ...device })) };
};
