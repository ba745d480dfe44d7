import { open } from "node:fs/promises";
import type { Device } from "@cortex/protocol";
import { normalizeBusId } from "./gpu-source.js";
import { type NvidiaSmiOptions, runNvidiaSmi } from "./nvidia-smi.js";

// What each process really holds on the GPUs, and so what each harness holds: nvidia-smi's
// per-process rows, each put in its process group (a harness and everything it started share
// one, see supervisor/process-runner.ts) and on the device index the device query reports.

export const COMPUTE_APPS_ARGS: readonly string[] = [
  "--query-compute-apps=pid,used_memory,gpu_bus_id",
  "--format=csv,noheader,nounits",
];

/** One process holding memory on one GPU, as the GPU tool reported it. */
export interface GpuProcess {
  readonly pid: number;
  /** Its process group; null where it cannot be read (gone, or in another PID namespace). */
  readonly group: number | null;
  /** MiB it holds; null where the tool cannot say (`[N/A]`, `[Insufficient Permissions]`). */
  readonly usedMb: number | null;
  /** The GPU's PCI address in nvidia-smi's spelling; null when not given. */
  readonly busId: string | null;
}

/** Where per-process GPU memory comes from: nvidia-smi on real hosts, scripted in tests. */
export interface GpuProcessSource {
  /**
   * Every process holding GPU memory now, or null where this host cannot tell (no GPU tool with
   * per-process figures). Rejects when the tool is there but the read fails.
   */
  read(): Promise<GpuProcess[] | null>;
}

/** What a process group holds on the GPUs, in MiB. */
export interface GroupMemory {
  /** Null when any of its processes' figures is unknown: a partial sum would under-report. */
  readonly usedMb: number | null;
  /** Per device index; null when `usedMb` is, or a row names a GPU the device list lacks. */
  readonly byDevice: readonly { readonly index: number; readonly used_mb: number }[] | null;
}

/** More rows than any host has GPU processes; beyond it the output is not nvidia-smi's. */
export const MAX_GPU_PROCESSES = 1024;
/** A real row is under 60 characters; a longer line is not one. */
const MAX_LINE_CHARS = 512;

const missing = (value: string): boolean =>
  value === "" || /^\[.*\]$/.test(value) || /^n\/a$/i.test(value);

/**
 * Parses `nvidia-smi --query-compute-apps=pid,used_memory,gpu_bus_id --format=csv,noheader,nounits`.
 * A line that is not such a row (a warning, "No running processes found", anything odd) is
 * skipped; a figure nvidia-smi cannot give (`[N/A]`, `[Insufficient Permissions]`) is unknown.
 */
export const parseComputeApps = (text: string): Omit<GpuProcess, "group">[] => {
  const rows: Omit<GpuProcess, "group">[] = [];
  for (const line of text.split(/\r?\n/, MAX_GPU_PROCESSES * 4)) {
    if (rows.length >= MAX_GPU_PROCESSES) break;
    if (line.length > MAX_LINE_CHARS) continue;
    const cells = line.split(",").map((cell) => cell.trim());
    if (cells.length !== 3) continue;
    const [pidCell = "", usedCell = "", busCell = ""] = cells;
    if (!/^\d{1,10}$/.test(pidCell)) continue;
    const pid = Number(pidCell);
    if (pid < 1 || pid > 2 ** 31) continue;
    let usedMb: number | null = null;
    if (/^\d{1,12}(\.\d+)?$/.test(usedCell)) usedMb = Math.floor(Number(usedCell));
    else if (!missing(usedCell)) continue;
    rows.push({ pid, usedMb, busId: missing(busCell) ? null : normalizeBusId(busCell) });
  }
  return rows;
};

/**
 * The process group field (the fifth) of a `/proc/<pid>/stat` line. The command name before it
 * is in parentheses and may hold spaces and parentheses itself, so fields count from the last
 * `)`. Null for anything else.
 */
