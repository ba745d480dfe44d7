import type { Device } from "@cortex/protocol";
import { errorMessage, type GpuSource, oncePerMessage } from "./gpu-source.js";
import { nvidiaSmiSource } from "./nvidia-smi.js";
import { systeminformationSource } from "./systeminformation-source.js";

/**
 * nvidia-smi's rows, then every other GPU of the inventory, numbered after the last NVIDIA index.
 * NVIDIA devices of the inventory are dropped whatever they say: nvidia-smi's indices are the
 * ones CUDA uses, and without nvidia-smi an NVIDIA card's "VRAM" is only a PCI window.
 */
export const combineDevices = (
  nvidia: readonly Device[],
  inventory: readonly Device[],
): Device[] => {
  const nvidiaBuses = new Set(nvidia.map((device) => device.bus_id).filter((bus) => bus !== null));
  const others = inventory.filter(
    (device) =>
      device.vendor !== "NVIDIA" && (device.bus_id === null || !nvidiaBuses.has(device.bus_id)),
  );
  const sorted = [...nvidia].sort((a, b) => a.index - b.index);
  const next = sorted.reduce((max, device) => Math.max(max, device.index + 1), 0);
  return [...sorted, ...others.map((device, position) => ({ ...device, index: next + position }))];
};

export interface CombinedSourceOptions {
  readonly onWarning: (message: string) => void;
  /** Authoritative for NVIDIA GPUs; defaults to nvidia-smi on PATH. */
  readonly nvidia?: GpuSource;
  /** Everything else (AMD, Intel); defaults to systeminformation. Read until it succeeds once. */
  readonly inventory?: GpuSource;
}

/**
 * The source for real hosts. nvidia-smi is read on every refresh (free memory, utilization);
 * systeminformation only until it has answered once, because what it adds (non-NVIDIA GPUs and
 * their PCI memory windows) does not change while the host runs, and each call of it also runs
 * nvidia-smi, lspci and dmidecode. A failing nvidia-smi fails the read, so the cache keeps the
 * last good list; a failing systeminformation only costs the non-NVIDIA GPUs, with a warning.
 */
export const combinedSource = (options: CombinedSourceOptions): GpuSource => {
  const nvidia = options.nvidia ?? nvidiaSmiSource();
  const inventory = options.inventory ?? systeminformationSource();
  const warn = oncePerMessage(options.onWarning);
  let known: Device[] | null = null;

  return {
    read: async () => {
      // Both start before either is awaited, so they see the same environment.
      const nvidiaRead = nvidia.read();
      const inventoryRead = known ? Promise.resolve(known) : inventory.read();
      const [nvidiaResult, inventoryResult] = await Promise.allSettled([nvidiaRead, inventoryRead]);
      let others: Device[] = [];
      if (inventoryResult.status === "fulfilled") {
        known = inventoryResult.value;
        others = known;
      } else {
        warn(
          `systeminformation could not list the GPUs, so only nvidia-smi's are offered: ${errorMessage(inventoryResult.reason)}`,
        );
      }
      if (nvidiaResult.status === "rejected") throw nvidiaResult.reason;
      const nvidiaBuses = new Set(nvidiaResult.value.map((device) => device.bus_id));
      for (const device of others) {
        if (device.vendor === "NVIDIA" && !nvidiaBuses.has(device.bus_id)) {
          warn(
            `the NVIDIA GPU ${device.name} at ${device.bus_id ?? "an unknown PCI address"} is on the PCI bus but nvidia-smi does not list it, so it is not offered; is the NVIDIA driver installed and loaded?`,
          );
        }
      }
      return combineDevices(nvidiaResult.value, others);
    },
  };
};
