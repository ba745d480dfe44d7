import { ConfigError, loadConfigFile } from "@cortex/config-file";
import { NeuronConfig } from "@cortex/protocol";

export { ConfigError };

/**
 * Reads neuron.yaml (optional: every key may come from NEURON_* variables instead), applies
 * the environment over it, and validates the result. Called once, in main.
 */
export const loadConfig = (
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): NeuronConfig =>
  loadConfigFile(NeuronConfig, {
    what: "neuron",
    file,
    env,
    prefix: "NEURON",
    // Variables the CLI reads that are not config keys.
    notKeys: ["NEURON_CONFIG", "NEURON_LOG_LEVEL"],
  });

/** The config as it may be logged: secrets replaced. */
export const redactConfig = (config: NeuronConfig): Record<string, unknown> => ({
  ...config,
  token: config.token ? "[redacted]" : "",
  join_token: config.join_token ? "[redacted]" : "",
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
