import type { HarnessArgs, HarnessConfig } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { defineHarness, type Harness, remoteCodeProblem } from "./definitions.js";
import { inheritedEnvironment, isSystemVariable } from "./environment.js";
import { type ModelSpec, specOf } from "./model-spec.js";
import { argProblems, argvOf, optionTable } from "./options.js";
import { substitute, unknownPlaceholders } from "./placeholders.js";

// Issue 13: what a load request (or a catalogue entry) must not be able to make a harness do.

const worker = { node: "/usr/bin/node", entry: "/opt/harness/main.js" };

const define = (
  name: string,
  config: HarnessConfig = {},
  env: Record<string, string | undefined> = {},
): Harness => {
  const result = defineHarness(name, config, worker, env);
  if ("problems" in result) throw new Error(result.problems.join("\n"));
  return result;
};

const spec = (fields: Partial<ModelSpec> = {}): ModelSpec => ({
  ...specOf({ model_id: "m", harness: "x", source: "m.gguf" }, 900),
  ...fields,
});

const argvOfLaunch = (harness: Harness, s: ModelSpec, modelPath = "/models/m.gguf"): string[] => {
  const launch = harness.launch({ spec: s, modelPath, port: 40000, host: "127.0.0.1" });
  return [launch.command, ...launch.args];
};

const TEMPLATE: HarnessConfig = {
  command: ["/opt/engine/serve", "--model", "{model_path}", "--port={port}"],
  options: { quantization: "--quant" },
};

/** Every kind of harness there is, as neuron.yaml would configure it. */
const HARNESSES: [string, HarnessConfig][] = [
  ["llamacpp", {}],
  ["llama-server", { command: "/opt/llama/llama-server" }],
  ["vllm", { command: ["/opt/vllm/bin/vllm"] }],
  ["my-engine", TEMPLATE],
];

/** Names every plain object inherits; JSON.parse makes `__proto__` an own key, as a body would. */
const INHERITED_NAMES = [
  "constructor",
  "__proto__",
  "toString",
  "toLocaleString",
  "hasOwnProperty",
  "valueOf",
  "isPrototypeOf",
  "propertyIsEnumerable",
  "__defineGetter__",
  "__lookupSetter__",
];

const argsNaming = (name: string): HarnessArgs =>
  JSON.parse(`{${JSON.stringify(name)}: "--chat-template-file=/etc/shadow"}`) as HarnessArgs;

describe("option lookups see declared options only", () => {
  it.each(
    HARNESSES.flatMap(([harness, config]) =>
      INHERITED_NAMES.map((name) => [harness, name, config] as const),
    ),
  )("%s refuses args.%s and never puts it on the command line", (harness, name, config) => {
    const args = argsNaming(name);
    expect(Object.keys(args)).toEqual([name]);
    const h = define(harness, config);
    expect(h.check(spec({ args }))).toEqual([
      { param: "args", message: expect.stringContaining(`has no option "${name}"`) },
    ]);
    const argv = argvOfLaunch(h, spec({ args }));
    expect(argv).not.toContain("undefined");
    expect(argv.join(" ")).not.toContain("/etc/shadow");
  });

  it("argProblems and argvOf ignore Object.prototype on a plain-object table too", () => {
    const table = optionTable({ threads: { flag: "--threads", type: "int" } });
    const args = { constructor: "x", toString: "y", threads: 2 } as HarnessArgs;
    expect(argProblems("h", table, args)).toEqual([
      'harness "h" has no option "constructor" (it accepts: threads)',
      'harness "h" has no option "toString" (it accepts: threads)',
    ]);
    expect(argvOf(table, args)).toEqual(["--threads", "2"]);
  });

  it("a template may still declare an option whose name Object.prototype also has", () => {
    const h = define("my-engine", { ...TEMPLATE, options: { constructor: "--builder" } });
    const args = { constructor: "fast" } as HarnessArgs;
    expect(h.check(spec({ args }))).toEqual([]);
    expect(argvOfLaunch(h, spec({ args })).slice(-2)).toEqual(["--builder", "fast"]);
  });

  it("llama-server's own default for n_gpu_layers is not fooled by inherited names", () => {
    const argv = argvOfLaunch(define("llama-server"), spec({ devices: [0] }));
    expect(argv.join(" ")).toContain("--n-gpu-layers 999");
  });
});

