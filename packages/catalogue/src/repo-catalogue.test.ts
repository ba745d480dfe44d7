import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { formatProblems, loadCatalogue } from "./load.js";
import { isFeasibleOn, resolveModelName } from "./rules.js";

// The repository's catalogue is what cortex reads by default, and its examples are what
// operators copy, so both must always validate. The examples sit in a subdirectory, which the
// loader does not read, so they never become live models by accident.
const repoCatalogue = fileURLToPath(new URL("../../../catalogue", import.meta.url));
const examples = fileURLToPath(new URL("../../../catalogue/examples", import.meta.url));

describe("the repository's catalogue/ directory", () => {
  it("loads without problems", async () => {
    const result = await loadCatalogue(repoCatalogue);
    if (!result.ok) expect.fail(formatProblems(result.problems));
  });

  it("does not read the examples subdirectory", async () => {
    const result = await loadCatalogue(repoCatalogue);
    if (!result.ok) return expect.fail(formatProblems(result.problems));
    expect(result.files.some((file) => file.includes("examples"))).toBe(false);
  });

  it("has examples that load without problems", async () => {
    const result = await loadCatalogue(examples);
    if (!result.ok) expect.fail(formatProblems(result.problems));
    expect(result.files.length).toBeGreaterThan(0);
    expect(result.catalogue.models.length).toBeGreaterThan(0);
  });

  it("shows each kind of entry the examples promise", async () => {
    const result = await loadCatalogue(examples);
    if (!result.ok) return expect.fail(formatProblems(result.problems));
    const { catalogue } = result;
    const models = catalogue.models;
    expect(models.some((model) => model.harness === "llamacpp" && model.aliases.length > 0)).toBe(
      true,
    );
    expect(models.some((model) => model.harness === "llama-server")).toBe(true);
    expect(models.some((model) => model.capabilities.includes("embeddings"))).toBe(true);

    const tensorParallel = models.find((model) => model.min_devices > 1);
    expect(tensorParallel).toMatchObject({ harness: "vllm" });
    expect(tensorParallel?.pinned_on.length).toBeGreaterThan(0);

    const cpu = models.find((model) => model.runs_on === "cpu");
    expect(cpu).toBeDefined();
    if (cpu)
      expect(
        isFeasibleOn(
          { ...cpu, vram_mb: cpu.vram_mb ?? 0, min_device_vram_mb: 0 },
          { name: "laptop", devices: [] },
        ),
      ).toBe(true);

    // A GGUF entry without vram_mb: cortex has a neuron estimate it from the file's header.
    expect(
      models.some(
        (model) =>
          model.vram_mb === undefined && model.runs_on === "gpu" && model.source.endsWith(".gguf"),
      ),
    ).toBe(true);

    // Aliases lead to their models.
    for (const model of models) {
      for (const alias of model.aliases) expect(resolveModelName(catalogue, alias)).toBe(model);
    }
  });
});
