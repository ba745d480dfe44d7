import { type Catalogue, createCatalogue, EMPTY_CATALOGUE } from "@cortex/catalogue";
import {
  CortexModelList,
  type FleetNode,
  type FleetSnapshot,
  ModelProfile,
  type ModelProfileInput,
  type ModelStatus,
} from "@cortex/protocol";
import { openAIProblems } from "@cortex/testkit/openai";
import { describe, expect, it } from "vitest";
import { findModel, listModels } from "./models-list.js";

const CREATED = 1_750_000_000;

const profile = (id: string, extra: Partial<ModelProfileInput> = {}) =>
  ModelProfile.parse({
    id,
    harness: "llamacpp",
    source: `hf:org/${id}.gguf`,
    vram_mb: 1000,
    ...extra,
  });

const catalogue = createCatalogue([
  profile("qwen3-8b", { aliases: ["qwen", "default"] }),
  profile("llama-70b", { aliases: ["llama", "Org/Llama-70B"] }),
  profile("phi-4"),
]);

const node = (name: string, healthy: boolean, models: Record<string, ModelStatus>): FleetNode => ({
  name,
  url: `http://${name}:13131`,
  healthy,
  consecutive_failures: healthy ? 0 : 3,
  last_poll_at: null,
  last_ok_at: null,
  error: healthy ? null : "ECONNREFUSED",
  node: null,
  devices: [],
  harnesses: [],
  models: Object.entries(models).map(([id, status]) => ({
    id,
    harness: "llamacpp",
    status,
    devices: [0],
    vram_mb: 1000,
    in_flight: 0,
    queued: 0,
    max_concurrency: 4,
    last_accessed: null,
    loaded_at: null,
    error: status === "failed" ? "boom" : null,
  })),
});

const snapshot = (...nodes: FleetNode[]): FleetSnapshot => ({
  taken_at: "2025-06-15T12:00:00.000Z",
  nodes,
});

/** Status and locations of one entry, the part the table cares about. */
const entry = (list: CortexModelList, id: string) => {
  const found = list.data.find((model) => model.id === id);
  return found && { status: found.status, locations: found.locations };
};

