import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModelProfile, type ModelProfileInput } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type CatalogueProblem,
  type CatalogueResult,
  checkCatalogue,
  entryProblem,
  formatProblems,
  loadCatalogue,
} from "./load.js";
import { resolveModelName } from "./rules.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "catalogue-load-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const write = async (name: string, text: string): Promise<string> => {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
};

/** A minimal valid entry as YAML lines, indented for a `models:` list. */
const entry = (id: string, extra = ""): string =>
  `  - id: ${id}\n    harness: llamacpp\n    source: hf:org/${id}/model.gguf\n    vram_mb: 4000\n${extra}`;

const problemsOf = (result: CatalogueResult): CatalogueProblem[] => {
  if (result.ok) throw new Error("expected the catalogue to be invalid");
  return result.problems;
};

describe("loadCatalogue: valid catalogues", () => {
  it("loads a single file and applies schema defaults", async () => {
    const file = await write(
      "models.yaml",
      `models:\n${entry("qwen3-8b", "    aliases: [qwen, default]\n")}`,
    );
    const result = await loadCatalogue(file);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.files).toEqual([file]);
    expect(result.catalogue.models.map((model) => model.id)).toEqual(["qwen3-8b"]);
    expect(resolveModelName(result.catalogue, "default")?.id).toBe("qwen3-8b");
    expect(result.catalogue.byId.get("qwen3-8b")).toMatchObject({
      vram_mb: 4000,
      min_devices: 1,
      runs_on: "gpu",
      pinned_on: [],
    });
    // As written: cortex derives the per-device share from the figure it places by.
    expect(result.catalogue.byId.get("qwen3-8b")?.min_device_vram_mb).toBeUndefined();
  });

  it("loads entries without vram_mb and remembers where every entry is written", async () => {
    const a = await write("a.yaml", `models:\n${entry("declared")}`);
    const b = await write(
      "b.yaml",
      [
        "models:",
        "  - id: cpu-demo",
        "    harness: llamacpp",
        "    source: demo.gguf",
        "    runs_on: cpu",
        "  - id: estimated",
        "    harness: llamacpp",
        "    source: hf:org/estimated/model.gguf",
        "",
      ].join("\n"),
    );
    const result = await loadCatalogue(dir);
    if (!result.ok) return expect.fail(formatProblems(result.problems));
    const entries = result.catalogue;
    expect(entries.byId.get("estimated")?.vram_mb).toBeUndefined();
    expect(entries.byId.get("cpu-demo")?.vram_mb).toBeUndefined();
    expect(entries.origins.get("declared")).toEqual({ file: a, index: 0 });
    expect(entries.origins.get("estimated")).toEqual({ file: b, index: 1 });
    expect(entryProblem(entries, "estimated", "vram_mb", "cannot be estimated")).toEqual({
      file: b,
      path: "models[1].vram_mb",
      message: "cannot be estimated",
    });
    expect(entryProblem(entries, "gone", "vram_mb", "why", "catalogue/")).toEqual({
      file: "catalogue/",
      path: "models[id=gone].vram_mb",
      message: "why",
    });
  });

  it("loads every .yaml and .yml file of a directory in name order", async () => {
    const b = await write("b.yml", `models:\n${entry("model-b")}`);
    const a = await write("a.yaml", `models:\n${entry("model-a1")}${entry("model-a2")}`);
    const c = await write("c.yaml", "# nothing here yet\n");
    const result = await loadCatalogue(dir);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.files).toEqual([a, b, c]);
    expect(result.catalogue.models.map((model) => model.id)).toEqual([
      "model-a1",
      "model-a2",
      "model-b",
    ]);
  });

  it("ignores non-YAML files, dotfiles and subdirectories", async () => {
    await write("a.yaml", `models:\n${entry("model-a")}`);
    await write("README.md", "models: [this is not yaml: at all");
    await write("a.yaml.bak", "{{{");
    await write(".#a.yaml", "{{{");
    await mkdir(join(dir, "nested.yaml"));
    await writeFile(join(dir, "nested.yaml", "b.yaml"), `models:\n${entry("model-b")}`);
    const result = await loadCatalogue(dir);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.files).toEqual([join(dir, "a.yaml")]);
    expect(result.catalogue.models.map((model) => model.id)).toEqual(["model-a"]);
  });

  it.each([
    { case: "an empty directory", setup: async () => dir },
    { case: "an empty file", setup: () => write("empty.yaml", "") },
    { case: "a comments-only file", setup: () => write("empty.yaml", "# later\n") },
    { case: "an empty models list", setup: () => write("empty.yaml", "models: []\n") },
  ])("treats $case as an empty catalogue", async ({ setup }) => {
    const result = await loadCatalogue(await setup());
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.catalogue.models).toEqual([]);
  });

  it("lets an entry reuse another through a YAML merge key", async () => {
    const file = await write(
      "merge.yaml",
      [
        "models:",
        "  - &base",
        "    id: model-a",
        "    harness: vllm",
        "    source: hf:org/a",
        "    vram_mb: 4000",
        "  - <<: *base",
        "    id: model-b",
        "    source: hf:org/b",
        "",
      ].join("\n"),
    );
    const result = await loadCatalogue(file);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.catalogue.byId.get("model-b")).toMatchObject({
      harness: "vllm",
      source: "hf:org/b",
      vram_mb: 4000,
    });
  });
});

