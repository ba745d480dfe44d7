import { basename } from "node:path";
import { parseArgs } from "node:util";

export interface WorkerArgs {
  readonly model: string;
  readonly port: number;
  readonly host: string;
  readonly parallel: number;
  readonly ctxSize: number;
  readonly gpu: "auto" | "off";
  /** The name the model is served under; defaults to the file name without `.gguf`. */
  readonly alias: string;
  /** How long SIGTERM waits for in-flight requests before aborting them. */
  readonly graceMs: number;
  /** The process whose death ends this one; defaults to the parent at start-up. */
  readonly parentPid: number;
  /** CPU threads for generation; undefined picks a default from the model's size. */
  readonly threads: number | undefined;
  /** Tokens evaluated per batch; undefined leaves llama.cpp's default. */
  readonly batchSize: number | undefined;
  /** Layers offloaded to the GPU; undefined lets node-llama-cpp fit as many as it can. */
  readonly gpuLayers: number | undefined;
  readonly flashAttention: boolean;
  /** Reuse what a slot has evaluated (`--no-prefix-cache` turns it off, for benchmarks). */
  readonly prefixCache: boolean;
}

export const USAGE =
  "usage: node main.js --model <path> --port <port> [--host 127.0.0.1] [--parallel N] [--ctx-size N] [--gpu auto|off] [--alias NAME] [--grace-ms MS] [--parent-pid PID] [--threads N] [--batch-size N] [--gpu-layers N] [--flash-attention] [--no-prefix-cache]";

const optionalInteger = (
  name: string,
  value: string | undefined,
  min: number,
  max: number,
): number | undefined => (value === undefined ? undefined : integer(name, value, min, min, max));

const integer = (
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number => {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
    throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
  }
  return parsed;
};

/** Parses the worker's command line; throws an Error whose message says what to fix. */
export const parseWorkerArgs = (argv: readonly string[], parentPid: number): WorkerArgs => {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      model: { type: "string" },
      port: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      parallel: { type: "string" },
      "ctx-size": { type: "string" },
      gpu: { type: "string", default: "auto" },
      alias: { type: "string" },
      "grace-ms": { type: "string" },
      "parent-pid": { type: "string" },
      threads: { type: "string" },
      "batch-size": { type: "string" },
      "gpu-layers": { type: "string" },
      "flash-attention": { type: "boolean", default: false },
      "no-prefix-cache": { type: "boolean", default: false },
    },
  });
  if (!values.model) throw new Error("--model is required");
  if (values.port === undefined) throw new Error("--port is required");
  if (values.gpu !== "auto" && values.gpu !== "off") {
    throw new Error(`--gpu must be "auto" or "off", got "${values.gpu}"`);
  }
  return {
    model: values.model,
    port: integer("port", values.port, 0, 0, 65_535),
    host: values.host,
    parallel: integer("parallel", values.parallel, 1, 1, 256),
    ctxSize: integer("ctx-size", values["ctx-size"], 2048, 64, 1_048_576),
    gpu: values.gpu,
    alias: values.alias ?? basename(values.model).replace(/\.gguf$/i, ""),
    graceMs: integer("grace-ms", values["grace-ms"], 10_000, 0, 600_000),
    parentPid: integer("parent-pid", values["parent-pid"], parentPid, 0, 4_194_304),
    threads: optionalInteger("threads", values.threads, 1, 1024),
    batchSize: optionalInteger("batch-size", values["batch-size"], 1, 65_536),
    gpuLayers: optionalInteger("gpu-layers", values["gpu-layers"], 0, 100_000),
    flashAttention: values["flash-attention"],
    prefixCache: !values["no-prefix-cache"],
  };
};
