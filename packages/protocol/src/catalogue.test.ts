import { describe, expect, it } from "vitest";
import {
  CatalogueEntry,
  CatalogueFile,
  CatalogueReport,
  ModelProfile,
  RequestFilters,
  vramFlag,
} from "./catalogue.js";
import { problemsOf } from "./issues.js";

// The catalogue's per-model request filters (`filters: {strip_params, set_params}`): what is
// accepted, and every bound a hostile or mistaken catalogue runs into, reported where it is.

const profile = {
  id: "strict",
  harness: "llamacpp",
  source: "strict.gguf",
  vram_mb: 1000,
};

/** The problems of a catalogue whose one model has `filters`, as `path: message`. */
const problems = (filters: unknown): string[] => {
  const result = CatalogueFile.safeParse({ models: [{ ...profile, filters }] });
  return result.success
    ? []
    : problemsOf(result.error).map((problem) => `${problem.path}: ${problem.message}`);
};

const nested = (depth: number): unknown => (depth === 0 ? 1 : [nested(depth - 1)]);

describe("filters", () => {
  it("is absent unless the catalogue sets it", () => {
    expect(ModelProfile.parse(profile).filters).toBeUndefined();
  });

  it("accepts names to strip and JSON values to set, filling the list left out", () => {
    const parsed = ModelProfile.parse({
      ...profile,
      filters: {
        set_params: {
          temperature: 0.2,
          stop: ["</s>"],
          response_format: { type: "json_object" },
          seed: null,
          logit_bias: {},
          "nested.key": nested(8),
        },
      },
    });
    expect(parsed.filters).toEqual({
      strip_params: [],
      set_params: {
        temperature: 0.2,
        stop: ["</s>"],
        response_format: { type: "json_object" },
        seed: null,
        logit_bias: {},
        "nested.key": nested(8),
      },
    });
    expect(RequestFilters.parse({ strip_params: ["top_k", "top_p"] })).toEqual({
      strip_params: ["top_k", "top_p"],
      set_params: {},
    });
  });

  it.each([
    [{ strip_params: ["model"] }, "models[0].filters.strip_params[0]", /may not name model/],
    [{ strip_params: ["stream"] }, "models[0].filters.strip_params[0]", /may not name stream/],
    [
      { set_params: { model: "other" } },
      "models[0].filters.set_params.model",
      /may not name model/,
    ],
    [{ set_params: { stream: false } }, "models[0].filters.set_params.stream", /framing/],
    [{ strip_params: [""] }, "models[0].filters.strip_params[0]", /./],
    [{ strip_params: ["x".repeat(129)] }, "models[0].filters.strip_params[0]", /128/],
    [
      { set_params: { ["x".repeat(129)]: 1 } },
      `models[0].filters.set_params.${"x".repeat(129)}`,
      /128/,
    ],
    [
      { strip_params: Array.from({ length: 65 }, (_, i) => `p${i}`) },
      "models[0].filters.strip_params",
      /at most 64/,
    ],
    [
      { set_params: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`p${i}`, i])) },
      "models[0].filters.set_params",
      /at most 64/,
    ],
    [{ set_params: { x: nested(9) } }, "models[0].filters.set_params.x", /at most 8 deep/],
    [{ set_params: { x: "y".repeat(16 * 1024) } }, "models[0].filters.set_params.x", /16384 bytes/],
    [{ set_params: { x: Number.NaN } }, "models[0].filters.set_params.x", /finite/],
    [{ set_params: { x: new Date(0) } }, "models[0].filters.set_params.x", /plain JSON/],
    [{ set_params: { x: undefined } }, "models[0].filters.set_params.x", /required/],
    [
      { set_params: { x: JSON.parse('{"__proto__":{"polluted":true}}') } },
      "models[0].filters.set_params.x",
      /__proto__/,
    ],
    [
      { set_params: JSON.parse('{"__proto__":1}') },
      "models[0].filters.set_params.__proto__",
      /__proto__/,
    ],
    [
      { strip_params: ["top_k"], set_params: { top_k: 40 } },
      "models[0].filters.strip_params[0]",
      /both stripped and set/,
    ],
    [{ drop: ["x"] }, "models[0].filters.drop", /unknown key/],
  ])("refuses %j", (filters, path, message) => {
    const found = problems(filters);
    expect(
      found.some((problem) => problem.startsWith(`${path}: `)),
      found.join("\n"),
    ).toBe(true);
    expect(found.find((problem) => problem.startsWith(`${path}: `))).toMatch(message);
  });

  it("accepts a value of exactly the largest size", () => {
    // 16 KiB as JSON: the quotes count.
    expect(problems({ set_params: { x: "y".repeat(16 * 1024 - 2) } })).toEqual([]);
  });
});