export const groupFromStat = (stat: string): number | null => {
  const close = stat.lastIndexOf(")");
  if (close < 0) return null;
  const [, , pgrp] = stat
    .slice(close + 1)
    .trim()
    .split(/\s+/, 3);
  if (pgrp === undefined || !/^\d{1,10}$/.test(pgrp)) return null;
  const group = Number(pgrp);
  return group > 0 ? group : null;
};

/** A stat line is a few hundred bytes; more is never read. */
const STAT_BYTES = 4096;

/** The process group of `pid`, from `<procDir>/<pid>/stat`; null where it cannot be read. */
export const processGroupOf = async (pid: number, procDir = "/proc"): Promise<number | null> => {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(`${procDir}/${pid}/stat`, "r");
    const buffer = Buffer.alloc(STAT_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, STAT_BYTES, 0);
    return groupFromStat(buffer.toString("utf8", 0, bytesRead));
  } catch {
    // Gone since nvidia-smi listed it, a host PID this namespace cannot see, or no /proc.
    return null;
  } finally {
    await handle?.close().catch(() => {});
  }
};

export interface NvidiaSmiProcessesOptions extends NvidiaSmiOptions {
  /** Where process groups are read (default /proc); tests point it at a folder of their own. */
  readonly procDir?: string;
}

/**
 * Per-process GPU memory from nvidia-smi, each process put in its group. Null (cannot tell)
 * without nvidia-smi; an empty list when the driver sees no GPU. In a container without the
 * host's PID namespace nvidia-smi names host PIDs, which resolve to no group here: those rows
 * then count for no model, and the models read as not measured rather than as holding nothing.
 */
export const nvidiaSmiProcesses = (options: NvidiaSmiProcessesOptions = {}): GpuProcessSource => ({
  read: async () => {
    const answer = await runNvidiaSmi(COMPUTE_APPS_ARGS, options);
    if (answer.kind === "absent") return null;
    if (answer.kind === "no-devices") return [];
    const rows = parseComputeApps(answer.stdout);
    const groups = new Map<number, number | null>();
    // One by one: there are a handful, and a thousand parallel opens would be a burst of fds.
    for (const { pid } of rows) {
      if (!groups.has(pid)) groups.set(pid, await processGroupOf(pid, options.procDir));
    }
    return rows.map((row) => ({ ...row, group: groups.get(row.pid) ?? null }));
  },
});

/**
 * What each process group holds, per group id: its processes' figures summed, and split by the
 * device index whose bus id each row names. Rows whose group is unknown count for no group.
 */
export const memoryByGroup = (
  processes: readonly GpuProcess[],
  devices: readonly Device[],
): Map<number, GroupMemory> => {
  const indexOf = new Map<string, number>();
  for (const device of devices) {
    const bus = normalizeBusId(device.bus_id);
    if (bus !== null) indexOf.set(bus, device.index);
  }
  const sums = new Map<
    number,
    { total: number; unknown: boolean; unmapped: boolean; byDevice: Map<number, number> }
  >();
  for (const row of processes) {
    if (row.group === null) continue;
    let sum = sums.get(row.group);
    if (!sum) {
      sum = { total: 0, unknown: false, unmapped: false, byDevice: new Map() };
      sums.set(row.group, sum);
    }
    if (row.usedMb === null) {
      sum.unknown = true;
      continue;
    }
    sum.total += row.usedMb;
    const index = row.busId === null ? undefined : indexOf.get(row.busId);
    if (index === undefined) sum.unmapped = true;
    else sum.byDevice.set(index, (sum.byDevice.get(index) ?? 0) + row.usedMb);
  }
  const memory = new Map<number, GroupMemory>();
  for (const [group, sum] of sums) {
    memory.set(group, {
      usedMb: sum.unknown ? null : sum.total,
      byDevice:
        sum.unknown || sum.unmapped
          ? null
          : [...sum.byDevice]
              .sort(([a], [b]) => a - b)
              .map(([index, used]) => ({ index, used_mb: used })),
    });
  }
  return memory;
};
