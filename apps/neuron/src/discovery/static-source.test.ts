import { DeviceOverride } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { normalizeBusId } from "./gpu-source.js";
import { staticSource } from "./static-source.js";

const override = (fields: Record<string, unknown>) => DeviceOverride.parse(fields);

describe("staticSource", () => {
  it("numbers devices by position and takes all memory as free unless told", async () => {
    const source = staticSource([
      override({ vram_total_mb: 24576 }),
      override({
        vendor: "NVIDIA",
        name: "RTX 4090",
        vram_total_mb: 24564,
        vram_free_mb: 20000,
        bus_id: "41:00.0",
      }),
    ]);
    expect(await source.read()).toEqual([
      {
        index: 0,
        vendor: "unknown",
        name: "static device",
        vram_total_mb: 24576,
        vram_free_mb: 24576,
        utilization_pct: null,
        temperature_c: null,
        bus_id: null,
        driver_version: null,
      },
      {
        index: 1,
        vendor: "NVIDIA",
        name: "RTX 4090",
        vram_total_mb: 24564,
        vram_free_mb: 20000,
        utilization_pct: null,
        temperature_c: null,
        bus_id: "00000000:41:00.0",
        driver_version: null,
      },
    ]);
  });

  it("keeps explicit indices", async () => {
    const source = staticSource([
      override({ index: 3, vram_total_mb: 1000 }),
      override({ index: 1, vram_total_mb: 2000 }),
    ]);
    expect((await source.read()).map((device) => device.index)).toEqual([3, 1]);
  });

  it("refuses two devices with one index", () => {
    expect(() =>
      staticSource([
        override({ vram_total_mb: 1000 }),
        override({ index: 0, vram_total_mb: 2000 }),
      ]),
    ).toThrow(/index 0 is used twice/);
  });

  it("hands out copies, so a caller's edits do not reach the next read", async () => {
    const source = staticSource([override({ vram_total_mb: 1000 })]);
    const first = await source.read();
    if (first[0]) first[0].vram_free_mb = 0;
    expect((await source.read())[0]?.vram_free_mb).toBe(1000);
  });
});

describe("normalizeBusId", () => {
  it.each([
    ["00000000:3B:00.0", "00000000:3B:00.0"],
    ["0000:3b:00.0", "00000000:3B:00.0"],
    ["3b:00.0", "00000000:3B:00.0"],
    ["0000000F:01:00.0", "0000000F:01:00.0"],
    [" 1:0.1 ", "00000000:01:00.1"],
    ["[N/A]", null],
    ["", null],
    [null, null],
    ["pci-slot-7", "pci-slot-7"],
  ])("%j → %j", (raw, expected) => {
    expect(normalizeBusId(raw)).toBe(expected);
  });
});
