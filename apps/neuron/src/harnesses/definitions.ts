import type { HarnessConfig, HarnessInfo, HarnessKind } from "@cortex/protocol";
import { hfRepositoryOf } from "../sources/parse-source.js";
import { inheritedEnvironment } from "./environment.js";
import type { ModelSpec } from "./model-spec.js";
import { argProblems, argvOf, type OptionTable, optionTable, ownArg } from "./options.js";
import { type Placeholder, substitute, unknownPlaceholders } from "./placeholders.js";

/** Everything needed to start one harness process for one model. */
export interface Launch {
  readonly command: string;
  readonly args: readonly string[];
  /** The harness's `env:` from neuron.yaml. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * What it takes from the neuron's own environment: the system allow-list and its
   * `inherit_env` (environment.ts). Nothing else of the neuron's environment reaches it.
   */
  readonly inherited: Readonly<Record<string, string>>;
  readonly readyPath: string;
}

/** Why a spec cannot be launched, and which field of the load request is at fault. */
export interface SpecProblem {
  readonly param: "args" | "source" | "max_concurrency" | "context_length";
  readonly message: string;
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
  /** Problems with a spec for this harness; empty when it can be launched. */
  check(spec: ModelSpec): SpecProblem[];
  launch(context: LaunchContext): Launch;
}

/** The built-in worker (`@cortex/harness-llamacpp`): node + its entry script. */
export interface BuiltinWorker {
  readonly node: string;
  readonly entry: string;
}

const LLAMACPP_OPTIONS: OptionTable = optionTable({
  n_gpu_layers: { flag: "--gpu-layers", type: "int" },
  threads: { flag: "--threads", type: "int" },
  batch_size: { flag: "--batch-size", type: "int" },
  flash_attention: { flag: "--flash-attention", type: "bool" },
});

const LLAMA_SERVER_OPTIONS: OptionTable = optionTable({
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
});

const VLLM_OPTIONS: OptionTable = optionTable({
  gpu_memory_utilization: { flag: "--gpu-memory-utilization", type: "number" },
  dtype: { flag: "--dtype", type: "string" },
  quantization: { flag: "--quantization", type: "string" },
  kv_cache_dtype: { flag: "--kv-cache-dtype", type: "string" },
  max_num_batched_tokens: { flag: "--max-num-batched-tokens", type: "int" },
  enforce_eager: { flag: "--enforce-eager", type: "bool" },
  enable_prefix_caching: { flag: "--enable-prefix-caching", type: "bool" },
  trust_remote_code: { flag: "--trust-remote-code", type: "bool" },
});

/** What the built-in worker accepts (see its args.ts), checked before anything is evicted. */
const builtinLimits = (spec: ModelSpec): SpecProblem[] => [
  ...(spec.max_concurrency > 256
    ? [
        {
          param: "max_concurrency" as const,
          message: `max_concurrency: the built-in harness serves at most 256 at once, got ${spec.max_concurrency}`,
        },
      ]
    : []),
  ...(spec.context_length < 64 || spec.context_length > 1_048_576
    ? [
        {
          param: "context_length" as const,
          message: `context_length: the built-in harness takes 64 to 1048576 tokens, got ${spec.context_length}`,
        },
      ]
    : []),
];

/** An option that turns on remote code: named trust_remote_code, or mapped to that flag. */
const REMOTE_CODE_FLAG = /^--?trust[-_]remote[-_]code$/i;

/**
 * Refuses a spec whose args turn on `trust_remote_code` (with vLLM, an `hf:` repository's own
 * Python then runs on this host) unless neuron.yaml allows it for this harness: `true` for any
 * source, or a list of the `hf:` repositories (`owner/repo`) allowed. A load request or a
 * catalogue entry can ask for it; only the node's operator can grant it.
 */
