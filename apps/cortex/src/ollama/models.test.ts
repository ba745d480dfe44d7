import { createCatalogue } from "@cortex/catalogue";
import { type FleetSnapshot, ModelProfile, type NeuronModel } from "@cortex/protocol";
import { neuronModel } from "@cortex/testkit";
import { describe, expect, it } from "vitest";
import { isKnownModel, ollamaPs, ollamaShow, ollamaTags, resolveOllamaName } from "./models.js";

const STARTED = "2025-01-01T00:00:00.000Z";
const MIB = 2 ** 20;

const catalogue = createCatalogue(
  [
    {
      id: "qwen",
      aliases: ["qwen3"],
      harness: "llamacpp",
      source: "hf:Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf",
      quant: "Q4_K_M",
      vram_mb: 6000,
      context_length: 8192,
      idle_ttl_s: 600,
    },
    {
      id: "embedder",
      harness: "llamacpp",
      source: "embed.GGUF",
      vram_mb: 1000,
      capabilities: ["embeddings"],
    },
    {
      id: "big",
      harness: "vllm",
      source: "hf:org/big",
      vram_mb: 40_000,
      min_replicas: 1,
      idle_ttl_s: 60,
    },
  ].map((profile) => ModelProfile.parse(profile)),
);

const node = (name: string, models: NeuronModel[], healthy = true) => ({
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

const snapshot: FleetSnapshot = {
  taken_at: STARTED,
  nodes: [
    node("a", [
      neuronModel("qwen", {
        status: "loaded",
        devices: [0],
        vram_mb: 6100,
        loaded_at: "2025-02-01T10:00:00.000Z",
        last_accessed: "2025-02-01T10:05:00.000Z",
      }),
      neuronModel("by-hand", { status: "loaded", devices: [], vram_mb: 500, loaded_at: null }),
    ]),
    node("b", [
      neuronModel("qwen", {
        status: "loaded",
        devices: [1],
        vram_mb: 6200,
        loaded_at: "2025-02-01T09:00:00.000Z",
        last_accessed: "2025-02-01T10:06:00.000Z",
      }),
      neuronModel("big", { status: "loading", devices: [0], vram_mb: 40_000 }),
    ]),
    node("down", [neuronModel("ghost", { status: "loaded" })], false),
  ],
};

describe("ollamaTags", () => {
  it("lists every catalogue model and what healthy nodes serve, with what cortex knows", () => {
    const { models } = ollamaTags(snapshot, catalogue, STARTED);
    expect(models.map((model) => model.name)).toEqual(["big", "by-hand", "embedder", "qwen"]);
    expect(models.find((model) => model.name === "qwen")).toEqual({
      name: "qwen",
      model: "qwen",
      modified_at: "2025-02-01T10:00:00.000Z",
      size: 6000 * MIB,
      digest: "",
      details: {
        parent_model: "",
        format: "gguf",
        family: "",
        families: [],
        parameter_size: "",
        quantization_level: "Q4_K_M",
      },
    });
    expect(models.find((model) => model.name === "by-hand")).toMatchObject({
      modified_at: STARTED,
      size: 500 * MIB,
      details: { format: "", quantization_level: "" },
    });
    expect(models.find((model) => model.name === "embedder")?.details.format).toBe("gguf");
    expect(models.find((model) => model.name === "big")?.details.format).toBe("");
  });
});

describe("ollamaPs", () => {
  it("lists the loaded models with the memory of all their copies", () => {
    expect(ollamaPs(snapshot, catalogue).models).toEqual([
      {
        name: "by-hand",
        model: "by-hand",
        size: 500 * MIB,
        size_vram: 0,
        digest: "",
        details: expect.objectContaining({ format: "" }),
      },
      {
        name: "qwen",
        model: "qwen",
        size: 12_300 * MIB,
        size_vram: 12_300 * MIB,
        digest: "",
        details: expect.objectContaining({ format: "gguf" }),
        // The later last use plus the catalogue's idle_ttl_s.
        expires_at: "2025-02-01T10:16:00.000Z",
        context_length: 8192,
      },
    ]);
  });
});

describe("ollamaShow", () => {
  it("answers a model's facts and capabilities by id, alias or with :latest", () => {
    const shown = ollamaShow(snapshot, catalogue, "qwen3:latest", STARTED);
    expect(shown).toEqual({
      license: "",
      modelfile: "",
      parameters: "num_ctx 8192",
      template: "",
      system: "",
      details: expect.objectContaining({ quantization_level: "Q4_K_M" }),
      model_info: {},
      capabilities: ["completion"],
      modified_at: "2025-02-01T10:00:00.000Z",
    });
    expect(ollamaShow(snapshot, catalogue, "embedder", STARTED)).toMatchObject({
      parameters: "",
      capabilities: ["embedding"],
    });
    expect(ollamaShow(snapshot, catalogue, "by-hand", STARTED).capabilities).toEqual([
      "completion",
    ]);
  });

  it.each(["nope", "ghost", "qwen:7b"])("is 404 for %s, which cortex cannot serve", (name) => {
    expect(() => ollamaShow(snapshot, catalogue, name, STARTED)).toThrow(
      expect.objectContaining({ code: "model_not_found" }),
    );
  });
});

describe("model names", () => {
  it.each([
    ["qwen", "qwen"],
    ["qwen:latest", "qwen"],
    ["qwen3:latest", "qwen"],
    ["qwen3", "qwen3"],
    ["by-hand:latest", "by-hand"],
    ["nope:latest", "nope:latest"],
    ["ghost:latest", "ghost:latest"],
  ])("%s is sent on as %s", (name, sent) => {
    expect(resolveOllamaName(snapshot, catalogue, name)).toBe(sent);
  });

  it("knows what cortex can serve", () => {
    expect(isKnownModel(snapshot, catalogue, "big")).toBe(true);
    expect(isKnownModel(snapshot, catalogue, "ghost")).toBe(false);
  });
});
