import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildTinyModel, type TinyModelShape } from "@cortex/harness-llamacpp";
import { EstimateAnswer, type EstimateRequest } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  harnessFor,
  MB,
  shapeOf,
  testHarnesses,
  tinyBytes,
  tinyModel,
} from "./estimate.fixtures.js";
import { type EstimatorOptions, modelEstimator } from "./estimator.js";
import { RUNTIME_OVERHEAD_MB } from "./gguf-estimate.js";

// The estimator over local files the project generates: a request's fields in, the answer out,
// through the same source rules and harness argv as a load. Remote sources: estimate.int.test.ts.

let dir: string;

beforeEach(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "neuron-estimate-")));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const estimator = (options: Partial<EstimatorOptions> = {}) =>
  modelEstimator({
    modelsDir: dir,
    // Never contacted by these tests: every source here is local.
    hfEndpoint: "http://127.0.0.1:9",
    harnesses: testHarnesses(),
    ...options,
  });

const request = (fields: Partial<EstimateRequest> = {}): EstimateRequest => ({
  model_id: "tiny",
  harness: "llamacpp",
  source: "tiny.gguf",
  ...fields,
});

const writeModel = async (name: string, shape: Partial<TinyModelShape> = {}) => {
  await writeFile(join(dir, name), buildTinyModel({ shape }));
};

