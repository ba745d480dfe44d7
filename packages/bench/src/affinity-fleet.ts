import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "@cortex/testkit";
import type { AffinityOptions } from "./affinity.js";
import type { Message, Span } from "./affinity-load.js";
import { cortexMetric } from "./contention-fleet.js";
import { ADMIN_TOKEN, API_KEY, fleetOf, NEURON_TOKEN, startCortex } from "./stack.js";
import { type AppProcess, benchWorkspace, NEURON_CLI, startApp } from "./support.js";

// The affinity benchmark's fleet: three real neurons, each running this package's
// affinity-harness as a template harness with a static GPU, the model loaded on every one, the
// built cortex in front; and the calls the benchmark makes of it.

const MODEL = "chat";
export const NODES = ["gpu-a", "gpu-b", "gpu-c"] as const;
export const DEVICE_MB = 24_000;
const VRAM_MB = 8000;
/** cortex.yaml's default `affinity.load_factor`, which both runs keep. */
export const LOAD_FACTOR = 1.25;

/** The harness program (compiled beside this file): the fake harness that logs its answers. */
const HARNESS_ENTRY = fileURLToPath(new URL("./affinity-harness.js", import.meta.url));

export type Mode = "on" | "off";
export const MODES: readonly Mode[] = ["on", "off"];

export interface AffinityFleet {
  readonly cortex: AppProcess;
  /** Every answer each node's harness gave so far. */
  readonly spans: () => Record<string, Span[]>;
  readonly stop: () => Promise<void>;
}

/** A harness log: one `{start, end}` per line (the last may be half written). */
const readSpans = (file: string): Span[] =>
  existsSync(file)
    ? readFileSync(file, "utf8")
        .split("\n")
        .filter((line) => line.endsWith("}"))
        .map((line) => JSON.parse(line) as Span)
    : [];

/** Three neurons with one static GPU each, the model loaded on every one, cortex in front. */
export const startAffinityFleet = async (
  options: AffinityOptions,
  affinity: boolean,
): Promise<AffinityFleet> => {
  const { dir, modelsDir, children, stop } = await benchWorkspace("cortex-bench-affinity-");
  try {
    const logOf = (node: string) => join(dir, `${node}-answers.jsonl`);
    await writeFile(
      join(modelsDir, `${MODEL}.json`),
      JSON.stringify({ latency_ms: options.latencyMs }),
    );
    const neurons: { name: string; url: string }[] = [];
    for (const name of NODES) {
      const app = await startApp({
        cli: NEURON_CLI,
        dir,
        file: `${name}.yaml`,
        config: {
          name,
          token: NEURON_TOKEN,
          models_dir: modelsDir,
          state_dir: join(dir, name, "state"),
          stop_grace_ms: 2000,
          devices: [{ name: "bench GPU", vram_total_mb: DEVICE_MB }],
          harnesses: {
            affinity: {
              command: [
                process.execPath,
                HARNESS_ENTRY,
                ...["--model", "{model_path}", "--port", "{port}", "--log", logOf(name)],
              ],
            },
          },
        },
        env: { NEURON_LOG_LEVEL: "info" },
      });
      children.push(app);
      neurons.push({ name, url: app.url });
    }
    const cortex = await startCortex(
      dir,
      [
        {
          id: MODEL,
          harness: "affinity",
          source: `${MODEL}.json`,
          vram_mb: VRAM_MB,
          max_concurrency: options.maxConcurrency,
          idle_ttl_s: 0,
        },
      ],
      {
        poll_interval_ms: 500,
        api_keys: [API_KEY],
        neurons: neurons.map((neuron) => ({ ...neuron, token: NEURON_TOKEN })),
        affinity: { enabled: affinity, load_factor: LOAD_FACTOR },
      },
    );
    children.push(cortex);
    await waitFor("every neuron healthy in cortex", async () => {
      const fleet = await fleetOf(cortex.url);
      return fleet.nodes.length === NODES.length && fleet.nodes.every((node) => node.healthy);
    });
    for (const node of NODES) await loadModelOn(cortex.url, node);
    // Routing sees a replica once a poll has reported it loaded.
    await waitFor("the model loaded on every node in cortex's snapshot", async () => {
      const fleet = await fleetOf(cortex.url);
      return fleet.nodes.every((node) =>
        node.models.some((model) => model.id === MODEL && model.status === "loaded"),
      );
    });
    const spans = () => Object.fromEntries(NODES.map((node) => [node, readSpans(logOf(node))]));
    return { cortex, spans, stop };
  } catch (error) {
    await stop();
    throw error;
  }
};

/** `/api/models/load` for the model on one node (contention's `loadModel` places it anywhere). */
const loadModelOn = async (cortexUrl: string, node: string): Promise<void> => {
  const res = await fetch(`${cortexUrl}/api/models/load`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, node }),
  });
  if (res.status !== 200) throw new Error(`loading on ${node}: ${res.status} ${await res.text()}`);
};

/** One chat request through cortex: its status and the node that served it. */
export const chatTurn = async (cortexUrl: string, messages: Message[], timeoutMs: number) => {
  try {
    const res = await fetch(`${cortexUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages, max_tokens: 8 }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.arrayBuffer();
    return { status: res.status, node: res.headers.get("x-cortex-node") ?? "" };
  } catch {
    return { status: 0, node: "" };
  }
};

export const affinityCounts = async (cortexUrl: string) => ({
  hits: await cortexMetric(cortexUrl, "cortex_affinity_total", (l) => l.includes('outcome="hit"')),
  spills: await cortexMetric(cortexUrl, "cortex_affinity_total", (l) =>
    l.includes('outcome="spill"'),
  ),
});
