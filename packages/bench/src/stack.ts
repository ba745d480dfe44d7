import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { FleetSnapshot } from "@cortex/protocol";
import { FAKE_HARNESS_TEMPLATE, processesMentioning, waitFor } from "@cortex/testkit";
import { stringify } from "yaml";
import {
  type AppProcess,
  benchWorkspace,
  CORTEX_CLI,
  metricSamples,
  NEURON_CLI,
  startApp,
} from "./support.js";

export const API_KEY = "sk-bench";
export const ADMIN_TOKEN = "admin-bench";
export const NEURON_TOKEN = "neuron-bench";

export interface FakeModel {
  readonly id: string;
  /** The fake harness's behaviour file (testkit FakeBehaviour). */
  readonly behaviour: Record<string, unknown>;
  readonly maxConcurrency?: number;
}

export interface Stack {
  readonly dir: string;
  readonly neuron: AppProcess;
  readonly cortex: AppProcess;
  readonly stop: () => Promise<void>;
}

/**
 * The built cortex on loopback with `models` as its catalogue (written to <dir>/catalogue), its
 * data under <dir>/cortex-data and ADMIN_TOKEN as its admin token; `config` adds the rest;
 * `cli` is another build's cortex (the contention benchmark's baseline).
 */
export const startCortex = async (
  dir: string,
  models: readonly Record<string, unknown>[],
  config: Record<string, unknown>,
  cli = CORTEX_CLI,
): Promise<AppProcess> => {
  await mkdir(join(dir, "catalogue"), { recursive: true });
  await writeFile(join(dir, "catalogue", "models.yaml"), stringify({ models }));
  return startApp({
    cli,
    dir,
    file: "cortex.yaml",
    config: {
      catalogue: join(dir, "catalogue"),
      data_dir: join(dir, "cortex-data"),
      admin_token: ADMIN_TOKEN,
      ...config,
    },
    env: { CORTEX_LOG_LEVEL: "info" },
  });
};

/** cortex's `GET /api/fleet`, as the admin. */
export const fleetOf = async (cortexUrl: string): Promise<FleetSnapshot> =>
  (await (
    await fetch(`${cortexUrl}/api/fleet`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  ).json()) as FleetSnapshot;

/**
 * A real neuron serving fake-harness models as a template harness, and a real cortex in front
 * of it, both as built processes on loopback.
 */
export const startStack = async (
  models: readonly FakeModel[],
  options: {
    readonly cortex?: Record<string, unknown>;
    /** More catalogue entries (e.g. the built-in llama.cpp harness). */
    readonly catalogue?: readonly Record<string, unknown>[];
    /** Writes model files into the neuron's models_dir before it starts. */
    readonly setup?: (modelsDir: string) => Promise<void>;
  } = {},
): Promise<Stack> => {
  const { dir, modelsDir, children, stop } = await benchWorkspace("cortex-bench-");
  try {
    await options.setup?.(modelsDir);
    for (const model of models)
      await writeFile(join(modelsDir, `${model.id}.json`), JSON.stringify(model.behaviour));
    const neuron = await startApp({
      cli: NEURON_CLI,
      dir,
      file: "neuron.yaml",
      config: {
        name: "bench",
        token: NEURON_TOKEN,
        models_dir: modelsDir,
        state_dir: join(dir, "state"),
        stop_grace_ms: 2000,
        harnesses: {
          llamacpp: {},
          fake: FAKE_HARNESS_TEMPLATE,
        },
      },
      env: { NEURON_LOG_LEVEL: "info" },
    });
    children.push(neuron);
    const cortex = await startCortex(
      dir,
      [
        ...models.map((model) => ({
          id: model.id,
          harness: "fake",
          source: `${model.id}.json`,
          runs_on: "cpu",
          vram_mb: 0,
          max_concurrency: model.maxConcurrency ?? 64,
          idle_ttl_s: 0,
        })),
        ...(options.catalogue ?? []),
      ],
      {
        poll_interval_ms: 1000,
        api_keys: [API_KEY],
        neurons: [{ name: "bench", url: neuron.url, token: NEURON_TOKEN }],
        ...options.cortex,
      },
    );
    children.push(cortex);
    await waitFor("the neuron healthy in cortex", async () => {
      const fleet = await fleetOf(cortex.url);
      return fleet.nodes.length > 0 && fleet.nodes.every((node) => node.healthy);
    });
    return { dir, neuron, cortex, stop };
  } catch (error) {
    await stop();
    throw error;
  }
};

/**
 * The port of the harness serving `modelId` in this stack, from its command line (`fileName`:
 * its model file under models/, the fake harness's behaviour file by default).
 */
export const harnessPort = (
  stack: Stack,
  modelId: string,
  fileName = `${modelId}.json`,
): number => {
  const file = join(stack.dir, "models", fileName);
  const worker = processesMentioning(file).find(
    (p) => !p.cmdline.includes("watchdog") && /--port \d+/.test(p.cmdline),
  );
  const port = Number(/--port (\d+)/.exec(worker?.cmdline ?? "")?.[1]);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no harness process for ${modelId}`);
  return port;
};

/** cortex_load_duration_seconds_count for `model`, summed over nodes and outcomes. */
export const loadsOf = async (cortexUrl: string, model: string): Promise<number> => {
  const metrics = await (await fetch(`${cortexUrl}/metrics`)).text();
  return metricSamples(metrics, "cortex_load_duration_seconds_count")
    .filter((sample) => sample.labels.includes(`model="${model}"`))
    .reduce((count, sample) => count + sample.value, 0);
};
