import { readFileSync } from "node:fs";
import { envOverrides, NeuronConfig, type Problem, problemsOf } from "@cortex/protocol";
import { parseDocument } from "yaml";

/** Every problem with the configuration, listed so the operator can fix them all at once. */
export class ConfigError extends Error {
  readonly problems: readonly Problem[];

  constructor(source: string, problems: readonly Problem[]) {
    super(
      `invalid neuron configuration (${source}):\n${problems.map((p) => `  ${p.path || "(top level)"}: ${p.message}`).join("\n")}`,
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Environment variables the CLI reads that are not config keys. */
const NOT_KEYS = ["NEURON_CONFIG", "NEURON_LOG_LEVEL"];

/**
 * Reads neuron.yaml (optional: every key may come from NEURON_* variables instead), applies
 * the environment over it, and validates the result. Called once, in main.
 */
export const loadConfig = (
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): NeuronConfig => {
  const problems: Problem[] = [];
  let fromFile: Record<string, unknown> = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      throw new ConfigError(file, [
        { path: "", message: `cannot read: ${(error as Error).message}` },
      ]);
    }
    const doc = parseDocument(text);
    for (const error of doc.errors) problems.push({ path: "", message: `YAML: ${error.message}` });
    const parsed: unknown = doc.toJS();
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== "object" || Array.isArray(parsed))
        problems.push({ path: "", message: "must be a mapping of keys" });
      else fromFile = parsed as Record<string, unknown>;
    }
  }
  const fromEnv = envOverrides(NeuronConfig, env, "NEURON", NOT_KEYS);
  problems.push(...fromEnv.problems);
  const result = NeuronConfig.safeParse({ ...fromFile, ...fromEnv.values });
  if (!result.success) problems.push(...problemsOf(result.error));
  if (problems.length > 0 || !result.success)
    throw new ConfigError(file ?? "environment", problems);
  return result.data;
};

/** The config as it may be logged: secrets replaced. */
export const redactConfig = (config: NeuronConfig): Record<string, unknown> => ({
  ...config,
  token: config.token ? "[redacted]" : "",
  harnesses: Object.fromEntries(
    Object.entries(config.harnesses).map(([name, harness]) => [
      name,
      {
        ...harness,
        ...(harness.env
          ? { env: Object.fromEntries(Object.keys(harness.env).map((k) => [k, "[redacted]"])) }
          : {}),
      },
    ]),
  ),
});