describe("modelEstimator on local files", () => {
  it.each([
    // [shape, harness, context_length, max_concurrency]
    [{}, "llamacpp", 4096, 4],
    [{}, "llama-server", 4096, 4],
    [{ embeddingLength: 128, blockCount: 4, headCount: 8 }, "llamacpp", 2048, 1],
    [{ embeddingLength: 128, blockCount: 4, headCount: 8 }, "llama-server", 1000, 3],
    [{ blockCount: 6, headCountKv: 4 }, "llama-server", 32_768, 8],
  ] as const)("%j on %s: %i tokens × %i slots", async (overrides, harness, context, slots) => {
    await writeModel("tiny.gguf", overrides);
    const answer = await estimator().estimate(
      request({ harness, context_length: context, max_concurrency: slots }),
    );
    expect(EstimateAnswer.parse(answer)).toEqual(answer);

    // Worked out from the shape: both harnesses hold context × slots cells (padded to 256).
    const shape = shapeOf(overrides);
    const { vocab } = await tinyModel(overrides);
    const sizes = tinyBytes(shape, vocab);
    const cells = Math.ceil((context * slots) / 256) * 256;
    const weights = shape.blockCount * sizes.layer + sizes.output;
    const kv = shape.blockCount * cells * sizes.kvValues * 2;
    const compute = 4 * Math.min(512, cells) * (vocab + shape.headCount * cells);
    expect(answer.vram_mb).toBe(Math.ceil((weights + kv + compute) / MB + RUNTIME_OVERHEAD_MB));
    expect(answer.basis).toMatch(/^gguf header \(local file, \d+\.\d MiB\)$/);
  });

  it("answers a load's default context (4096) and slots (4) when the request names none", async () => {
    await writeModel("tiny.gguf");
    const defaults = await estimator().estimate(request());
    const explicit = await estimator().estimate(
      request({ context_length: 4096, max_concurrency: 4 }),
    );
    expect(defaults).toEqual(explicit);
  });

  it("grows with slots, and shrinks with a q8_0 cache and partial offload", async () => {
    await writeModel("tiny.gguf", { blockCount: 8 });
    const of = (fields: Partial<EstimateRequest>) =>
      estimator().estimate(request({ harness: "llama-server", ...fields }));
    const one = await of({ max_concurrency: 1 });
    const four = await of({ max_concurrency: 4 });
    expect(four.breakdown.kv_cache_mb).toBeCloseTo(one.breakdown.kv_cache_mb * 4, 1);
    const q8 = await of({ args: { cache_type_k: "q8_0", cache_type_v: "q8_0" } });
    expect(q8.breakdown.kv_cache_mb).toBeCloseTo((four.breakdown.kv_cache_mb * 34) / 64, 1);
    const half = await of({ args: { n_gpu_layers: 4 } });
    expect(half.breakdown.kv_cache_mb).toBeCloseTo(four.breakdown.kv_cache_mb / 2, 1);
    // Half the layers, and not the output, which stays with the CPU's layers.
    expect(half.breakdown.weights_mb).toBeLessThan(four.breakdown.weights_mb);
  });

  it("answers nothing on GPUs for a load that names no devices", async () => {
    await writeModel("tiny.gguf");
    await expect(estimator().estimate(request({ devices: [] }))).resolves.toMatchObject({
      vram_mb: 0,
    });
  });

  it("counts the runtime on every device of a tensor-parallel load", async () => {
    await writeModel("tiny.gguf");
    const one = await estimator().estimate(request());
    const two = await estimator().estimate(request({ tensor_parallel: 2 }));
    expect(two.breakdown.overhead_mb - one.breakdown.overhead_mb).toBeCloseTo(
      RUNTIME_OVERHEAD_MB,
      1,
    );
  });

  it("reads a file again once it changed, and not before", async () => {
    await writeModel("tiny.gguf");
    const estimates = estimator();
    const first = await estimates.estimate(request());
    await writeModel("tiny.gguf", { blockCount: 5 });
    const second = await estimates.estimate(request());
    expect(second.breakdown.weights_mb).toBeGreaterThan(first.breakdown.weights_mb);
  });

  it.each([
    ["a file that is not GGUF", "notes.gguf", "not_estimable", 422, /not a readable GGUF file/],
    ["a folder", "folder", "not_estimable", 422, /is a folder, not a GGUF file/],
    ["a file this node lacks", "absent.gguf", "not_found", 404, /does not exist on this node/],
    ["a path out of models_dir", "../x.gguf", "invalid_request_error", 400, /\.\. segment/],
    [
      "a symlink out of models_dir",
      "escape.gguf",
      "invalid_request_error",
      400,
      /outside models_dir/,
    ],
  ])("refuses %s", async (_, source, code, _status, message) => {
    await writeFile(join(dir, "notes.gguf"), "just some notes, not a model\n".repeat(100));
    await mkdir(join(dir, "folder"));
    await symlink("/etc/hostname", join(dir, "escape.gguf"));
    await expect(estimator().estimate(request({ source }))).rejects.toMatchObject({
      code,
      param: "source",
      message: expect.stringMatching(message),
    });
  });

  it.each([
    ["a harness the node lacks", { harness: "nope" }, "harness_not_found", /not configured/],
    ["vLLM", { harness: "vllm" }, "not_estimable", /declare vram_mb/],
    ["an unknown option", { args: { nope: 1 } }, "invalid_request_error", /has no option "nope"/],
    [
      "a cache type llama.cpp lacks",
      { harness: "llama-server", args: { cache_type_k: "q2" } },
      "invalid_request_error",
      /--cache-type-k must be one of/,
    ],
    [
      "a whole repository",
      { harness: "tpl", source: "hf:owner/repo" },
      "not_estimable",
      /whole repository/,
    ],
    [
      "more GPUs than a node has",
      { tensor_parallel: 1_000_000_000 },
      "invalid_request_error",
      /at most 64 GPUs/,
    ],
    [
      "a context too large to count",
      { harness: "llama-server", context_length: 2 ** 52, max_concurrency: 1024 },
      "not_estimable",
      /too large to count/,
    ],
    ["a source scheme it lacks", { source: "ftp://host/x.gguf" }, "invalid_request_error", /ftp/],
  ])("refuses %s", async (_, fields, code, message) => {
    await writeModel("tiny.gguf");
    const harnesses = testHarnesses();
    harnesses.set("tpl", harnessFor("tpl", { command: ["engine", "{model_path}"] }));
    await expect(estimator({ harnesses }).estimate(request(fields))).rejects.toMatchObject({
      code,
      message: expect.stringMatching(message),
    });
  });
});
