import type { HarnessConfig, HarnessInfo, HarnessKind } from "@cortex/protocol";
import type { ModelSpec } from "./model-spec.js";
import { argProblems, argvOf, type OptionTable } from "./options.js";
import { type Placeholder, substitute, unknownPlaceholders } from "./placeholders.js";

/** Everything needed to start one harness process for one model. */
export interface Launch {
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly readyPath: string;
}

export interface LaunchContext {
  readonly spec: ModelSpec;
  readonly modelPath: string;
  readonly port: number;
  readonly host: string;
}

/** A configured harness: its identity, the catalogue options it accepts, how to start it. */
export interface Harness {
  readonly name: string;
  readonly kind: HarnessKind;
  readonly options: OptionTable;
  /** Problems with a spec's args for this harness; empty when it can be launched. */
  check(spec: ModelSpec): string[];
  launch(context: LaunchContext): Launch;
}

/** The built-in worker (`@cortex/harness-llamacpp`): node + its entry script. */
export interface BuiltinWorker {
  readonly node: string;
  readonly entry: string;
}

const LLAMACPP_OPTIONS: OptionTable = {
  n_gpu_layers: { flag: "--gpu-layers", type: "int" },
  threads: { flag: "--threads", type: "int" },
  batch_size: { flag: "--batch-size", type: "int" },
  flash_attention: { flag: "--flash-attention", type: "bool" },
};

const LLAMA_SERVER_OPTIONS: OptionTable = {
  n_gpu_layers: { flag: "--n-gpu-layers", type: "int" },
  threads: { flag: "--threads", type: "int" },
  batch_size: { flag: "--batch-size", type: "int" },
  ubatch_size: { flag: "--ubatch-size", type: "int" },
  flash_attn: { flag: "--flash-attn", type: "string" },
  cache_type_k: { flag: "--cache-type-k", type: "string" },
  cache_type_v: { flag: "--cache-type-v", type: "string" },
  rope_freq_base: { flag: "--rope-freq-base", type: "number" },
  split_mode: { flag: "--split-mode", type: "string" },
  tensor_split: { flag: "--tensor-split", type: "list" },
  main_gpu: { flag: "--main-gpu", type: "int" },
  mlock: { flag: "--mlock", type: "bool" },
  no_mmap: { flag: "--no-mmap", type: "bool" },
  jinja: { flag: "--jinja", type: "bool" },
  chat_template: { flag: "--chat-template", type: "string" },
};

const VLLM_OPTIONS: OptionTable = {
  gpu_memory_utilization: { flag: "--gpu-memory-utilization", type: "number" },
  dtype: { flag: "--dtype", type: "string" },
  quantization: { flag: "--quantization", type: "string" },
  kv_cache_dtype: { flag: "--kv-cache-dtype", type: "string" },
  max_num_batched_tokens: { flag: "--max-num-batched-tokens", type: "int" },
  enforce_eager: { flag: "--enforce-eager", type: "bool" },
  enable_prefix_caching: { flag: "--enable-prefix-caching", type: "bool" },
  trust_remote_code: { flag: "--trust-remote-code", type: "bool" },
};

/** What the built-in worker accepts (see its args.ts), checked before anything is evicted. */
const builtinLimits = (spec: ModelSpec): string[] => [
  ...(spec.max_concurrency > 256
    ? [
        `max_concurrency: the built-in harness serves at most 256 at once, got ${spec.max_concurrency}`,
      ]
    : []),
  ...(spec.context_length < 64 || spec.context_length > 1_048_576
    ? [
        `context_length: the built-in harness takes 64 to 1048576 tokens, got ${spec.context_length}`,
      ]
    : []),
];

const placeholderValues = (context: LaunchContext): Record<Placeholder, string> => ({
  model_path: context.modelPath,
  model_id: context.spec.id,
  port: String(context.port),
  host: context.host,
  ctx_size: String(context.spec.context_length),
  parallel: String(context.spec.max_concurrency),
  devices: context.spec.devices.join(","),
  tensor_parallel: String(context.spec.tensor_parallel),
});

const commandArgv = (config: HarnessConfig, fallback: string): string[] => {
  if (config.command === undefined) return [fallback];
  return typeof config.command === "string" ? [config.command] : [...config.command];
};

const defaultKind = (name: string): HarnessKind =>
  name === "llamacpp" ? "builtin" : name === "llama-server" || name === "vllm" ? name : "template";

