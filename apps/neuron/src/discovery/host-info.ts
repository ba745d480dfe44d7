import * as os from "node:os";
import type { NodeInfo } from "@cortex/protocol";
import type { Systeminformation } from "systeminformation";
import { runSystemInformation } from "./si-worker.js";

export interface HostFacts {
  readonly os?: Partial<Systeminformation.OsData> | null;
  readonly cpu?: Partial<Systeminformation.CpuData> | null;
  readonly mem?: Partial<Systeminformation.MemData> | null;
}

/** What node:os knows, for whatever systeminformation could not say. */
export interface HostFallback {
  readonly hostname: string;
  readonly os: string;
  readonly kernel: string;
  readonly cpu: string;
  readonly memoryBytes: number;
}

const text = (...parts: (string | undefined)[]): string =>
  parts
    .map((part) => part?.trim() ?? "")
    .filter((part) => part !== "")
    .join(" ");

/** Prefers systeminformation's figures (a distro name, a tidy CPU brand), field by field. */
export const hostInfoFrom = (name: string, facts: HostFacts, fallback: HostFallback): NodeInfo => {
  const memoryBytes = facts.mem?.total;
  return {
    name,
    hostname: text(facts.os?.hostname) || fallback.hostname,
    os: text(facts.os?.distro, facts.os?.release) || fallback.os,
    kernel: text(facts.os?.kernel) || fallback.kernel,
    cpu: text(facts.cpu?.manufacturer, facts.cpu?.brand) || fallback.cpu,
    memory_mb: Math.floor(
      (typeof memoryBytes === "number" && memoryBytes > 0 ? memoryBytes : fallback.memoryBytes) /
        (1024 * 1024),
    ),
  };
};

const nodeFallback = (): HostFallback => ({
  hostname: os.hostname(),
  os: os.type(),
  kernel: os.release(),
  cpu: os.cpus()[0]?.model.trim() ?? "",
  memoryBytes: os.totalmem(),
});

/**
 * The node's description, read once at start. Never rejects: whatever systeminformation cannot
 * say within the timeout (it runs lscpu and `hostname -f`, which can wait on DNS) comes from
 * node:os instead.
 */
export const readHostInfo = async (
  name: string,
  options: { readonly timeoutMs?: number } = {},
): Promise<NodeInfo> => {
  let facts: HostFacts = {};
  try {
    const [osData, cpu, mem] = (await runSystemInformation(
      ["osInfo", "cpu", "mem"],
      options.timeoutMs ?? 10_000,
    ).answer) as [Systeminformation.OsData, Systeminformation.CpuData, Systeminformation.MemData];
    facts = { os: osData, cpu, mem };
  } catch {
    // node:os below answers every field.
  }
  return hostInfoFrom(name, facts, nodeFallback());
};
