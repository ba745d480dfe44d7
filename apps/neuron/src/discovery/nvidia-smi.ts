import { execFile } from "node:child_process";
import type { Device } from "@cortex/protocol";
import { type GpuSource, normalizeBusId } from "./gpu-source.js";

/** The columns asked for, in the order parseNvidiaSmiCsv expects them. */
export const NVIDIA_SMI_FIELDS = [
  "index",
  "pci.bus_id",
  "name",
  "memory.total",
  "memory.free",
  "utilization.gpu",
  "temperature.gpu",
  "driver_version",
] as const;

export const NVIDIA_SMI_ARGS: readonly string[] = [
  `--query-gpu=${NVIDIA_SMI_FIELDS.join(",")}`,
  "--format=csv,noheader,nounits",
];

/** `[N/A]`, `[Not Supported]`, `[Unknown Error]`, `[GPU requires reset]` and bare `N/A`. */
const missing = (value: string): boolean =>
  value === "" || value === "N/A" || /^\[.*\]$/.test(value);

const number = (value: string): number | null => {
  if (missing(value) || !/^-?\d+(\.\d+)?$/.test(value)) return null;
  return Number(value);
};

const mib = (value: string): number => {
  const parsed = number(value);
  // Unknown memory counts as none, so placement never puts a model on memory nobody measured.
  return parsed === null || parsed < 0 ? 0 : Math.floor(parsed);
};

/**
 * Parses `nvidia-smi --query-gpu=<NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits`. Lines that
 * are not GPU rows (the warnings some drivers print on stdout, blank lines) are skipped.
 */
export const parseNvidiaSmiCsv = (text: string): Device[] => {
  const devices: Device[] = [];
  for (const line of text.split(/\r?\n/)) {
    const cells = line.split(",").map((cell) => cell.trim());
    if (cells.length < NVIDIA_SMI_FIELDS.length) continue;
    // A comma inside the name would shift every later column; the name is the only free text.
    const tail = cells.length - (NVIDIA_SMI_FIELDS.length - 3);
    const name = cells.slice(2, tail).join(", ");
    const [indexCell = "", busCell = ""] = cells;
    const [totalCell = "", freeCell = "", utilCell = "", tempCell = "", driverCell = ""] =
      cells.slice(tail);
    const index = number(indexCell);
    if (index === null || !Number.isInteger(index) || index < 0) continue;
    const total = mib(totalCell);
    const utilization = number(utilCell);
    devices.push({
      index,
      vendor: "NVIDIA",
      name: missing(name) ? "unknown NVIDIA GPU" : name,
      vram_total_mb: total,
      vram_free_mb: Math.min(mib(freeCell), total),
      utilization_pct: utilization === null ? null : Math.min(100, Math.max(0, utilization)),
      temperature_c: number(tempCell),
      bus_id: missing(busCell) ? null : normalizeBusId(busCell),
      driver_version: missing(driverCell) ? null : driverCell,
    });
  }
  return devices;
};

export interface NvidiaSmiOptions {
  /** The executable; a bare name is looked up on PATH. */
  readonly command?: string;
  /** nvidia-smi can hang on a wedged driver; past this it is killed and the read fails. */
  readonly timeoutMs?: number;
}

const firstLine = (text: string): string =>
  (text.split(/\r?\n/).find((line) => line.trim() !== "") ?? "").trim().slice(0, 300);

/**
 * What one nvidia-smi query answered: its output, `absent` (no nvidia-smi on PATH: a host
 * without NVIDIA GPUs) or `no-devices` (a driver that sees none, every GPU passed through to VMs).
 */
export type NvidiaSmiAnswer =
  | { readonly kind: "output"; readonly stdout: string; readonly said: string }
  | { readonly kind: "absent" }
  | { readonly kind: "no-devices" };

/**
 * Runs nvidia-smi with `args`, directly (never through a shell) and asynchronously, so a slow
 * nvidia-smi never blocks the event loop; its output is bounded (4 MiB) and its time too. Any
 * failure but the two normal absences rejects with a message an operator can act on.
 */
export const runNvidiaSmi = (
  args: readonly string[],
  options: NvidiaSmiOptions = {},
): Promise<NvidiaSmiAnswer> => {
  const command = options.command ?? "nvidia-smi";
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise<NvidiaSmiAnswer>((resolve, reject) => {
    execFile(
      command,
      args,
      { timeout: timeoutMs, encoding: "utf8", maxBuffer: 4 * 1024 * 1024, windowsHide: true },
      (error, stdout, stderr) => {
        const said = firstLine(stdout) || firstLine(stderr);
        // With a driver but every GPU passed through to VMs it says so and exits non-zero.
        if (/no devices were found/i.test(said)) return resolve({ kind: "no-devices" });
        if (!error) return resolve({ kind: "output", stdout, said });
        const code = (error as NodeJS.ErrnoException).code as unknown;
        if (code === "ENOENT") return resolve({ kind: "absent" });
        if (typeof code === "string") {
          return reject(new Error(`could not run nvidia-smi: ${error.message}`));
        }
        if (error.killed) {
          return reject(new Error(`nvidia-smi did not answer within ${timeoutMs} ms`));
        }
        if (typeof code === "number") {
          return reject(new Error(`nvidia-smi exited with code ${code}${said ? `: ${said}` : ""}`));
        }
        return reject(new Error(`could not run nvidia-smi: ${error.message}`));
      },
    );
  });
};

/**
 * The NVIDIA GPUs as nvidia-smi sees them. No nvidia-smi on PATH means a host without NVIDIA
 * GPUs, which is normal: the answer is an empty list. Any other failure rejects, so the caller
 * can keep the last good list.
 */
export const nvidiaSmiSource = (options: NvidiaSmiOptions = {}): GpuSource => ({
  read: async () => {
    const answer = await runNvidiaSmi(NVIDIA_SMI_ARGS, options);
    if (answer.kind !== "output") return [];
    const devices = parseNvidiaSmiCsv(answer.stdout);
    if (devices.length === 0 && answer.said !== "") {
      throw new Error(`nvidia-smi printed no GPU rows that could be read: ${answer.said}`);
    }
    return devices;
  },
});