const harness = (
  name: string,
  kind: HarnessKind,
  options: OptionTable,
  build: (context: LaunchContext) => { argv: string[]; readyPath: string },
  config: HarnessConfig,
  limits: (spec: ModelSpec) => string[] = () => [],
): Harness => ({
  name,
  kind,
  options,
  check: (spec) => [...limits(spec), ...argProblems(name, options, spec.args)],
  launch: (context) => {
    const { argv, readyPath } = build(context);
    const [command, ...args] = argv;
    if (command === undefined) throw new Error(`harness "${name}" has an empty command`);
    return { command, args, env: { ...config.env }, readyPath };
  },
});

/**
 * Turns one neuron.yaml harness entry into a Harness, or the list of problems with it.
 * Templates are checked here, once, so a typo in a placeholder fails at start-up rather than
 * at the first load.
 */
export const defineHarness = (
  name: string,
  config: HarnessConfig,
  worker: BuiltinWorker,
): Harness | { problems: string[] } => {
  const kind = config.kind ?? defaultKind(name);
  const readyPath = config.ready_path ?? "/health";
  if (kind === "builtin") {
    if (config.command !== undefined) {
      return { problems: [`harnesses.${name}: the built-in llama.cpp harness takes no command`] };
    }
    return harness(
      name,
      kind,
      LLAMACPP_OPTIONS,
      ({ spec, modelPath, port, host }) => ({
        argv: [
          worker.node,
          worker.entry,
          "--model",
          modelPath,
          "--port",
          String(port),
          "--host",
          host,
          "--alias",
          spec.id,
          "--parallel",
          String(spec.max_concurrency),
          "--ctx-size",
          String(spec.context_length),
          "--gpu",
          spec.devices.length > 0 ? "auto" : "off",
          ...argvOf(LLAMACPP_OPTIONS, spec.args),
        ],
        readyPath,
      }),
      config,
      builtinLimits,
    );
  }
  if (kind === "llama-server") {
    return harness(
      name,
      kind,
      LLAMA_SERVER_OPTIONS,
      ({ spec, modelPath, port, host }) => ({
        argv: [
          ...commandArgv(config, "llama-server"),
          "--model",
          modelPath,
          "--host",
          host,
          "--port",
          String(port),
          "--alias",
          spec.id,
          "--parallel",
          String(spec.max_concurrency),
          // llama-server divides --ctx-size among its parallel slots.
          "--ctx-size",
          String(spec.context_length * spec.max_concurrency),
          ...(spec.args.n_gpu_layers === undefined
            ? ["--n-gpu-layers", spec.devices.length > 0 ? "999" : "0"]
            : []),
          ...argvOf(LLAMA_SERVER_OPTIONS, spec.args),
        ],
        readyPath,
      }),
      config,
    );
  }
  if (kind === "vllm") {
    return harness(
      name,
      kind,
      VLLM_OPTIONS,
      ({ spec, modelPath, port, host }) => ({
        argv: [
          ...commandArgv(config, "vllm"),
          "serve",
          modelPath,
          "--host",
          host,
          "--port",
          String(port),
          "--served-model-name",
          spec.id,
          "--tensor-parallel-size",
          String(spec.tensor_parallel),
          "--max-num-seqs",
          String(spec.max_concurrency),
          "--max-model-len",
          String(spec.context_length),
          ...argvOf(VLLM_OPTIONS, spec.args),
        ],
        readyPath,
      }),
      config,
    );
  }
  if (config.command === undefined || typeof config.command === "string") {
    return {
      problems: [
        `harnesses.${name}: a template harness needs command as a list, e.g. [my-server, --model, "{model_path}", "--port={port}"]`,
      ],
    };
  }
  const unknown = unknownPlaceholders(config.command);
  if (unknown.length > 0) {
    return {
      problems: [
        `harnesses.${name}.command: unknown placeholder(s) ${unknown.map((p) => `{${p}}`).join(", ")}; use {model_path}, {model_id}, {port}, {host}, {ctx_size}, {parallel}, {devices}, {tensor_parallel}`,
      ],
    };
  }
  const template = config.command;
  const templateOptions: OptionTable = Object.fromEntries(
    Object.entries(config.options ?? {}).map(([option, flag]) => [
      option,
      { flag, type: "any" as const },
    ]),
  );
  return harness(
    name,
    kind,
    templateOptions,
    (context) => ({
      argv: [
        ...substitute(template, placeholderValues(context)),
        ...argvOf(templateOptions, context.spec.args),
      ],
      readyPath,
    }),
    config,
  );
};

export const harnessInfo = (harnesses: ReadonlyMap<string, Harness>): HarnessInfo[] =>
  [...harnesses.values()].map((h) => ({ name: h.name, kind: h.kind }));
