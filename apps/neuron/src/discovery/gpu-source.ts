import type { Device } from "@cortex/protocol";

/** Where the device list comes from: neuron.yaml, nvidia-smi, systeminformation or a mix. */
export interface GpuSource {
  /** Every device right now; rejects when the list cannot be read (the cache keeps the last one). */
  read(): Promise<Device[]>;
}

/**
 * Environment every harness starts with. nvidia-smi always counts GPUs in PCI bus order but CUDA
 * defaults to "fastest first", so without this `CUDA_VISIBLE_DEVICES=1` could name a different
 * GPU than index 1 of the device list that placement decided on.
 */
export const HARNESS_GPU_ENV: Readonly<Record<string, string>> = Object.freeze({
  CUDA_DEVICE_ORDER: "PCI_BUS_ID",
});

const BUS_ID = /^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i;

/**
 * One spelling for a PCI address, nvidia-smi's (`00000000:3B:00.0`), so an address from lspci
 * (`3b:00.0`), sysfs (`0000:3b:00.0`) or neuron.yaml matches it. Anything that is not a PCI
 * address is kept as written rather than lost.
 */
export const normalizeBusId = (raw: string | null | undefined): string | null => {
  const text = raw?.trim() ?? "";
  if (text === "" || /^\[?n\/a\]?$/i.test(text)) return null;
  const match = BUS_ID.exec(text);
  if (!match) return text;
  const [, domain = "0", bus = "", device = "", fn = ""] = match;
  const hex = (value: string, width: number) => value.padStart(width, "0").toUpperCase();
  return `${hex(domain, 8)}:${hex(bus, 2)}:${hex(device, 2)}.${fn}`;
};

/** Passes each distinct message on once, so a condition seen on every read is reported once. */
export const oncePerMessage = (onWarning: (message: string) => void) => {
  const seen = new Set<string>();
  return (message: string): void => {
    if (seen.has(message)) return;
    seen.add(message);
    onWarning(message);
  };
};

export const errorMessage = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);
