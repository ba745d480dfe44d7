import type { CatalogueReportModel, FleetNode, FleetSnapshot, NeuronModel } from "@cortex/protocol";
import { neuronModel } from "@cortex/testkit/fixtures";
import { describe, expect, it } from "vitest";
import { lastUsedText, loadTargets, modelRows } from "./model-rows.js";

const resident = (id: string, fields: Partial<NeuronModel> = {}): NeuronModel =>
  neuronModel(id, { devices: [0], vram_mb: 1000, ...fields });

const node = (name: string, models: NeuronModel[], healthy = true): FleetNode => ({
  name,
  url: `http://${name}:13131`,
  healthy,
  consecutive_failures: 0,
  last_poll_at: null,
  last_ok_at: null,
  error: null,
  node: null,
  devices: [],
  harnesses: [],
  models,
});

const profile = (id: string): CatalogueReportModel => ({
  id,
  aliases: [],
  harness: "llamacpp",
  source: `${id}.gguf`,
  runs_on: "gpu",
  vram_mb: 1000,
  min_devices: 1,
  min_device_vram_mb: 1000,
  pinned_on: [],
  residency_priority: 0,
  max_concurrency: 4,
  min_replicas: 0,
  max_replicas: 1,
  capabilities: ["chat"],
  args: {},
  vram: { declared_mb: 1000, estimated_mb: null, observed_mb: null, effective_mb: 1000 },
  estimate: null,
  vram_flag: null,
});

describe("modelRows", () => {
  const fleet: FleetSnapshot = {
    taken_at: "2025-06-15T12:00:00Z",
    nodes: [
      node("gpu-b", [
        resident("qwen", { status: "loading", in_flight: 1 }),
        resident("manual", { last_accessed: "2025-06-15T11:00:00Z" }),
      ]),
      node("gpu-a", [
        resident("qwen", { in_flight: 2, queued: 3, last_accessed: "2025-06-15T11:59:00Z" }),
      ]),
    ],
  };

  it("lists the catalogue and everything resident once, sorted, with state per node", () => {
    const rows = modelRows(fleet, [profile("qwen"), profile("llama")]);
    expect(rows.map((r) => [r.id, r.status, r.profile?.id ?? null])).toEqual([
      ["llama", "available", "llama"],
      ["manual", "loaded", null],
      ["qwen", "loaded", "qwen"],
    ]);
    const qwen = rows[2];
    expect(qwen?.placements.map((p) => [p.node, p.model.status])).toEqual([
      ["gpu-a", "loaded"],
      ["gpu-b", "loading"],
    ]);
    expect(qwen).toMatchObject({ inFlight: 3, queued: 3, lastUsed: "2025-06-15T11:59:00Z" });
    expect(qwen?.waiting).toBe(0);
  });

  it("adds the requests cortex holds for a model, by own key only", () => {
    const rows = modelRows({ ...fleet, waiting: { qwen: 4 } }, [
      profile("qwen"),
      profile("toString"),
    ]);
    expect(rows.map((r) => [r.id, r.waiting])).toEqual([
      ["manual", 0],
      ["qwen", 4],
      ["toString", 0],
    ]);
  });

  it.each([
    [["loading", "failed"], "loading"],
    [["unloaded", "recovering"], "recovering"],
    [["failed"], "failed"],
  ] as const)("shows %o as %s", (statuses, overall) => {
    const snapshot: FleetSnapshot = {
      taken_at: fleet.taken_at,
      nodes: statuses.map((status, i) => node(`n${i}`, [resident("m", { status })])),
    };
    expect(modelRows(snapshot, [])[0]?.status).toBe(overall);
  });

  it("has catalogue rows before the first snapshot", () => {
    expect(modelRows(null, [profile("x")])).toEqual([
      expect.objectContaining({ id: "x", status: "available", placements: [] }),
    ]);
  });
});

