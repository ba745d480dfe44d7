import type { FleetNode, FleetSnapshot, ModelProfile, NeuronModel } from "@cortex/protocol";
import { neuronModel } from "@cortex/testkit/fixtures";
import { describe, expect, it } from "vitest";
import { modelRows } from "./model-rows.js";

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

const profile = (id: string): ModelProfile => ({
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
  capabilities: ["chat"],
  args: {},
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
