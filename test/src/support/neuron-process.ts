import { type AppProcess, NEURON_CLI, startApp } from "./app-process.js";

export type NeuronProcess = AppProcess & { readonly token: string };

/** Starts `neuron serve` with a neuron.yaml in `dir` (see startApp). */
export const startNeuron = async (
  dir: string,
  config: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<NeuronProcess> => {
  const token = typeof config.token === "string" ? config.token : "";
  const app = await startApp({
    cli: NEURON_CLI,
    dir,
    file: `neuron-${String(config.name)}.yaml`,
    config,
    token,
    env: { NEURON_LOG_LEVEL: "info", ...env },
  });
  return { ...app, token };
};
