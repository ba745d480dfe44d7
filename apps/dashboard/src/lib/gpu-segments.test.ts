import type { Device, NeuronModel } from "@cortex/protocol";
import { gpuDevice, neuronModel } from "@cortex/testkit/fixtures";
import { describe, expect, it } from "vitest";
import { gpuUsage, segmentWidths } from "./gpu-segments.js";

const device = (total: number, free: number, index = 0): Device =>
  gpuDevice(index, total, free, { name: "GPU" });

const model = (
  id: string,
  vram: number,
  devices: number[],
  status: NeuronModel["status"] = "loaded",
): NeuronModel => neuronModel(id, { vram_mb: vram, devices, status });

describe("gpuUsage", () => {
  it.each([
    {
      name: "an idle GPU is all free",
      gpu: device(24_000, 24_000),
      models: [],
      segments: [{ kind: "free", mb: 24_000 }],
    },
    {
      name: "models' shares, largest first, then other use, then free",
      gpu: device(24_000, 10_000),
      models: [
        model("small", 2000, [0]),
        model("big", 8000, [0, 1]),
        model("elsewhere", 5000, [1]),
      ],
      segments: [
        { kind: "model", model: "big", status: "loaded", mb: 4000 },
        { kind: "model", model: "small", status: "loaded", mb: 2000 },
        { kind: "other", mb: 8000 },
        { kind: "free", mb: 10_000 },
      ],
    },
    {
      name: "a load just started holds its share before the GPU shows it",
      gpu: device(8000, 8000),
      models: [model("new", 5000, [0], "loading")],
      segments: [
        { kind: "model", model: "new", status: "loading", mb: 5000 },
        { kind: "free", mb: 3000 },
      ],
    },
    {
      name: "unloaded and failed models hold nothing",
      gpu: device(8000, 8000),
      models: [model("idle", 5000, [0], "unloaded"), model("broken", 5000, [0], "failed")],
      segments: [{ kind: "free", mb: 8000 }],
    },
  ])("$name", ({ gpu, models, segments }) => {
    expect(gpuUsage(gpu, models).segments).toEqual(segments);
  });

  it("flags and scales an overcommitted GPU", () => {
    const usage = gpuUsage(device(8000, 8000), [model("a", 6000, [0]), model("b", 6000, [0])]);
    expect(usage.overcommitted).toBe(true);
    expect(usage.usedMb).toBe(12_000);
    expect(segmentWidths(usage)).toEqual([50, 50, 0]);
  });

  it("gives widths in percent of the total", () => {
    const usage = gpuUsage(device(10_000, 5000), [model("a", 2500, [0])]);
    expect(segmentWidths(usage)).toEqual([25, 25, 50]);
  });
});