describe("placeholders are looked up as own names only", () => {
  const values = {
    model_path: "/m",
    model_id: "m",
    port: "1",
    host: "h",
    ctx_size: "2",
    parallel: "3",
    devices: "",
    tensor_parallel: "1",
  };

  it.each(["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"])(
    "{%s} is unknown when the config loads and when it is substituted",
    (name) => {
      expect(unknownPlaceholders([`--x={${name}}`])).toEqual([name]);
      expect(() => substitute([`{${name}}`], values)).toThrow(`unknown placeholder {${name}}`);
    },
  );
});

describe("whole-repository hf: sources", () => {
  it.each([
    ["llamacpp", {}],
    ["llama-server", { command: "/opt/llama/llama-server" }],
  ] as const)("%s takes a file: hf:owner/repo is refused on param source", (name, config) => {
    expect(define(name, config).check(spec({ source: "hf:someone/models" }))).toEqual([
      { param: "source", message: expect.stringContaining("not a whole repository") },
    ]);
  });

  it.each([
    ["llamacpp", {}],
    ["llama-server", { command: "/opt/llama/llama-server" }],
  ] as const)("%s still takes a file in a repository", (name, config) => {
    expect(define(name, config).check(spec({ source: "hf:someone/models/m.gguf" }))).toEqual([]);
    expect(define(name, config).check(spec({ source: "hf:someone/models@v1/m.gguf" }))).toEqual([]);
  });

  it.each<[string, HarnessConfig]>([
    ["vllm", { command: ["/opt/vllm/bin/vllm"] }],
    ["my-engine", TEMPLATE],
  ])("%s fetches repositories itself and gets the id", (name, config) => {
    const h = define(name, config);
    const s = spec({ source: "hf:Qwen/Qwen3-8B" });
    expect(h.check(s)).toEqual([]);
    expect(argvOfLaunch(h, s, "Qwen/Qwen3-8B")).toContain("Qwen/Qwen3-8B");
  });
});

describe("trust_remote_code needs neuron.yaml's permission", () => {
  const vllm = (allowed?: boolean | string[]) =>
    define("vllm", allowed === undefined ? {} : { trust_remote_code: allowed });
  const asking = (source: string, value: HarnessArgs[string] = true) =>
    spec({ source, args: { trust_remote_code: value } });

  it.each([
    ["not configured", undefined, "hf:evil/repo"],
    ["false", false, "hf:evil/repo"],
    ["another repository listed", ["good/repo"], "hf:evil/repo"],
    ["a repository listed, a file of another", ["good/repo"], "hf:evil/repo/m.gguf"],
    ["a list, a local path", ["good/repo"], "good/repo/model"],
    ["a list, case differs", ["good/repo"], "hf:Good/Repo"],
  ] as const)("refuses it when %s", (_what, allowed, source) => {
    const problems = vllm(allowed as boolean | string[] | undefined).check(asking(source));
    expect(problems).toEqual([
      {
        param: "args",
        message: expect.stringMatching(
          /trust_remote_code.*neuron\.yaml.*harnesses\.vllm\.trust_remote_code/,
        ),
      },
    ]);
  });

  it.each([
    ["true", true, "hf:any/repo"],
    ["true, a local folder", true, "models/my-model"],
    ["its repository listed", ["good/repo", "other/x"], "hf:good/repo"],
    ["its repository listed, a file in it", ["good/repo"], "hf:good/repo@v2/m.gguf"],
  ] as const)("allows it when %s", (_what, allowed, source) => {
    expect(vllm(allowed as boolean | string[]).check(asking(source))).toEqual([]);
    expect(argvOfLaunch(vllm(allowed as boolean | string[]), asking(source))).toContain(
      "--trust-remote-code",
    );
  });

  it("does not ask for permission to leave it off", () => {
    expect(vllm().check(asking("hf:any/repo", false))).toEqual([]);
    expect(vllm().check(spec({ source: "hf:any/repo" }))).toEqual([]);
  });

  it.each([
    ["named trust_remote_code", { trust_remote_code: "--trust-remote-code" }, "trust_remote_code"],
    ["mapped to the flag under another name", { remote: "--trust-remote-code" }, "remote"],
    ["mapped to an underscore spelling", { remote: "--trust_remote_code" }, "remote"],
  ])("applies to a template option %s", (_what, options, name) => {
    const template = define("my-engine", { ...TEMPLATE, options });
    for (const value of [true, "yes", 1, ["x"]] as HarnessArgs[string][]) {
      expect(template.check(spec({ source: "hf:a/b", args: { [name]: value } }))).toEqual([
        {
          param: "args",
          message: expect.stringContaining("harnesses.my-engine.trust_remote_code"),
        },
      ]);
    }
    const allowed = define("my-engine", { ...TEMPLATE, options, trust_remote_code: ["a/b"] });
    expect(allowed.check(spec({ source: "hf:a/b", args: { [name]: true } }))).toEqual([]);
  });

  it("is a pure decision over the option table", () => {
    const table = optionTable({ trust_remote_code: { flag: "--trust-remote-code", type: "bool" } });
    expect(remoteCodeProblem("v", table, undefined, asking("hf:a/b"))).not.toBeNull();
    expect(remoteCodeProblem("v", table, ["a/b"], asking("hf:a/b"))).toBeNull();
    expect(remoteCodeProblem("v", optionTable({}), undefined, asking("hf:a/b"))).toBeNull();
  });
});

