import { createEntries } from "@cortex/catalogue";
import {
  CatalogueEntry,
  type CatalogueEntryInput,
  type FleetNode,
  type FleetSnapshot,
} from "@cortex/protocol";
import { gpuDevice, neuronModel } from "@cortex/testkit";
import { describe, expect, it } from "vitest";
import { estimateNodes, estimateRequest } from "./estimate-targets.js";
import { measuredView } from "./measured-view.js";
import { MemoryBook } from "./memory-book.js";
import { memoryKey } from "./memory-key.js";
import { profileOf, RoutedCatalogue, UNKNOWN_VRAM_MB } from "./routed-catalogue.js";

// What placement reads from the memory: the routed catalogue's profiles, residents counted at
// what they were measured at, and where (and with what) an estimate is asked.

const entry = (fields: Partial<CatalogueEntryInput> = {}): CatalogueEntry =>
  CatalogueEntry.parse({ id: "m", harness: "llamacpp", source: "hf:org/repo/m.gguf", ...fields });

const node = (name: string, fields: Partial<FleetNode> = {}): FleetNode => ({
  name,
  url: `http://${name}:4000`,
  healthy: true,
  last_poll_at: null,
  last_ok_at: null,
  consecutive_failures: 0,
  error: null,
  node: null,
  devices: [gpuDevice(0, 24_000)],
  harnesses: [{ name: "llamacpp", kind: "builtin" }],
  models: [],
  ...fields,
});

const snapshot = (...nodes: FleetNode[]): FleetSnapshot => ({
  taken_at: "2026-01-01T00:00:00.000Z",
  nodes,
});

describe("profileOf", () => {
  it("places an entry by its effective figure, sharing it over its devices", () => {
    expect(profileOf(entry({ min_devices: 2 }), 30_001)).toMatchObject({
      vram_mb: 30_001,
      min_device_vram_mb: 15_001,
    });
    expect(profileOf(entry({ min_device_vram_mb: 40_000 }), 30_000).min_device_vram_mb).toBe(
      40_000,
    );
    expect(profileOf(entry({ runs_on: "cpu" }), 0)).toMatchObject({
      vram_mb: 0,
      min_device_vram_mb: 0,
    });
  });

  it("makes an entry of unknown figure fit no GPU", () => {
    expect(profileOf(entry(), null)).toMatchObject({
      vram_mb: UNKNOWN_VRAM_MB,
      min_device_vram_mb: UNKNOWN_VRAM_MB,
    });
  });
});

describe("RoutedCatalogue", () => {
  it("rebuilds when the book changes, keeping the profiles that did not", () => {
    const declared = entry({ id: "declared", vram_mb: 8000 });
    const estimated = entry({ id: "estimated" });
    const entries = createEntries([{ file: "models.yaml", models: [declared, estimated] }]);
    const book = new MemoryBook();
    const routed = new RoutedCatalogue(() => entries, book);
    const first = routed.current();
    expect(routed.current()).toBe(first);
    expect(first.byId.get("estimated")?.vram_mb).toBe(UNKNOWN_VRAM_MB);
    book.setEstimate(
      { key: memoryKey(estimated), model: "estimated", harness: "llamacpp" },
      {
        vram_mb: 5000,
        breakdown: { weights_mb: 4000, kv_cache_mb: 600, overhead_mb: 400 },
        basis: "gguf header",
      },
    );
    const second = routed.current();
    expect(second).not.toBe(first);
    expect(second.byId.get("estimated")?.vram_mb).toBe(5000);
    expect(second.byId.get("declared")).toBe(first.byId.get("declared"));
    // Nothing unknown any more: the listing is the routed catalogue itself.
    expect(routed.listed()).toBe(second);
  });

  it("lists an entry of unknown figure with no size rather than an infinite one", () => {
    const entries = createEntries([{ file: "models.yaml", models: [entry({ id: "pending" })] }]);
    const routed = new RoutedCatalogue(() => entries, new MemoryBook());
    const listed = routed.listed();
    expect(listed.byId.get("pending")).toMatchObject({ vram_mb: 0, min_device_vram_mb: 0 });
    expect(routed.listed()).toBe(listed);
    expect(routed.current().byId.get("pending")?.vram_mb).toBe(UNKNOWN_VRAM_MB);
  });
});

describe("measuredView", () => {
  it("counts a resident at its measured footprint when that is more than it was loaded with", () => {
    const big = neuronModel("big", { devices: [0], vram_mb: 10_000, vram_used_mb: 20_000 });
    const small = neuronModel("small", { devices: [0], vram_mb: 4000, vram_used_mb: 3000 });
    const fleet = snapshot(node("a", { models: [big, small] }), node("b"));
    const view = measuredView(fleet);
    expect(view.nodes[0]?.models.map((model) => model.vram_mb)).toEqual([20_000, 4000]);
    expect(view.nodes[0]?.models[1]).toBe(small);
    expect(view.nodes[1]).toBe(fleet.nodes[1]);
    expect(measuredView(fleet)).toBe(view);
  });

  it("is the snapshot itself when nothing holds more than it was loaded with", () => {
    const fleet = snapshot(node("a", { models: [neuronModel("m", { vram_used_mb: null })] }));
    expect(measuredView(fleet)).toBe(fleet);
  });
});

describe("estimateRequest", () => {
  it("is the entry's load request without devices or a figure", () => {
    const request = estimateRequest(
      entry({
        vram_mb: 9000,
        min_devices: 2,
        context_length: 8192,
        max_concurrency: 4,
        quant: "Q4_K_M",
        args: { n_gpu_layers: 99 },
        min_replicas: 1,
      }),
    );
    expect(request).toEqual({
      model_id: "m",
      harness: "llamacpp",
      source: "hf:org/repo/m.gguf",
      tensor_parallel: 2,
      max_concurrency: 4,
      args: { n_gpu_layers: 99 },
      residency_priority: 0,
      quant: "Q4_K_M",
      idle_ttl_s: 0,
      context_length: 8192,
    });
  });
});

describe("estimateNodes", () => {
  const held = (path: string) => ({
    models_dir: "/models",
    files: [{ path, size_bytes: 1 }],
    complete: true,
  });

  it("asks healthy nodes with the harness, within pinned_on, those holding the file first", () => {
    const fleet = snapshot(
      node("a"),
      node("b", { sources: held("hf/org/repo/main/m.gguf") }),
      node("c", { healthy: false }),
      node("d", { harnesses: [{ name: "vllm", kind: "template" }] }),
      node("e", { devices: [] }),
    );
    expect(estimateNodes(entry(), fleet)).toEqual(["b", "a", "e"]);
    expect(estimateNodes(entry({ pinned_on: ["a", "c"] }), fleet)).toEqual(["a"]);
  });

  it("asks only nodes whose labels match the entry's node_selector", () => {
    const fleet = snapshot(
      node("a", { labels: { gpu: "h100" } }),
      node("b", { labels: { gpu: "a100", zone: "eu" } }),
      node("c"),
    );
    expect(estimateNodes(entry({ node_selector: { gpu: "a100" } }), fleet)).toEqual(["b"]);
  });

  it("never asks a node known to lack a local file", () => {
    const fleet = snapshot(
      node("a", { sources: held("other.gguf") }),
      node("b", { sources: held("local.gguf") }),
      node("c"),
    );
    expect(estimateNodes(entry({ source: "local.gguf" }), fleet)).toEqual(["b", "c"]);
  });
});
