import type { Device } from "@cortex/protocol";
import type { Systeminformation } from "systeminformation";
import { type GpuSource, normalizeBusId } from "./gpu-source.js";
import { runSystemInformation } from "./si-worker.js";

export type GraphicsController = Systeminformation.GraphicsControllerData;

/**
 * Below this, a "VRAM" figure from lspci is a display adapter's memory window, not a GPU: a BMC's
 * ASPEED or Matrox VGA shows 16–64 MB. Only NVIDIA (merged from nvidia-smi) and clinfo give real
 * memory sizes; for everything else systeminformation reports the largest PCI BAR.
 */
const MIN_VRAM_MB = 1024;

const vendorOf = (controller: GraphicsController): string => {
  const vendor = controller.vendor.trim();
  if (/nvidia/i.test(vendor)) return "NVIDIA";
  if (/advanced micro devices|\bamd\b|\bati\b/i.test(vendor)) return "AMD";
  if (/intel/i.test(vendor)) return "Intel";
  return vendor || "unknown";
};

const finite = (value: number | null | undefined): number | null =>
  typeof value === "number" && Number.isFinite(value) ? value : null;

const mb = (value: number | null | undefined): number => {
  const parsed = finite(value);
  return parsed === null || parsed < 0 ? 0 : Math.floor(parsed);
};

const isGpu = (controller: GraphicsController): boolean => {
  const vendor = vendorOf(controller);
  if (vendor === "NVIDIA" || vendor === "AMD") return true;
  return mb(controller.memoryTotal ?? controller.vram) >= MIN_VRAM_MB;
};

/**
 * Maps `si.graphics().controllers` to devices, numbered in the order listed (lspci's, which is PCI
 * bus order, as nvidia-smi's is). Free memory is only measured for NVIDIA, and systeminformation
 * drops every nvidia-smi figure that is 0 (its merge tests truthiness): a missing NVIDIA free
 * figure may mean a full GPU, so it counts as 0. Elsewhere nothing measures it, so it is taken as
 * all of it, as for a device from neuron.yaml.
 */
export const devicesFromControllers = (controllers: readonly GraphicsController[]): Device[] =>
  controllers.filter(isGpu).map((controller, index) => {
    const vendor = vendorOf(controller);
    const total = mb(controller.memoryTotal ?? controller.vram);
    const free = finite(controller.memoryFree);
    const utilization = finite(controller.utilizationGpu);
    return {
      index,
      vendor,
      name: controller.name?.trim() || controller.model.trim() || "unknown GPU",
      vram_total_mb: total,
      vram_free_mb: free !== null ? Math.min(mb(free), total) : vendor === "NVIDIA" ? 0 : total,
      utilization_pct: utilization === null ? null : Math.min(100, Math.max(0, utilization)),
      temperature_c: finite(controller.temperatureGpu),
      bus_id: normalizeBusId(controller.pciBus || controller.busAddress),
      driver_version: controller.driverVersion?.trim() || null,
    };
  });

export interface SystemInformationOptions {
  /** lspci, dmidecode, nvidia-smi and clinfo all run inside one call; past this it fails. */
  readonly timeoutMs?: number;
}

/**
 * Every GPU systeminformation finds. On Linux it lists controllers from `lspci -vvv` and merges
 * nvidia-smi rows into them by bus address, so without lspci (most containers) it finds nothing,
 * not even GPUs nvidia-smi can see: combinedSource exists for that.
 */
export const systeminformationSource = (options: SystemInformationOptions = {}): GpuSource => {
  const timeoutMs = options.timeoutMs ?? 15_000;
  let busy = false;
  return {
    read: async () => {
      // A worker stuck in a blocking call cannot be stopped; never stack a second one on it.
      if (busy) throw new Error("systeminformation is still busy with an earlier read");
      busy = true;
      const run = runSystemInformation(["graphics"], timeoutMs);
      void run.exited.then(() => {
        busy = false;
      });
      const [graphics] = (await run.answer) as [Systeminformation.GraphicsData | null];
      return devicesFromControllers(graphics?.controllers ?? []);
    },
  };
};