describe("harness environment", () => {
  /** The part of the neuron's environment on the system allow-list: every harness inherits it. */
  const systemEnv = {
    PATH: "/usr/bin:/bin",
    HOME: "/home/neuron",
    USER: "neuron",
    LOGNAME: "neuron",
    SHELL: "/bin/sh",
    LANG: "C.UTF-8",
    LANGUAGE: "en",
    LC_ALL: "C.UTF-8",
    LC_CTYPE: "C.UTF-8",
    TZ: "UTC",
    TMPDIR: "/tmp",
    LD_LIBRARY_PATH: "/usr/local/cuda/lib64",
    CUDA_HOME: "/usr/local/cuda",
    ROCM_PATH: "/opt/rocm",
  };
  const neuronEnv = {
    ...systemEnv,
    NEURON_TOKEN: "neuron-secret",
    HF_TOKEN: "hf_secret",
    AWS_SECRET_ACCESS_KEY: "aws-secret",
    HTTPS_PROXY: "http://user:pw@proxy:3128",
    NODE_OPTIONS: "--require /tmp/evil.js",
    LD_PRELOAD: "/tmp/evil.so",
    CUDA_VISIBLE_DEVICES: "0,1,2,3",
    UNSET: undefined,
  };

  it("passes the system allow-list and nothing else by default", () => {
    expect(inheritedEnvironment(neuronEnv)).toEqual(systemEnv);
  });

  it("adds what inherit_env names, when the neuron has it", () => {
    const env = inheritedEnvironment(neuronEnv, ["HF_TOKEN", "HTTPS_PROXY", "MISSING", "UNSET"]);
    expect(env).toMatchObject({ HF_TOKEN: "hf_secret", HTTPS_PROXY: "http://user:pw@proxy:3128" });
    expect(env).not.toHaveProperty("MISSING");
    expect(env).not.toHaveProperty("UNSET");
    expect(env).not.toHaveProperty("NEURON_TOKEN");
  });

  it.each([
    ["PATH", true],
    ["LC_MESSAGES", true],
    ["LC_", false],
    ["lc_all", false],
    ["NEURON_TOKEN", false],
    ["HF_TOKEN", false],
    ["NODE_OPTIONS", false],
    ["LD_PRELOAD", false],
    ["CUDA_VISIBLE_DEVICES", false],
    ["constructor", false],
  ])("isSystemVariable(%s) is %s", (name, system) => {
    expect(isSystemVariable(name)).toBe(system);
  });

  it("each harness inherits by its own inherit_env; env: stays apart", () => {
    const vllm = define(
      "vllm",
      { inherit_env: ["HF_TOKEN"], env: { VLLM_LOGGING_LEVEL: "INFO" } },
      neuronEnv,
    );
    const llama = define("llamacpp", {}, neuronEnv);
    const launch = (h: Harness) =>
      h.launch({ spec: spec(), modelPath: "/m", port: 1, host: "127.0.0.1" });
    expect(launch(vllm).inherited).toMatchObject({ HF_TOKEN: "hf_secret", PATH: "/usr/bin:/bin" });
    expect(launch(vllm).env).toEqual({ VLLM_LOGGING_LEVEL: "INFO" });
    expect(launch(llama).inherited).not.toHaveProperty("HF_TOKEN");
    expect(launch(llama).inherited).not.toHaveProperty("NEURON_TOKEN");
  });
});