describe("listModels", () => {
  it.each<{
    name: string;
    nodes: FleetNode[];
    id: string;
    expected: ReturnType<typeof entry>;
  }>([
    {
      name: "a catalogue model resident nowhere is available",
      nodes: [],
      id: "phi-4",
      expected: { status: "available", locations: [] },
    },
    {
      name: "loaded beats every other status",
      nodes: [
        node("a", true, { "qwen3-8b": "failed" }),
        node("b", true, { "qwen3-8b": "loaded" }),
        node("c", true, { "qwen3-8b": "loading" }),
      ],
      id: "qwen3-8b",
      expected: {
        status: "loaded",
        locations: [
          { node: "a", status: "failed" },
          { node: "b", status: "loaded" },
          { node: "c", status: "loading" },
        ],
      },
    },
    {
      name: "loading beats recovering",
      nodes: [
        node("a", true, { "qwen3-8b": "recovering" }),
        node("b", true, { "qwen3-8b": "loading" }),
      ],
      id: "qwen3-8b",
      expected: {
        status: "loading",
        locations: [
          { node: "a", status: "recovering" },
          { node: "b", status: "loading" },
        ],
      },
    },
    {
      name: "recovering beats unloaded",
      nodes: [
        node("a", true, { "qwen3-8b": "unloaded" }),
        node("b", true, { "qwen3-8b": "recovering" }),
      ],
      id: "qwen3-8b",
      expected: {
        status: "recovering",
        locations: [
          { node: "a", status: "unloaded" },
          { node: "b", status: "recovering" },
        ],
      },
    },
    {
      name: "unloaded beats failed",
      nodes: [
        node("a", true, { "qwen3-8b": "failed" }),
        node("b", true, { "qwen3-8b": "unloaded" }),
      ],
      id: "qwen3-8b",
      expected: {
        status: "unloaded",
        locations: [
          { node: "a", status: "failed" },
          { node: "b", status: "unloaded" },
        ],
      },
    },
    {
      name: "failed everywhere healthy is failed, not available",
      nodes: [node("a", true, { "qwen3-8b": "failed" })],
      id: "qwen3-8b",
      expected: { status: "failed", locations: [{ node: "a", status: "failed" }] },
    },
    {
      name: "unhealthy nodes count for neither status nor locations",
      nodes: [
        node("a", false, { "qwen3-8b": "loaded" }),
        node("b", true, { "qwen3-8b": "unloaded" }),
      ],
      id: "qwen3-8b",
      expected: { status: "unloaded", locations: [{ node: "b", status: "unloaded" }] },
    },
    {
      name: "a catalogue model loaded only on an unhealthy node is available",
      nodes: [node("a", false, { "qwen3-8b": "loaded" })],
      id: "qwen3-8b",
      expected: { status: "available", locations: [] },
    },
    {
      name: "a model loaded by hand, not in the catalogue, is listed",
      nodes: [node("a", true, { "hand-loaded": "loaded" })],
      id: "hand-loaded",
      expected: { status: "loaded", locations: [{ node: "a", status: "loaded" }] },
    },
    {
      name: "a non-catalogue model known only to an unhealthy node is not listed",
      nodes: [node("a", false, { "hand-loaded": "loaded" })],
      id: "hand-loaded",
      expected: undefined,
    },
    {
      name: "locations are sorted by node name whatever the snapshot order",
      nodes: [
        node("zeta", true, { "phi-4": "loaded" }),
        node("alpha", true, { "phi-4": "loaded" }),
      ],
      id: "phi-4",
      expected: {
        status: "loaded",
        locations: [
          { node: "alpha", status: "loaded" },
          { node: "zeta", status: "loaded" },
        ],
      },
    },
  ])("$name", ({ nodes, id, expected }) => {
    expect(entry(listModels(snapshot(...nodes), catalogue, CREATED), id)).toEqual(expected);
  });

  it.each<{ name: string; nodes: FleetNode[]; catalogue: Catalogue; ids: string[] }>([
    { name: "empty catalogue, empty fleet", nodes: [], catalogue: EMPTY_CATALOGUE, ids: [] },
    {
      name: "catalogue only",
      nodes: [],
      catalogue,
      ids: ["llama-70b", "phi-4", "qwen3-8b"],
    },
    {
      name: "catalogue plus hand-loaded models, each once, sorted by code units",
      nodes: [
        node("a", true, { "Zeta-model": "loaded", "qwen3-8b": "loaded" }),
        node("b", true, { "Zeta-model": "unloaded", "a-model": "failed" }),
      ],
      catalogue,
      ids: ["Zeta-model", "a-model", "llama-70b", "phi-4", "qwen3-8b"],
    },
    {
      name: "fleet only",
      nodes: [node("a", true, { "m-2": "loaded", "m-1": "loading" })],
      catalogue: EMPTY_CATALOGUE,
      ids: ["m-1", "m-2"],
    },
  ])("lists $name", ({ nodes, catalogue: models, ids }) => {
    const list = listModels(snapshot(...nodes), models, CREATED);
    expect(list.data.map((model) => model.id)).toEqual(ids);
  });

  it("fills the OpenAI fields and the catalogue's aliases", () => {
    const list = listModels(
      snapshot(node("a", true, { "hand-loaded": "loaded" })),
      catalogue,
      CREATED,
      new Map([["qwen3-8b", 3]]),
    );
    expect(list.object).toBe("list");
    expect(list.data.find((model) => model.id === "qwen3-8b")).toEqual({
      id: "qwen3-8b",
      object: "model",
      created: CREATED,
      owned_by: "cortex",
      status: "available",
      locations: [],
      aliases: ["qwen", "default"],
      waiting: 3,
    });
    expect(list.data.find((model) => model.id === "hand-loaded")?.waiting).toBe(0);
    expect(list.data.find((model) => model.id === "llama-70b")?.aliases).toEqual([
      "llama",
      "Org/Llama-70B",
    ]);
    expect(list.data.find((model) => model.id === "hand-loaded")?.aliases).toEqual([]);
  });

  it("leaves out an alias that a model id shadows, since it never resolves to this model", () => {
    const shadowed = createCatalogue([
      profile("a-model", { aliases: ["b-model", "a"] }),
      profile("b-model"),
    ]);
    const list = listModels(snapshot(), shadowed, CREATED);
    expect(list.data.find((model) => model.id === "a-model")?.aliases).toEqual(["a"]);
  });

  it("reports whole, non-negative seconds as created", () => {
    expect(listModels(snapshot(), catalogue, 1_750_000_000.9).data[0]?.created).toBe(1_750_000_000);
  });

  it.each([
    ["an empty list", snapshot(), EMPTY_CATALOGUE],
    ["a catalogue with nothing resident", snapshot(), catalogue],
    [
      "a mixed fleet",
      snapshot(
        node("a", true, { "qwen3-8b": "loaded", "hand-loaded": "recovering" }),
        node("b", false, { "phi-4": "loaded" }),
        node("c", true, { "llama-70b": "failed", "qwen3-8b": "unloaded" }),
      ),
      catalogue,
    ],
  ])(
    "validates %s against the official OpenAI schema and CortexModelList",
    (_name, fleet, models) => {
      const list = listModels(fleet, models, CREATED);
      expect(openAIProblems("ListModelsResponse", list)).toEqual([]);
      expect(CortexModelList.safeParse(list).error).toBeUndefined();
    },
  );
});

describe("findModel", () => {
  const fleet = snapshot(
    node("a", true, { "qwen3-8b": "loaded", "hand-loaded": "loaded" }),
    node("b", false, { "only-on-b": "loaded" }),
  );
  const waiting = new Map([["qwen3-8b", 3]]);

  it.each([
    ["its id", "qwen3-8b", "qwen3-8b"],
    ["an alias", "qwen", "qwen3-8b"],
    ["an alias with a slash", "Org/Llama-70B", "llama-70b"],
    ["a model outside the catalogue", "hand-loaded", "hand-loaded"],
  ])("finds a model by %s", (_name, requested, id) => {
    const found = findModel(fleet, catalogue, CREATED, waiting, requested);
    expect(found?.id).toBe(id);
    // The same entry as the list's.
    expect(found).toEqual(
      listModels(fleet, catalogue, CREATED, waiting).data.find((m) => m.id === id),
    );
  });

  it("carries status, locations, aliases and waiting", () => {
    expect(findModel(fleet, catalogue, CREATED, waiting, "default")).toMatchObject({
      id: "qwen3-8b",
      object: "model",
      status: "loaded",
      locations: [{ node: "a", status: "loaded" }],
      aliases: ["qwen", "default"],
      waiting: 3,
    });
  });

  it.each([
    ["an unknown name", "nope"],
    ["a model only an unhealthy node has", "only-on-b"],
    ["an alias in another case", "QWEN"],
  ])("finds nothing for %s", (_name, requested) => {
    expect(findModel(fleet, catalogue, CREATED, waiting, requested)).toBeUndefined();
  });
});
