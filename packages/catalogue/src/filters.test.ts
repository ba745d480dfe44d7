import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CatalogueResult, loadCatalogue } from "./load.js";

// A model's `filters` as an operator writes them in YAML: loaded into the profile, and every
// mistake reported with its file and path before cortex uses the catalogue.

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "catalogue-filters-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const load = async (filters: string): Promise<CatalogueResult> => {
  const file = join(dir, "models.yaml");
  await writeFile(
    file,
    `models:\n  - id: strict\n    harness: llamacpp\n    source: strict.gguf\n    vram_mb: 1000\n${filters}`,
  );
  return loadCatalogue(file);
};

describe("filters in a catalogue file", () => {
  it("loads into the model's profile", async () => {
    const result = await load(
      "    filters:\n      strip_params: [top_k, min_p]\n      set_params:\n        temperature: 0.2\n        stop: ['</s>']\n        response_format: {type: json_object}\n",
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.catalogue.byId.get("strict")?.filters).toEqual({
      strip_params: ["top_k", "min_p"],
      set_params: { temperature: 0.2, stop: ["</s>"], response_format: { type: "json_object" } },
    });
  });

  it("reports each mistake with its file and path", async () => {
    const result = await load(
      "    filters:\n      strip_params: [model, top_p]\n      set_params:\n        top_k: 40\n        stream: true\n",
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const found = result.problems.map((problem) => `${problem.path}: ${problem.message}`);
    expect(found).toEqual([
      expect.stringMatching(/^models\[0\]\.filters\.strip_params\[0\]: may not name model/),
      expect.stringMatching(/^models\[0\]\.filters\.set_params\.stream: may not name stream/),
    ]);
    expect(result.problems.every((problem) => problem.file.endsWith("models.yaml"))).toBe(true);
  });

  it("refuses a __proto__ key, which YAML makes an own key", async () => {
    const result = await load("    filters:\n      set_params:\n        __proto__: {x: 1}\n");
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toEqual([
      expect.objectContaining({
        path: "models[0].filters.set_params.__proto__",
        message: '"__proto__" is not an accepted name',
      }),
    ]);
  });

  it("reports a name both stripped and set", async () => {
    const result = await load(
      "    filters:\n      strip_params: [top_k]\n      set_params: {top_k: 40}\n",
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toEqual([
      expect.objectContaining({
        path: "models[0].filters.strip_params[0]",
        message: expect.stringMatching(/both stripped and set/),
      }),
    ]);
  });
});
