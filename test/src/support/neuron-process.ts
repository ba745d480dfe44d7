import { join } from "node:path";
import { writeTinyModel } from "@cortex/harness-llamacpp";
import { ModelsAnswer, type NeuronModel } from "@cortex/protocol";
import { type AppProcess, NEURON_CLI, startApp } from "./app-process.js";

export type NeuronProcess = AppProcess & { readonly token: string };

/**
 * neuron.yaml for a test node `name` with `token`: models from `dir/models`, its state in
 * `dir/state-<name>`; `extra` adds settings or replaces these.
 */
export const testNeuronConfig = (
  dir: string,
  name: string,
  token: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> => ({
  name,
  token,
  models_dir: join(dir, "models"),
  state_dir: join(dir, `state-${name}`),
  ...extra,
});

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

/** Stops (SIGTERM) every neuron of `nodes` still running, and empties the list. */
export const stopNeurons = async (nodes: NeuronProcess[]): Promise<void> => {
  for (const node of nodes.splice(0)) {
    if (node.child.exitCode === null && node.child.signalCode === null) {
      node.child.kill("SIGTERM");
      await node.exited;
    }
  }
};

/** The models `node` lists, checked against the contract. */
export const modelsOf = async (node: NeuronProcess): Promise<NeuronModel[]> =>
  ModelsAnswer.parse(await (await node.api("/models")).json());

/** The status of model `id` on `node`, or "absent" when it is not listed. */
export const statusOf = async (node: NeuronProcess, id: string) =>
  (await modelsOf(node)).find((model) => model.id === id)?.status ?? "absent";

/** One node of a test fleet: its name and the GPUs its neuron.yaml declares. */
export interface FleetNodeSpec {
  readonly name: string;
  readonly devices: readonly { readonly vram_total_mb: number }[];
}

/**
 * A neuron serving the tiny model (and, with `embedding`, its embedding variant) from
 * `dir/<name>/models`, its state in `dir/<name>/state`, with the declared GPUs.
 */
export const startTinyNeuron = async (
  dir: string,
  spec: FleetNodeSpec,
  token: string,
  options: { embedding?: boolean } = {},
): Promise<NeuronProcess> => {
  const models = join(dir, spec.name, "models");
  await writeTinyModel(join(models, "tiny.gguf"), { seed: 1 });
  if (options.embedding)
    await writeTinyModel(join(models, "tiny-embed.gguf"), { seed: 2, variant: "embedding" });
  return startNeuron(dir, {
    name: spec.name,
    token,
    models_dir: models,
    state_dir: join(dir, spec.name, "state"),
    devices: spec.devices,
    stop_grace_ms: 2000,
  });
};