/** The profile without `vram_mb`: an entry cortex has to estimate. */
const { vram_mb: _declared, ...undeclared } = profile;

describe("vram_mb in catalogue files", () => {
  it("is optional in an entry: cortex estimates it, and keeps the per-device minimum as written", () => {
    const result = CatalogueFile.safeParse({ models: [undeclared] });
    expect(result.success).toBe(true);
    const [entry] = result.data?.models ?? [];
    expect(entry?.vram_mb).toBeUndefined();
    expect(entry?.min_device_vram_mb).toBeUndefined();
    expect(entry?.runs_on).toBe("gpu");
  });

  it("is optional for a CPU model, which needs no GPU memory", () => {
    const entry = CatalogueEntry.parse({ ...undeclared, runs_on: "cpu" });
    expect(entry.vram_mb).toBeUndefined();
    expect(entry.runs_on).toBe("cpu");
  });

  it("is kept as declared in an entry, without deriving min_device_vram_mb", () => {
    const entry = CatalogueEntry.parse({ ...profile, min_devices: 2 });
    expect(entry).toMatchObject({ vram_mb: 1000, min_devices: 2 });
    expect(entry.min_device_vram_mb).toBeUndefined();
  });

  it("is still refused when negative, and min_replicas still checked", () => {
    expect(CatalogueEntry.safeParse({ ...profile, vram_mb: -1 }).success).toBe(false);
    expect(
      CatalogueEntry.safeParse({ ...undeclared, min_replicas: 3, max_replicas: 2 }).success,
    ).toBe(false);
  });

  it("stays required in the profile routing places by", () => {
    expect(ModelProfile.safeParse(undeclared).success).toBe(false);
    expect(ModelProfile.parse({ ...profile, min_devices: 2 }).min_device_vram_mb).toBe(500);
  });
});

describe("vramFlag", () => {
  it.each([
    ["no declared figure", null, 20_000, null],
    ["nothing observed", 10_000, null, null],
    ["declared half of what runs", 10_000, 20_000, "declared_off"],
    ["declared far above what runs", 30_000, 20_000, "declared_off"],
    ["declared 20 % below, the bound", 16_000, 20_000, null],
    ["declared 20 % above, the bound", 24_000, 20_000, null],
    ["declared just past 20 % above", 24_001, 20_000, "declared_off"],
  ] as const)("%s", (_case, declared, observed, flag) => {
    expect(vramFlag(declared, observed)).toBe(flag);
  });
});

describe("CatalogueReport", () => {
  it("reads entries with unknown figures as null and defaults the problems", () => {
    const report = CatalogueReport.parse({
      models: [
        {
          ...undeclared,
          vram_mb: null,
          min_device_vram_mb: null,
          vram: { declared_mb: null, estimated_mb: null, observed_mb: null, effective_mb: null },
          estimate: null,
          vram_flag: null,
          a_newer_field: true,
        },
      ],
    });
    expect(report.problems).toEqual([]);
    expect(report.models[0]?.vram_mb).toBeNull();
    expect(report.models[0]).not.toHaveProperty("a_newer_field");
  });
});
