import { describe, expect, it } from "vitest";
import { devicesFromControllers, type GraphicsController } from "./systeminformation-source.js";

// Controllers shaped as si.graphics() returns them on Linux (from lspci -vvv, nvidia-smi merged).
const controller = (fields: Partial<GraphicsController>): GraphicsController => ({
  vendor: "",
  model: "",
  bus: "Onboard",
  busAddress: "",
  vram: null,
  vramDynamic: false,
  ...fields,
});

const ASPEED = controller({
  vendor: "ASPEED Technology, Inc.",
  model: "ASPEED Graphics Family",
  busAddress: "03:00.0",
  vram: 64,
});

const A100_MERGED = controller({
  vendor: "NVIDIA Corporation",
  model: "GA100 [A100 PCIe 40GB]",
  busAddress: "3b:00.0",
  vram: 40960,
  name: "NVIDIA A100-PCIE-40GB",
  pciBus: "00000000:3B:00.0",
  driverVersion: "535.129.03",
  memoryTotal: 40960,
  memoryFree: 40327,
  temperatureGpu: 34,
});

describe("devicesFromControllers", () => {
  it("skips a BMC's VGA and numbers the GPUs by their place among GPUs", () => {
    expect(devicesFromControllers([ASPEED, A100_MERGED])).toEqual([
      {
        index: 0,
        vendor: "NVIDIA",
        name: "NVIDIA A100-PCIE-40GB",
        vram_total_mb: 40960,
        vram_free_mb: 40327,
        // systeminformation drops a utilization of 0 when it merges nvidia-smi's rows.
        utilization_pct: null,
        temperature_c: 34,
        bus_id: "00000000:3B:00.0",
        driver_version: "535.129.03",
      },
    ]);
  });

  it("counts a missing NVIDIA free figure as a full GPU, since systeminformation drops zeros", () => {
    const full = { ...A100_MERGED, memoryFree: undefined };
    expect(devicesFromControllers([full])[0]?.vram_free_mb).toBe(0);
  });

  it("keeps AMD GPUs and Intel cards with real memory, taking their memory as free", () => {
    const devices = devicesFromControllers([
      controller({
        vendor: "Intel Corporation",
        model: "CometLake-S GT2 [UHD Graphics 630]",
        busAddress: "00:02.0",
        vram: 256,
      }),
      controller({
        vendor: "Advanced Micro Devices, Inc. [AMD/ATI]",
        model: "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]",
        busAddress: "c3:00.0",
        vram: 256,
      }),
      controller({
        vendor: "Intel Corporation",
        model: "DG2 [Arc A770]",
        busAddress: "03:00.0",
        vram: 16384,
        utilizationGpu: Number.NaN,
      }),
    ]);
    expect(devices).toEqual([
      expect.objectContaining({ index: 0, vendor: "AMD", vram_total_mb: 256, vram_free_mb: 256 }),
      expect.objectContaining({
        index: 1,
        vendor: "Intel",
        name: "DG2 [Arc A770]",
        vram_total_mb: 16384,
        utilization_pct: null,
        bus_id: "00000000:03:00.0",
        driver_version: null,
      }),
    ]);
  });

  it("keeps an NVIDIA card nvidia-smi did not describe, with what lspci says", () => {
    const bare = controller({
      vendor: "NVIDIA Corporation",
      model: "GA100 [A100 PCIe 40GB]",
      busAddress: "3b:00.0",
      vram: 65536,
    });
    expect(devicesFromControllers([bare])).toEqual([
      expect.objectContaining({
        vendor: "NVIDIA",
        name: "GA100 [A100 PCIe 40GB]",
        bus_id: "00000000:3B:00.0",
      }),
    ]);
  });

  it("answers nothing for no controllers", () => {
    expect(devicesFromControllers([])).toEqual([]);
  });
});