describe("loadCatalogue: problems", () => {
  it("names both files for an id defined twice across files", async () => {
    const a = await write("a.yaml", `models:\n${entry("qwen3-8b")}`);
    const b = await write("b.yaml", `models:\n${entry("other")}${entry("qwen3-8b")}`);
    const problems = problemsOf(await loadCatalogue(dir));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: b, path: "models[1].id" });
    expect(problems[0]?.message).toContain('duplicate id "qwen3-8b"');
    expect(problems[0]?.message).toContain(`${a} models[0].id`);
  });

  it("reports an id defined twice within one file", async () => {
    const file = await write("a.yaml", `models:\n${entry("twice")}${entry("twice")}`);
    expect(problemsOf(await loadCatalogue(file))).toEqual([
      {
        file,
        path: "models[1].id",
        message: `duplicate id "twice": already defined at ${file} models[0].id`,
      },
    ]);
  });

  it("reports an alias used by models in two files", async () => {
    const a = await write("a.yaml", `models:\n${entry("model-a", "    aliases: [fast]\n")}`);
    const b = await write("b.yaml", `models:\n${entry("model-b", "    aliases: [ok, fast]\n")}`);
    const problems = problemsOf(await loadCatalogue(dir));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: b, path: "models[0].aliases[1]" });
    expect(problems[0]?.message).toContain('duplicate alias "fast"');
    expect(problems[0]?.message).toContain(`"model-a" at ${a} models[0].aliases[0]`);
  });

  it("reports an alias equal to another model's id, even one defined later", async () => {
    const a = await write("a.yaml", `models:\n${entry("model-a", "    aliases: [model-b]\n")}`);
    const b = await write("b.yaml", `models:\n${entry("model-b")}`);
    const problems = problemsOf(await loadCatalogue(dir));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: a, path: "models[0].aliases[0]" });
    expect(problems[0]?.message).toContain('alias "model-b" is the id of another model');
    expect(problems[0]?.message).toContain(`${b} models[0].id`);
  });

  it("reports an unknown key by its full path", async () => {
    const file = await write("a.yaml", `models:\n${entry("model-a", "    vram_gb: 4\n")}`);
    expect(problemsOf(await loadCatalogue(file))).toEqual([
      { file, path: "models[0].vram_gb", message: 'unknown key "vram_gb"' },
    ]);
  });

  it.each([
    { case: "a negative VRAM", extra: "", vram: "-1", path: "models[0].vram_mb", text: />=\s*0/ },
    {
      case: "min_devices: 0",
      extra: "    min_devices: 0\n",
      vram: "4000",
      path: "models[0].min_devices",
      text: /at least 1.*runs_on: cpu/,
    },
  ])("reports $case", async ({ extra, vram, path, text }) => {
    const yaml = `models:\n${entry("model-a", extra)}`.replace("vram_mb: 4000", `vram_mb: ${vram}`);
    const file = await write("a.yaml", yaml);
    const problems = problemsOf(await loadCatalogue(file));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file, path });
    expect(problems[0]?.message).toMatch(text);
  });

  it("reports a YAML syntax error with its line and column", async () => {
    const file = await write("a.yaml", "models:\n  - id: a\n    harness: llamacpp\n    id: b\n");
    expect(problemsOf(await loadCatalogue(file))).toEqual([
      { file, path: "", message: "YAML syntax error at 4:5: Map keys must be unique" },
    ]);
  });

  it("explains a second YAML document instead of naming a parser function", async () => {
    const file = await write("a.yaml", "models: []\n---\nmodels: []\n");
    const [problem] = problemsOf(await loadCatalogue(file));
    expect(problem?.message).toMatch(/^YAML syntax error at 2:1: .*one YAML document/);
  });

  it.each([
    { case: "a list", text: "- id: a\n" },
    { case: "a scalar", text: "just words\n" },
  ])("rejects a file whose top level is $case", async ({ text }) => {
    const file = await write("a.yaml", text);
    expect(problemsOf(await loadCatalogue(file))).toEqual([
      { file, path: "", message: "top level must be a mapping with a `models:` list" },
    ]);
  });

  it("reports every problem of one file, not only the first", async () => {
    const file = await write(
      "a.yaml",
      [
        "models:",
        "  - id: model-a",
        "    harness: llamacpp",
        "    source: hf:org/a/model.gguf",
        "    vram_mb: -5",
        "    min_devices: 0",
        "    colour: blue",
        "  - id: model-b",
        "    source: hf:org/b/model.gguf",
        "    vram_mb: 4000",
        "",
      ].join("\n"),
    );
    const problems = problemsOf(await loadCatalogue(file));
    expect(problems.map((problem) => problem.path).sort()).toEqual([
      "models[0].colour",
      "models[0].min_devices",
      "models[0].vram_mb",
      "models[1].harness",
    ]);
    expect(problems.every((problem) => problem.file === file)).toBe(true);
  });

  it("reports problems of several files together", async () => {
    const a = await write("a.yaml", "models: [\n");
    const b = await write("b.yaml", `models:\n${entry("model-b", "    quant: ''\n")}`);
    const c = await write("c.yaml", `models:\n${entry("model-c", "    aliases: [x]\n")}`);
    const d = await write("d.yaml", `models:\n${entry("model-d", "    aliases: [x]\n")}`);
    const problems = problemsOf(await loadCatalogue(dir));
    expect(problems.map((problem) => [problem.file, problem.path])).toEqual([
      [a, ""],
      [b, "models[0].quant"],
      [d, "models[0].aliases[0]"],
    ]);
    expect(problems[0]?.message).toMatch(/^YAML syntax error at 2:1: /);
    expect(problems[2]?.message).toContain(c);
  });

  it("reports a missing path", async () => {
    const missing = join(dir, "nope");
    expect(problemsOf(await loadCatalogue(missing))).toEqual([
      { file: missing, path: "", message: "no such file or directory" },
    ]);
  });
});

