import type { HarnessConfig } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { defineHarness, type Harness } from "./definitions.js";
import { type ModelSpec, specOf } from "./model-spec.js";
import { substitute, unknownPlaceholders } from "./placeholders.js";

const worker = { node: "/usr/bin/node", entry: "/opt/harness/main.js" };

const define = (name: string, config: HarnessConfig = {}): Harness => {
  const result = defineHarness(name, config, worker);
  if ("problems" in result) throw new Error(result.problems.join("\n"));
  return result;
};

const spec = (fields: Partial<ModelSpec> = {}): ModelSpec => ({
  ...specOf({ model_id: "qwen", harness: "llamacpp", source: "qwen.gguf", devices: [1, 3] }, 900),
  ...fields,
});

const context = (s: ModelSpec) => ({
  spec: s,
  modelPath: "/models/qwen.gguf",
  port: 40123,
  host: "127.0.0.1",
});

describe("placeholders", () => {
  it("substitutes inside arguments, keeping each one a single argv element", () => {
    const values = {
      model_path: "/m/a b; rm -rf /.gguf",
      model_id: "m",
      port: "1",
      host: "127.0.0.1",
      ctx_size: "4096",
      parallel: "2",
      devices: "0,1",
      tensor_parallel: "2",
    };
    expect(
      substitute(
        ["srv", "--model", "{model_path}", "--port={port}", "{{literal}}", "gpus:{devices}"],
        values,
      ),
    ).toEqual(["srv", "--model", "/m/a b; rm -rf /.gguf", "--port=1", "{literal}", "gpus:0,1"]);
  });

  it("names unknown placeholders", () => {
    expect(unknownPlaceholders(["x", "{model}", "{port}", "--{ctx}", "{{ok}}"])).toEqual([
      "model",
      "ctx",
    ]);
  });
});

describe("built-in llama.cpp harness", () => {
  it("starts the worker with the spec's settings", () => {
    const launch = define("llamacpp").launch(
      context(spec({ max_concurrency: 3, context_length: 2048, args: { n_gpu_layers: 20 } })),
    );
    expect(launch.command).toBe("/usr/bin/node");
    expect(launch.args).toEqual([
      "/opt/harness/main.js",
      "--model",
      "/models/qwen.gguf",
      "--port",
      "40123",
      "--host",
      "127.0.0.1",
      "--alias",
      "qwen",
      "--parallel",
      "3",
      "--ctx-size",
      "2048",
      "--gpu",
      "auto",
      "--gpu-layers",
      "20",
    ]);
    expect(launch.readyPath).toBe("/health");
  });

  it("runs on the CPU when the model has no devices", () => {
    const launch = define("llamacpp").launch(context(spec({ devices: [] })));
    expect(launch.args.join(" ")).toContain("--gpu off");
  });

  it("refuses a command: the built-in harness is not configurable into another program", () => {
    expect(defineHarness("llamacpp", { command: "sh" }, worker)).toHaveProperty("problems");
  });

  it.each([
    [{ n_gpu_layers: "all" }, 'option "n_gpu_layers" of harness "llamacpp" must be an integer'],
    [{ exec: "/bin/sh" }, 'harness "llamacpp" has no option "exec"'],
    [{ flash_attention: "yes" }, "must be a bool"],
  ])("rejects args %j", (args, message) => {
    expect(define("llamacpp").check(spec({ args }))).toEqual([
      { param: "args", message: expect.stringContaining(message) },
    ]);
  });

  it("refuses what its worker would refuse, before anything is evicted", () => {
    expect(define("llamacpp").check(spec({ max_concurrency: 300 }))).toEqual([
      { param: "max_concurrency", message: expect.stringContaining("at most 256") },
    ]);
    expect(define("llamacpp").check(spec({ context_length: 16 }))).toEqual([
      { param: "context_length", message: expect.stringContaining("64 to 1048576") },
    ]);
  });
});

describe("llama-server and vLLM", () => {
  it("llama-server gets a total context for all slots and every GPU layer by default", () => {
    const launch = define("llama-server", { command: "/opt/llama/llama-server" }).launch(
      context(
        spec({
          max_concurrency: 4,
          context_length: 8192,
          args: { flash_attn: "on", tensor_split: [3, 1], mlock: true, no_mmap: false },
        }),
      ),
    );
    expect(launch.command).toBe("/opt/llama/llama-server");
    expect(launch.args).toEqual([
      "--model",
      "/models/qwen.gguf",
      "--host",
      "127.0.0.1",
      "--port",
      "40123",
      "--alias",
      "qwen",
      "--parallel",
      "4",
      "--ctx-size",
      "32768",
      "--n-gpu-layers",
      "999",
      "--flash-attn",
      "on",
      "--tensor-split",
      "3,1",
      "--mlock",
    ]);
  });

  it("vLLM gets tensor parallelism, slots and context", () => {
    const launch = define("vllm").launch(
      context(
        spec({ tensor_parallel: 2, args: { gpu_memory_utilization: 0.9, enforce_eager: true } }),
      ),
    );
    expect([launch.command, ...launch.args]).toEqual([
      "vllm",
      "serve",
      "/models/qwen.gguf",
      "--host",
      "127.0.0.1",
      "--port",
      "40123",
      "--served-model-name",
      "qwen",
      "--tensor-parallel-size",
      "2",
      "--max-num-seqs",
      "4",
      "--max-model-len",
      "4096",
      "--gpu-memory-utilization",
      "0.9",
      "--enforce-eager",
    ]);
  });

  it("a harness named otherwise can still be a llama-server by kind", () => {
    expect(
      define("llama-server-rocm", { kind: "llama-server", command: ["/opt/rocm/llama-server"] })
        .kind,
    ).toBe("llama-server");
  });
});

describe("template harnesses", () => {
  const config: HarnessConfig = {
    command: ["my-server", "--model", "{model_path}", "--port={port}", "--gpus", "{devices}"],
    ready_path: "/ready",
    env: { MY_ENGINE_LOG: "info" },
    options: { quantization: "--quant" },
  };

  it("fills the template and appends declared options", () => {
    const launch = define("my-engine", config).launch(
      context(spec({ args: { quantization: "awq" } })),
    );
    expect([launch.command, ...launch.args]).toEqual([
      "my-server",
      "--model",
      "/models/qwen.gguf",
      "--port=40123",
      "--gpus",
      "1,3",
      "--quant",
      "awq",
    ]);
    expect(launch.readyPath).toBe("/ready");
    expect(launch.env).toEqual({ MY_ENGINE_LOG: "info" });
  });

  it("refuses options it did not declare", () => {
    expect(define("my-engine", config).check(spec({ args: { dtype: "bf16" } }))).toEqual([
      { param: "args", message: expect.stringContaining('has no option "dtype"') },
    ]);
  });

  it.each([
    [{}, "needs command as a list"],
    [{ command: "my-server" }, "needs command as a list"],
    [{ command: ["srv", "{model}"] }, "unknown placeholder(s) {model}"],
  ])("rejects the template %j", (bad, message) => {
    const result = defineHarness("my-engine", bad, worker);
    expect(result).toHaveProperty("problems");
    if ("problems" in result) expect(result.problems[0]).toContain(message);
  });
});