export const remoteCodeProblem = (
  harness: string,
  options: OptionTable,
  allowed: boolean | readonly string[] | undefined,
  spec: ModelSpec,
): SpecProblem | null => {
  const asked = [...options].filter(
    ([name, option]) =>
      (name === "trust_remote_code" || REMOTE_CODE_FLAG.test(option.flag)) &&
      ownArg(spec.args, name) !== undefined &&
      ownArg(spec.args, name) !== false,
  );
  const [first] = asked;
  if (first === undefined || allowed === true) return null;
  const repo = hfRepositoryOf(spec.source)?.repo;
  if (Array.isArray(allowed) && repo !== undefined && allowed.includes(repo)) return null;
  const how =
    repo === undefined
      ? `set harnesses.${harness}.trust_remote_code: true in neuron.yaml (a list there allows hf: repositories only)`
      : `list "${repo}" in harnesses.${harness}.trust_remote_code in neuron.yaml, or set it to true`;
  return {
    param: "args",
    message: `option "${first[0]}" makes harness "${harness}" run Python code from the model repository on this node, and neuron.yaml does not allow it for source "${spec.source}"; to allow it, ${how}`,
  };
};

/**
 * Harnesses that load one file (the built-in one, llama-server) refuse a whole `hf:owner/repo`
 * repository: the id would reach them as a path. Those that fetch repositories themselves (vLLM,
 * templates) get the id, and run in an empty working directory so it never names a local folder.
 */
const fileOnlyProblem = (harness: string, spec: ModelSpec): SpecProblem | null =>
  hfRepositoryOf(spec.source)?.whole
    ? {
        param: "source",
        message: `harness "${harness}" loads a model file, not a whole repository: name a file in it, e.g. ${spec.source}/model.gguf`,
      }
    : null;

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
  parentEnv: Readonly<Record<string, string | undefined>>,
  limits: (spec: ModelSpec) => SpecProblem[] = () => [],
): Harness => {
  // Fixed for the neuron's lifetime: its environment and neuron.yaml are read once.
  const inherited = inheritedEnvironment(parentEnv, config.inherit_env);
  const takesFile = kind === "builtin" || kind === "llama-server";
  return {
    name,
    kind,
    options,
    check: (spec) => {
      const args = argProblems(name, options, spec.args).map((message) => ({
        param: "args" as const,
        message,
      }));
      const remote =
        args.length === 0 ? remoteCodeProblem(name, options, config.trust_remote_code, spec) : null;
      const source = takesFile ? fileOnlyProblem(name, spec) : null;
      return [...args, ...(remote ? [remote] : []), ...(source ? [source] : []), ...limits(spec)];
    },
    launch: (context) => {
      const { argv, readyPath } = build(context);
      const [command, ...args] = argv;
      if (command === undefined) throw new Error(`harness "${name}" has an empty command`);
      return { command, args, env: { ...config.env }, inherited, readyPath };
    },
  };
};

/**
 * Turns one neuron.yaml harness entry into a Harness, or the list of problems with it.
 * Templates are checked here, once, so a typo in a placeholder fails at start-up rather than
 * at the first load. `parentEnv` is the neuron's own environment, of which the harness gets
 * only the system allow-list and its `inherit_env`.
 */
export const defineHarness = (
  name: string,
  config: HarnessConfig,
  worker: BuiltinWorker,
  parentEnv: Readonly<Record<string, string | undefined>> = {},
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
      parentEnv,
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
          ...(ownArg(spec.args, "n_gpu_layers") === undefined
            ? ["--n-gpu-layers", spec.devices.length > 0 ? "999" : "0"]
            : []),
          ...argvOf(LLAMA_SERVER_OPTIONS, spec.args),
        ],
        readyPath,
      }),
      config,
      parentEnv,
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
          // A file's absolute path, or the repository id of an `hf:owner/repo` source. vLLM
          // takes an id that names an existing folder as that folder: the process runner gives
          // every harness an empty working directory, so the id always means the repository.
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
      parentEnv,
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
  const templateOptions: OptionTable = new Map(
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
    parentEnv,
  );
};

export const harnessInfo = (harnesses: ReadonlyMap<string, Harness>): HarnessInfo[] =>
  [...harnesses.values()].map((h) => ({ name: h.name, kind: h.kind }));
