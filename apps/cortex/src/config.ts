import { ConfigError, loadConfigFile } from "@cortex/config-file";
import { CortexConfig } from "@cortex/protocol";

export { ConfigError };

/**
 * Reads cortex.yaml (optional: every key may come from CORTEX_* variables instead), applies
 * the environment over it, and validates the result. Called once, in main.
 */
export const loadConfig = (
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): CortexConfig =>
  loadConfigFile(CortexConfig, {
    what: "cortex",
    file,
    env,
    prefix: "CORTEX",
    // Variables the CLI reads that are not config keys.
    notKeys: ["CORTEX_CONFIG", "CORTEX_LOG_LEVEL"],
  });

/** The config as it may be logged: secrets replaced. */
export const redactConfig = (config: CortexConfig): Record<string, unknown> => ({
  ...config,
  api_keys: config.api_keys.map(() => "[redacted]"),
  admin_token: config.admin_token ? "[redacted]" : "",
  join_tokens: config.join_tokens.map(() => "[redacted]"),
  neurons: config.neurons.map((neuron) => ({
    ...neuron,
    token: neuron.token ? "[redacted]" : "",
  })),
});