describe("lastUsedText", () => {
  const now = Date.parse("2025-06-15T12:00:00Z");
  const rowOf = (models: NeuronModel[]) =>
    modelRows({ taken_at: "2025-06-15T12:00:00Z", nodes: [node("gpu-a", models)] }, [
      profile("m"),
    ])[0];

  it.each([
    [[resident("m", { last_accessed: "2025-06-15T11:58:00Z" })], "2 min ago"],
    // Loaded again after an unload: the neuron's count starts over, so not "never".
    [[resident("m", { loaded_at: "2025-06-15T11:59:30Z" })], "not since its load 30 s ago"],
    [[resident("m", { status: "loading" })], "not yet (loading)"],
    [[], "not resident"],
  ])("%#: %s", (models, text) => {
    const row = rowOf(models);
    expect(row && lastUsedText(row, now)).toBe(text);
  });

  it("never says never", () => {
    for (const models of [
      [],
      [resident("m")],
      [resident("m", { loaded_at: "2025-06-15T11:00:00Z" })],
    ]) {
      const row = rowOf(models);
      expect(row && lastUsedText(row, now)).not.toMatch(/never/);
    }
  });
});

describe("loadTargets", () => {
  const pinned = { ...profile("p"), pinned_on: ["gpu-a", "gpu-c"] };
  const snapshot: FleetSnapshot = {
    taken_at: "2025-06-15T12:00:00Z",
    nodes: [
      node("gpu-a", [resident("m"), resident("p", { status: "unloaded" })]),
      node("gpu-b", [resident("m", { status: "failed" })]),
      node("gpu-c", [], false),
    ],
  };
  const targetsOf = (id: string) => {
    const row = modelRows(snapshot, [profile("m"), pinned, profile("free")]).find(
      (r) => r.id === id,
    );
    return row ? loadTargets(row, snapshot.nodes) : [];
  };

  it("disables the nodes that already have the model loaded, and anywhere once it is", () => {
    expect(targetsOf("m")).toEqual([
      { node: null, disabled: "already loaded on gpu-a" },
      { node: "gpu-a", disabled: "already loaded" },
      // A failed model may be loaded again.
      { node: "gpu-b", disabled: null },
      { node: "gpu-c", disabled: "unhealthy" },
    ]);
  });

  it("keeps unhealthy nodes and pinned_on, and lets a lazily unloaded model load again", () => {
    expect(targetsOf("p")).toEqual([
      { node: null, disabled: null },
      { node: "gpu-a", disabled: null },
      { node: "gpu-b", disabled: "not in pinned_on" },
      { node: "gpu-c", disabled: "unhealthy" },
    ]);
  });

  it("leaves everything open for a model resident nowhere", () => {
    expect(targetsOf("free").map((t) => t.disabled)).toEqual([null, null, null, "unhealthy"]);
  });

  it("disables drained nodes and those whose labels do not match the node_selector", () => {
    const selective = { ...profile("s"), node_selector: { gpu: "a100" } };
    const nodes = [
      { ...node("gpu-a", []), labels: { gpu: "a100" } },
      { ...node("gpu-b", []), labels: { gpu: "h100" } },
      node("gpu-c", []),
      { ...node("gpu-d", []), labels: { gpu: "a100" }, drain: "draining" as const },
    ];
    const row = modelRows({ taken_at: snapshot.taken_at, nodes }, [selective])[0];
    expect(row && loadTargets(row, nodes)).toEqual([
      { node: null, disabled: null },
      { node: "gpu-a", disabled: null },
      { node: "gpu-b", disabled: "labels do not match node_selector" },
      { node: "gpu-c", disabled: "labels do not match node_selector" },
      { node: "gpu-d", disabled: "draining" },
    ]);
  });

  it("has no choice left where the model is loaded on every node", () => {
    const everywhere: FleetSnapshot = {
      taken_at: snapshot.taken_at,
      nodes: [node("a", [resident("m")]), node("b", [resident("m", { status: "loading" })])],
    };
    const row = modelRows(everywhere, [profile("m")])[0];
    expect(row && loadTargets(row, everywhere.nodes).every((t) => t.disabled !== null)).toBe(true);
  });
});
