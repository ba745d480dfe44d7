import type { Device } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { combinedSource } from "./combined-source.js";
import type { GpuSource } from "./gpu-source.js";

const device = (
  index: number,
  vendor: string,
  bus: string | null,
  name = `${vendor} GPU`,
): Device => ({
  index,
  vendor,
  name,
  vram_total_mb: 1000,
  vram_free_mb: 1000,
  utilization_pct: null,
  temperature_c: null,
  bus_id: bus,
  driver_version: null,
});

/** A source answering from a script of answers (the last repeats); counts its reads. */
const scripted = (...answers: (Device[] | Error)[]) => {
  const source = {
    reads: 0,
    read: async () => {
      const answer = answers[Math.min(source.reads, answers.length - 1)] ?? [];
      source.reads += 1;
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
  return source satisfies GpuSource;
};

const H100_0 = device(0, "NVIDIA", "00000000:1B:00.0", "NVIDIA H100 80GB HBM3");
const H100_1 = device(1, "NVIDIA", "00000000:43:00.0", "NVIDIA H100 80GB HBM3");
const RADEON = device(1, "AMD", "00000000:C3:00.0", "Navi 31");

describe("combinedSource", () => {
  it("takes NVIDIA GPUs from nvidia-smi and appends the others after them", async () => {
    const warnings: string[] = [];
    const source = combinedSource({
      onWarning: (message) => warnings.push(message),
      nvidia: scripted([H100_1, H100_0]),
      inventory: scripted([device(0, "NVIDIA", "00000000:1B:00.0", "GH100"), RADEON]),
    });
    const devices = await source.read();
    expect(devices.map((d) => [d.index, d.vendor, d.name])).toEqual([
      [0, "NVIDIA", "NVIDIA H100 80GB HBM3"],
      [1, "NVIDIA", "NVIDIA H100 80GB HBM3"],
      [2, "AMD", "Navi 31"],
    ]);
    expect(warnings).toEqual([]);
  });

  it("finds nvidia-smi's GPUs when systeminformation sees none (no lspci in a container)", async () => {
    const source = combinedSource({
      onWarning: () => {},
      nvidia: scripted([H100_0, H100_1]),
      inventory: scripted([]),
    });
    expect(await source.read()).toEqual([H100_0, H100_1]);
  });

  it("reads systeminformation until it answers once, then reuses that answer", async () => {
    const warnings: string[] = [];
    const inventory = scripted(new Error("lspci hung"), [RADEON]);
    const source = combinedSource({
      onWarning: (message) => warnings.push(message),
      nvidia: scripted([H100_0]),
      inventory,
    });
    expect(await source.read()).toEqual([H100_0]);
    expect(warnings).toEqual([
      "systeminformation could not list the GPUs, so only nvidia-smi's are offered: lspci hung",
    ]);
    const again = await source.read();
    expect(await source.read()).toEqual(again);
    expect(again.map((d) => [d.index, d.vendor])).toEqual([
      [0, "NVIDIA"],
      [1, "AMD"],
    ]);
    expect(inventory.reads).toBe(2);
  });

  it("fails the read when nvidia-smi fails, so the cache keeps its last good list", async () => {
    const source = combinedSource({
      onWarning: () => {},
      nvidia: scripted(new Error("nvidia-smi did not answer within 5000 ms")),
      inventory: scripted([RADEON]),
    });
    await expect(source.read()).rejects.toThrow("nvidia-smi did not answer within 5000 ms");
  });

  it("warns once about an NVIDIA card that nvidia-smi does not list, and leaves it out", async () => {
    const warnings: string[] = [];
    const source = combinedSource({
      onWarning: (message) => warnings.push(message),
      nvidia: scripted([]),
      inventory: scripted([device(0, "NVIDIA", "00000000:3B:00.0", "GA100 [A100 PCIe 40GB]")]),
    });
    expect(await source.read()).toEqual([]);
    expect(await source.read()).toEqual([]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/GA100 \[A100 PCIe 40GB\] at 00000000:3B:00\.0 .* not offered/);
  });
});
