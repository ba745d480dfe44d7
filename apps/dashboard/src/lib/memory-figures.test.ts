import type { CatalogueReportModel, CatalogueVram } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { memoryFigures } from "./memory-figures.js";

const entry = (
  vram: Partial<CatalogueVram>,
  fields: Partial<CatalogueReportModel> = {},
): CatalogueReportModel => ({
  id: "m",
  aliases: [],
  harness: "llamacpp",
  source: "m.gguf",
  runs_on: "gpu",
  vram_mb: vram.effective_mb ?? null,
  min_devices: 1,
  min_device_vram_mb: vram.effective_mb ?? null,
  pinned_on: [],
  residency_priority: 0,
  max_concurrency: 4,
  min_replicas: 0,
  max_replicas: 1,
  capabilities: ["chat"],
  args: {},
  vram: { declared_mb: null, estimated_mb: null, observed_mb: null, effective_mb: null, ...vram },
  estimate: null,
  vram_flag: null,
  ...fields,
});

describe("memoryFigures", () => {
  it("shows the figure cortex places by and every figure it knows", () => {
    expect(
      memoryFigures(
        entry({ declared_mb: 6656, estimated_mb: 6144, observed_mb: 6400, effective_mb: 6720 }),
      ),
    ).toEqual({
      effective: "6.6 GB",
      known: "declared 6.5 GB · estimated 6 GB · observed 6.3 GB",
      flag: null,
    });
  });

  it("flags a declared figure far off the observed one, saying which way", () => {
    const below = memoryFigures(
      entry(
        { declared_mb: 10_240, observed_mb: 20_480, effective_mb: 21_504 },
        { vram_flag: "declared_off" },
      ),
    );
    expect(below.flag).toBe(
      "the declared 10 GB is 50 % below the 20 GB observed: fix vram_mb in the catalogue",
    );
    const above = memoryFigures(
      entry(
        { declared_mb: 30_720, observed_mb: 20_480, effective_mb: 21_504 },
        { vram_flag: "declared_off" },
      ),
    );
    expect(above.flag).toMatch(/is 50 % above the 20 GB observed/);
  });

  it("says it is estimating while no figure is known, and CPU for a cpu model", () => {
    expect(memoryFigures(entry({}))).toEqual({ effective: "estimating…", known: "", flag: null });
    expect(memoryFigures(entry({ effective_mb: 0 }, { runs_on: "cpu" })).effective).toBe("CPU");
    expect(
      memoryFigures(entry({ estimated_mb: 80_000, effective_mb: 80_000 }, { min_devices: 2 }))
        .effective,
    ).toBe("78.1 GB on 2 GPUs");
  });
});
