import { describe, expect, it } from "vitest";
import { parseWorkerArgs } from "./args.js";

describe("parseWorkerArgs", () => {
  it("fills defaults", () => {
    expect(parseWorkerArgs(["--model", "/m/tiny.gguf", "--port", "0"], 42)).toEqual({
      model: "/m/tiny.gguf",
      port: 0,
      host: "127.0.0.1",
      parallel: 1,
      ctxSize: 2048,
      gpu: "auto",
      alias: "tiny",
      graceMs: 10_000,
      parentPid: 42,
      threads: undefined,
      batchSize: undefined,
      gpuLayers: undefined,
      flashAttention: false,
      prefixCache: true,
    });
  });

  it("reads every option", () => {
    const args = parseWorkerArgs(
      [
        "--model=/m/x.gguf",
        "--port=8080",
        "--host=::1",
        "--parallel=4",
        "--ctx-size=4096",
        "--gpu=off",
        "--alias=qwen",
        "--grace-ms=500",
        "--parent-pid=7",
        "--threads=3",
        "--batch-size=256",
        "--gpu-layers=20",
        "--flash-attention",
        "--no-prefix-cache",
      ],
      1,
    );
    expect(args).toMatchObject({
      port: 8080,
      host: "::1",
      parallel: 4,
      ctxSize: 4096,
      gpu: "off",
      alias: "qwen",
      graceMs: 500,
      parentPid: 7,
      threads: 3,
      batchSize: 256,
      gpuLayers: 20,
      flashAttention: true,
      prefixCache: false,
    });
  });

  it.each([
    [["--port", "1"], "--model is required"],
    [["--model", "m"], "--port is required"],
    [["--model", "m", "--port", "70000"], "--port must be an integer"],
    [["--model", "m", "--port", "1", "--parallel", "0"], "--parallel must be an integer"],
    [["--model", "m", "--port", "1", "--gpu", "cuda"], '--gpu must be "auto" or "off"'],
    [["--model", "m", "--port", "1", "--threads", "0"], "--threads must be an integer"],
    [["--model", "m", "--port", "1", "--gpu-layers=-1"], "--gpu-layers must be an integer"],
    [["--model", "m", "--port", "1", "--shell", "rm"], "Unknown option"],
  ])("rejects %j", (argv, message) => {
    expect(() => parseWorkerArgs(argv, 1)).toThrow(message);
  });
});
