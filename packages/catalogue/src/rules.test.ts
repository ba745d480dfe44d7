import { ModelProfile, type ModelProfileInput } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import {
  createCatalogue,
  EMPTY_CATALOGUE,
  eligibleDevices,
  infeasibility,
  isFeasibleOn,
  isPinnedOn,
  type NodeFacts,
  resolveModelName,
} from "./rules.js";

// Profiles go through the real schema so defaults (min_device_vram_mb, runs_on) are the
// ones production sees.
const profile = (fields: Partial<ModelProfileInput> & { id: string }): ModelProfile =>
  ModelProfile.parse({
    harness: "llamacpp",
    source: "hf:org/repo/model.gguf",
    vram_mb: 8000,
    ...fields,
  });

const gpus = (...sizesMb: number[]) =>
  sizesMb.map((vram_total_mb, index) => ({ index, vram_total_mb }));

describe("resolveModelName", () => {
  const qwen = profile({ id: "qwen3-8b", aliases: ["qwen", "default"] });
  const llama = profile({ id: "llama-70b", aliases: ["llama"] });
  const catalogue = createCatalogue([qwen, llama]);

  it.each([
    { name: "qwen3-8b", expected: "qwen3-8b", why: "an id" },
    { name: "qwen", expected: "qwen3-8b", why: "an alias" },
    { name: "default", expected: "qwen3-8b", why: "a second alias" },
    { name: "llama", expected: "llama-70b", why: "another model's alias" },
    { name: "gpt-4", expected: undefined, why: "an unknown name" },
    { name: "QWEN", expected: undefined, why: "a name in another case" },
  ])("resolves $why ($name)", ({ name, expected }) => {
    expect(resolveModelName(catalogue, name)?.id).toBe(expected);
  });

  it("prefers an id over an alias of the same name", () => {
    // checkCatalogue rejects this, but the rule must still hold if it ever slips through.
    const shadowing = profile({ id: "shadowing", aliases: ["qwen3-8b"] });
    const withShadow = createCatalogue([shadowing, qwen]);
    expect(resolveModelName(withShadow, "qwen3-8b")?.id).toBe("qwen3-8b");
    expect(withShadow.byAlias.has("qwen3-8b")).toBe(false);
  });

  it("finds nothing in the empty catalogue", () => {
    expect(resolveModelName(EMPTY_CATALOGUE, "qwen")).toBeUndefined();
    expect(EMPTY_CATALOGUE.models).toEqual([]);
  });
});

describe("feasibility", () => {
  const node = (fields: Partial<NodeFacts> = {}): NodeFacts => ({
    name: "gpu-a",
    devices: gpus(24_000),
    ...fields,
  });

  it.each<{ case: string; model: ModelProfile; node: NodeFacts; reason: RegExp | null }>([
    {
      case: "pinned_on empty: any node",
      model: profile({ id: "m" }),
      node: node(),
      reason: null,
    },
    {
      case: "pinned_on names the node",
      model: profile({ id: "m", pinned_on: ["gpu-b", "gpu-a"] }),
      node: node(),
      reason: null,
    },
    {
      case: "pinned_on names another node",
      model: profile({ id: "m", pinned_on: ["gpu-b"] }),
      node: node(),
      reason: /pinned to gpu-b/,
    },
    {
      case: "no devices at all for a GPU model",
      model: profile({ id: "m" }),
      node: node({ devices: [] }),
      reason: /needs 1 device/,
    },
    {
      case: "enough devices",
      model: profile({ id: "m", vram_mb: 40_000, min_devices: 2 }),
      node: node({ devices: gpus(24_000, 24_000) }),
      reason: null,
    },
    {
      case: "too few devices: 1×48 GB vs min_devices 2",
      model: profile({ id: "m", vram_mb: 40_000, min_devices: 2 }),
      node: node({ devices: gpus(48_000) }),
      reason: /needs 2 device\(s\).*node has 1/,
    },
    {
      case: "per-device VRAM: 2×24 GB vs 2 devices × 30 GB (default share)",
      model: profile({ id: "m", vram_mb: 60_000, min_devices: 2 }),
      node: node({ devices: gpus(24_000, 24_000) }),
      reason: /≥ 30000 MB each, node has 0/,
    },
    {
      case: "per-device VRAM: explicit min_device_vram_mb above the device",
      model: profile({ id: "m", vram_mb: 40_000, min_devices: 2, min_device_vram_mb: 30_000 }),
      node: node({ devices: gpus(24_000, 24_000) }),
      reason: /≥ 30000 MB each/,
    },
    {
      case: "only the big devices count: 1 of 2 big enough",
      model: profile({ id: "m", vram_mb: 40_000, min_devices: 2 }),
      node: node({ devices: gpus(8_000, 24_000) }),
      reason: /node has 1/,
    },
    {
      case: "a single device exactly the size needed",
      model: profile({ id: "m", vram_mb: 24_000 }),
      node: node({ devices: gpus(24_000) }),
      reason: null,
    },
    {
      case: "harness listed",
      model: profile({ id: "m", harness: "vllm" }),
      node: node({ harnesses: [{ name: "llamacpp" }, { name: "vllm" }] }),
      reason: null,
    },
    {
      case: "harness missing",
      model: profile({ id: "m", harness: "vllm" }),
      node: node({ harnesses: [{ name: "llamacpp" }] }),
      reason: /no "vllm" harness/,
    },
    {
      case: "harnesses not given: not checked",
      model: profile({ id: "m", harness: "vllm" }),
      node: node(),
      reason: null,
    },
    {
      case: "runs_on cpu on a node without devices",
      model: profile({ id: "m", runs_on: "cpu", vram_mb: 0 }),
      node: node({ devices: [] }),
      reason: null,
    },
    {
      case: "runs_on cpu still obeys pinned_on",
      model: profile({ id: "m", runs_on: "cpu", vram_mb: 0, pinned_on: ["cpu-box"] }),
      node: node({ devices: [] }),
      reason: /pinned to cpu-box/,
    },
    {
      case: "runs_on cpu still needs its harness",
      model: profile({ id: "m", runs_on: "cpu", vram_mb: 0 }),
      node: node({ devices: [], harnesses: [{ name: "vllm" }] }),
      reason: /no "llamacpp" harness/,
    },
  ])("$case", ({ model, node: facts, reason }) => {
    const why = infeasibility(model, facts);
    if (reason === null) {
      expect(why).toBeNull();
      expect(isFeasibleOn(model, facts)).toBe(true);
    } else {
      expect(why).toMatch(reason);
      expect(isFeasibleOn(model, facts)).toBe(false);
    }
  });

  it("keeps only devices with enough total memory", () => {
    const model = profile({ id: "m", vram_mb: 40_000, min_devices: 2 });
    expect(eligibleDevices(model, gpus(8_000, 20_000, 24_000)).map((d) => d.index)).toEqual([1, 2]);
  });

  it.each([
    { pinned_on: [], nodeName: "gpu-a", expected: false },
    { pinned_on: ["gpu-a"], nodeName: "gpu-a", expected: true },
    { pinned_on: ["gpu-b"], nodeName: "gpu-a", expected: false },
  ])("isPinnedOn($pinned_on, $nodeName) is $expected", ({ pinned_on, nodeName, expected }) => {
    expect(isPinnedOn(profile({ id: "m", pinned_on }), nodeName)).toBe(expected);
  });
});
