import { readFileSync } from "node:fs";
import { CortexConfig, envOverrides, type Problem, problemsOf } from "@cortex/protocol";
import { parseDocument } from "yaml";

/** Every problem with the configuration, listed so the operator can fix them all at once. */
export class ConfigError extends Error {
  readonly problems: readonly Problem[];

  constructor(source: string, problems: readonly Problem[]) {
    super(
      `invalid cortex configuration (${source}):\n${problems.map((p) => `  ${p.path || "(top level)"}: ${p.message}`).join("\n")}`,
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Environment variables the CLI reads that are not config keys. */
const NOT_KEYS = ["CORTEX_CONFIG", "CORTEX_LOG_LEVEL"];

/**
 * Reads cortex.yaml (optional: every key may come from CORTEX_* variables instead), applies
 * the environment over it, and validates the result. Called once, in main.
 */
export const loadConfig = (
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): CortexConfig => {
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
  const fromEnv = envOverrides(CortexConfig, env, "CORTEX", NOT_KEYS);
  problems.push(...fromEnv.problems);
  const result = CortexConfig.safeParse({ ...fromFile, ...fromEnv.values });
  if (!result.success) problems.push(...problemsOf(result.error));
  if (problems.length > 0 || !result.success)
    throw new ConfigError(file ?? "environment", problems);
  return result.data;
};

/** The config as it may be logged: secrets replaced. */
export const redactConfig = (config: CortexConfig): Record<string, unknown> => ({
  ...config,
  api_keys: config.api_keys.map(() => "[redacted]"),
  admin_token: config.admin_token ? "[redacted]" : "",
  neurons: config.neurons.map((neuron) => ({
    ...neuron,
    token: neuron.token ? "[redacted]" : "",
  })),
});
