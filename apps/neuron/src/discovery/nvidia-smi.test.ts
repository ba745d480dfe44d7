import { Device } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { EIGHT_H100, HOSTS, nvidiaSmiCsv, ONE_A100 } from "./gpu-hosts.fixtures.js";
import { NVIDIA_SMI_ARGS, NVIDIA_SMI_FIELDS, parseNvidiaSmiCsv } from "./nvidia-smi.js";

const row = (...cells: string[]) => `${cells.join(", ")}\n`;

describe("parseNvidiaSmiCsv", () => {
  it.each(HOSTS)("reads every GPU of a host with $label", (host) => {
    const devices = parseNvidiaSmiCsv(nvidiaSmiCsv(host.gpus, NVIDIA_SMI_FIELDS));
    expect(devices).toEqual(host.devices);
    for (const device of devices) expect(Device.parse(device)).toEqual(device);
  });

  it("asks nvidia-smi for exactly the columns it parses, without units or header", () => {
    expect(NVIDIA_SMI_ARGS).toEqual([
      "--query-gpu=index,pci.bus_id,name,memory.total,memory.free,utilization.gpu,temperature.gpu,driver_version",
      "--format=csv,noheader,nounits",
    ]);
  });

  it("turns [N/A] and [Not Supported] into null, and unknown memory into 0", () => {
    // An A100 in MIG mode has no utilization; a GB10 (unified memory) reports no memory at all.
    const text =
      row(
        "0",
        "00000000:3B:00.0",
        "NVIDIA A100-PCIE-40GB",
        "40960",
        "40327",
        "[N/A]",
        "34",
        "535.129.03",
      ) +
      row(
        "1",
        "0000000F:01:00.0",
        "NVIDIA GB10",
        "[N/A]",
        "[Not Supported]",
        "[Not Supported]",
        "[N/A]",
        "[N/A]",
      );
    expect(parseNvidiaSmiCsv(text)).toEqual([
      {
        index: 0,
        vendor: "NVIDIA",
        name: "NVIDIA A100-PCIE-40GB",
        vram_total_mb: 40960,
        vram_free_mb: 40327,
        utilization_pct: null,
        temperature_c: 34,
        bus_id: "00000000:3B:00.0",
        driver_version: "535.129.03",
      },
      {
        index: 1,
        vendor: "NVIDIA",
        name: "NVIDIA GB10",
        vram_total_mb: 0,
        vram_free_mb: 0,
        utilization_pct: null,
        temperature_c: null,
        bus_id: "0000000F:01:00.0",
        driver_version: null,
      },
    ]);
  });

  it("trims odd spacing, accepts CRLF and lower-case or short bus ids", () => {
    const text = "  0 ,0000:3b:00.0,  NVIDIA L4 ,23034 ,  22692,7 ,  45 , 550.90.07  \r\n";
    expect(parseNvidiaSmiCsv(text)).toEqual([
      expect.objectContaining({
        index: 0,
        name: "NVIDIA L4",
        vram_total_mb: 23034,
        vram_free_mb: 22692,
        utilization_pct: 7,
        temperature_c: 45,
        bus_id: "00000000:3B:00.0",
        driver_version: "550.90.07",
      }),
    ]);
  });

  it("skips lines that are not GPU rows instead of failing the whole list", () => {
    const text = `WARNING: infoROM is corrupted at gpu 0000:3B:00.0\n\n${nvidiaSmiCsv(ONE_A100.gpus, NVIDIA_SMI_FIELDS)}\n`;
    expect(parseNvidiaSmiCsv(text)).toEqual(ONE_A100.devices);
    expect(parseNvidiaSmiCsv("")).toEqual([]);
    expect(parseNvidiaSmiCsv("No devices were found\n")).toEqual([]);
  });

  it("keeps the later columns in place when a name contains a comma", () => {
    const text = row(
      "0",
      "00000000:01:00.0",
      "Some GPU",
      "rev B",
      "8192",
      "8000",
      "1",
      "40",
      "1.0",
    );
    expect(parseNvidiaSmiCsv(text)[0]).toMatchObject({
      name: "Some GPU, rev B",
      vram_total_mb: 8192,
      driver_version: "1.0",
    });
  });

  it("never reports more free memory than total, or utilization outside 0–100", () => {
    const text = row("0", "00000000:01:00.0", "Odd GPU", "1000", "1200", "104", "-5", "1.0");
    expect(parseNvidiaSmiCsv(text)[0]).toMatchObject({
      vram_free_mb: 1000,
      utilization_pct: 100,
      temperature_c: -5,
    });
  });

  it("reads eight GPUs in the order and with the indices nvidia-smi gives", () => {
    const devices = parseNvidiaSmiCsv(nvidiaSmiCsv(EIGHT_H100.gpus, NVIDIA_SMI_FIELDS));
    expect(devices.map((device) => [device.index, device.bus_id])).toEqual([
      [0, "00000000:1B:00.0"],
      [1, "00000000:43:00.0"],
      [2, "00000000:52:00.0"],
      [3, "00000000:61:00.0"],
      [4, "00000000:9D:00.0"],
      [5, "00000000:C3:00.0"],
      [6, "00000000:D1:00.0"],
      [7, "00000000:DF:00.0"],
    ]);
  });
});