describe("checkCatalogue", () => {
  const model = (fields: Partial<ModelProfileInput> & { id: string }): ModelProfile =>
    ModelProfile.parse({ harness: "llamacpp", source: "/models/m.gguf", vram_mb: 1, ...fields });

  it("accepts distinct ids and aliases", () => {
    expect(
      checkCatalogue([
        { file: "a.yaml", models: [model({ id: "a", aliases: ["x", "y"], pinned_on: ["n1"] })] },
        { file: "b.yaml", models: [model({ id: "b", aliases: ["z"], pinned_on: ["n1", "n2"] })] },
      ]),
    ).toEqual([]);
  });

  it.each<{ case: string; models: ModelProfile[]; expected: Omit<CatalogueProblem, "file">[] }>([
    {
      case: "an alias equal to its own id",
      models: [model({ id: "a", aliases: ["a"] })],
      expected: [
        { path: "models[0].aliases[0]", message: `alias "a" repeats this model's own id` },
      ],
    },
    {
      case: "an alias listed twice on one model",
      models: [model({ id: "a", aliases: ["x", "y", "x"] })],
      expected: [
        { path: "models[0].aliases[2]", message: `alias "x" is listed twice on this model` },
      ],
    },
    {
      case: "an alias shared by two models of one file",
      models: [model({ id: "a", aliases: ["x"] }), model({ id: "b", aliases: ["x"] })],
      expected: [
        {
          path: "models[1].aliases[0]",
          message: `duplicate alias "x": already an alias of "a" at f.yaml models[0].aliases[0]`,
        },
      ],
    },
    {
      case: "a node listed twice in pinned_on",
      models: [model({ id: "a", pinned_on: ["n1", "n2", "n1"] })],
      expected: [
        { path: "models[0].pinned_on[2]", message: `node "n1" is listed twice in pinned_on` },
      ],
    },
    {
      case: "an id used three times",
      models: [model({ id: "a" }), model({ id: "a" }), model({ id: "a" })],
      expected: [
        {
          path: "models[1].id",
          message: `duplicate id "a": already defined at f.yaml models[0].id`,
        },
        {
          path: "models[2].id",
          message: `duplicate id "a": already defined at f.yaml models[0].id`,
        },
      ],
    },
  ])("reports $case", ({ models, expected }) => {
    expect(checkCatalogue([{ file: "f.yaml", models }])).toEqual(
      expected.map((problem) => ({ file: "f.yaml", ...problem })),
    );
  });
});

describe("formatProblems", () => {
  it("writes one line per problem and leaves out an empty path", () => {
    expect(
      formatProblems([
        { file: "catalogue/a.yaml", path: "models[2].vram_mb", message: "must be >= 0" },
        { file: "catalogue/b.yaml", path: "", message: "YAML syntax error at 3:1: bad" },
      ]),
    ).toBe(
      "catalogue/a.yaml: models[2].vram_mb: must be >= 0\ncatalogue/b.yaml: YAML syntax error at 3:1: bad",
    );
  });
});
