import { type ChildProcess, execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { FAKE_HARNESS_TEMPLATE, waitFor } from "@cortex/testkit";
import { ADMIN_TOKEN, API_KEY, fleetOf, NEURON_TOKEN, startCortex } from "./stack.js";
import {
  type AppProcess,
  benchWorkspace,
  CORTEX_CLI,
  metricSamples,
  NEURON_CLI,
  now,
  ROOT,
  startApp,
} from "./support.js";

// The contention benchmark's fleet: real neurons, each with one static GPU of its own, serving
// fake-harness models as a template harness, and a real cortex in front; built processes of
// this checkout or of another one (`Apps`), so the same scenario measures a build from before.

/** Which built cortex and neuron to run. */
export interface Apps {
  readonly label: string;
  readonly cortex: string;
  readonly neuron: string;
  /** The repository the apps were built in (its packages/protocol decides what it accepts). */
  readonly root: string;
}

export const THIS_BUILD = (root: string): Apps => ({
  label: "this build",
  cortex: CORTEX_CLI,
  neuron: NEURON_CLI,
  root,
});

export const appsIn = (root: string, label: string): Apps => ({
  label,
  cortex: join(root, "apps/cortex/dist/cli.js"),
  neuron: join(root, "apps/neuron/dist/cli.js"),
  root,
});

/** The short commit of the checkout at `root` (the path itself when git cannot say). */
export const gitHead = (root: string): string => {
  try {
    return execFileSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
    }).trim();
  } catch {
    return root;
  }
};

/**
 * Runs a scenario on this build, and first on the build of another checkout (`--baseline`)
 * when one is given, so both sit side by side in one report.
 */
export const runBuilds = async <R>(
  baselineRoot: string | undefined,
  run: (apps: Apps) => Promise<R>,
): Promise<{ baseline: R | null; current: R; runs: R[] }> => {
  const baseline =
    baselineRoot === undefined
      ? null
      : await run(appsIn(baselineRoot, `before (${gitHead(baselineRoot)})`));
  const current = await run(THIS_BUILD(ROOT));
  return { baseline, current, runs: baseline ? [baseline, current] : [current] };
};

/** Lines with `"msg":"<msg>"` a process logs, counted as they come, per `model` field. */
const countLogLines = (child: ChildProcess, messages: readonly string[]) => {
  const counts = new Map<string, number>();
  let partial = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      const msg = /"msg":"([^"]*)"/.exec(line)?.[1];
      if (msg === undefined || !messages.includes(msg)) continue;
      const model = /"model":"([^"]*)"/.exec(line)?.[1] ?? "";
      const key = `${msg}\n${model}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  });
  return (msg: string, model?: string): number =>
    [...counts].reduce(
      (sum, [key, n]) =>
        key.startsWith(`${msg}\n`) && (model === undefined || key === `${msg}\n${model}`)
          ? sum + n
          : sum,
      0,
    );
};

/** What the neuron logs once per harness that became ready, and per model it stopped for room. */
const NEURON_EVENTS = ["model loaded", "model evicted", "model unloaded", "lazy reload"] as const;

export interface FleetNeuron extends AppProcess {
  readonly name: string;
  /** How often this neuron logged `msg` (one of NEURON_EVENTS), for `model` or any. */
  readonly logged: (msg: (typeof NEURON_EVENTS)[number], model?: string) => number;
}

export interface Fleet {
  readonly dir: string;
  readonly cortex: AppProcess;
  readonly neurons: readonly FleetNeuron[];
  readonly stop: () => Promise<void>;
}

export interface FleetModel {
  readonly id: string;
  /** The fake harness's behaviour file (testkit FakeBehaviour). */
  readonly behaviour: Record<string, unknown>;
  /** Catalogue keys beyond id, harness and source. */
  readonly profile: Record<string, unknown>;
}

/** `nodes` neurons with one static device of `deviceMb` each, and cortex in front of them. */
export const startFleet = async (options: {
  readonly apps: Apps;
  readonly nodes: number;
  readonly deviceMb: number;
  readonly models: readonly FleetModel[];
  /**
   * cortex.yaml's poll_interval_ms: 500 (quick polls) unless given; null leaves the key out, so
   * cortex polls at its own default (the failover benchmark measures the default failure window).
   */
  readonly pollIntervalMs?: number | null;
}): Promise<Fleet> => {
  const { dir, modelsDir, children, stop } = await benchWorkspace("cortex-bench-contention-");
  try {
    for (const model of options.models)
      await writeFile(join(modelsDir, `${model.id}.json`), JSON.stringify(model.behaviour));
    const neurons: FleetNeuron[] = [];
    for (let i = 0; i < options.nodes; i += 1) {
      const name = `gpu-${String.fromCharCode(97 + i)}`;
      const app = await startApp({
        cli: options.apps.neuron,
        dir,
        file: `${name}.yaml`,
        config: {
          name,
          token: NEURON_TOKEN,
          models_dir: modelsDir,
          state_dir: join(dir, name, "state"),
          stop_grace_ms: 2000,
          devices: [{ name: "bench GPU", vram_total_mb: options.deviceMb }],
          harnesses: { fake: FAKE_HARNESS_TEMPLATE },
        },
        env: { NEURON_LOG_LEVEL: "info" },
      });
      children.push(app);
      neurons.push({ ...app, name, logged: countLogLines(app.child, NEURON_EVENTS) });
    }
    const cortex = await startCortex(
      dir,
      options.models.map((model) => ({
        id: model.id,
        harness: "fake",
        source: `${model.id}.json`,
        idle_ttl_s: 0,
        ...model.profile,
      })),
      {
        ...(options.pollIntervalMs === null
          ? {}
          : { poll_interval_ms: options.pollIntervalMs ?? 500 }),
        api_keys: [API_KEY],
        neurons: neurons.map((neuron) => ({
          name: neuron.name,
          url: neuron.url,
          token: NEURON_TOKEN,
        })),
      },
      options.apps.cortex,
    );
    children.push(cortex);
    await waitFor("every neuron healthy in cortex", async () => {
      const fleet = await fleetOf(cortex.url);
      return fleet.nodes.length === options.nodes && fleet.nodes.every((node) => node.healthy);
    });
    return { dir, cortex, neurons, stop };
  } catch (error) {
    await stop();
    throw error;
  }
};

/** Whether the build in `root` accepts catalogue key `key` (its own protocol schema decides). */
export const acceptsProfileKey = async (
  root: string,
  key: string,
  value: unknown,
): Promise<boolean> => {
  const url = pathToFileURL(join(root, "packages/protocol/dist/index.js")).href;
  const protocol = (await import(url)) as {
    ModelProfile: { safeParse: (value: unknown) => { success: boolean } };
  };
  const profile = { id: "probe", harness: "fake", source: "probe.json", vram_mb: 0 };
  return protocol.ModelProfile.safeParse({ ...profile, [key]: value }).success;
};

/** Makes cortex load `model` (wherever it places it) and resolves once it is loaded. */
export const loadModel = async (cortexUrl: string, model: string): Promise<void> => {
  const res = await fetch(`${cortexUrl}/api/models/load`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ model }),
  });
  if (res.status !== 200) throw new Error(`loading ${model}: ${res.status} ${await res.text()}`);
};

export interface Outcome {
  readonly model: string;
  readonly status: number;
  /** The error envelope's `code` (or type) of a refusal; "" for a success. */
  readonly code: string;
  readonly ms: number;
}

/** One chat request per entry of `models`, all sent at once; resolves when every one is answered. */
export const burst = async (
  cortexUrl: string,
  models: readonly string[],
  timeoutMs: number,
): Promise<{ outcomes: Outcome[]; wallMs: number }> => {
  const start = now();
  const outcomes = await Promise.all(
    models.map(async (model): Promise<Outcome> => {
      const sent = now();
      try {
        const res = await fetch(`${cortexUrl}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
          body: JSON.stringify({
            model,
            messages: [{ role: "user", content: "Hi" }],
            max_tokens: 8,
          }),
          signal: AbortSignal.timeout(timeoutMs),
        });
        const text = await res.text();
        let code = "";
        if (res.status !== 200) {
          try {
            const error = (JSON.parse(text) as { error?: { code?: string; type?: string } }).error;
            code = error?.code ?? error?.type ?? "";
          } catch {
            code = "not JSON";
          }
        }
        return { model, status: res.status, code, ms: now() - sent };
      } catch (error) {
        const timedOut = error instanceof Error && error.name === "TimeoutError";
        return {
          model,
          status: 0,
          code: timedOut ? "client timeout" : "network",
          ms: now() - sent,
        };
      }
    }),
  );
  return { outcomes, wallMs: now() - start };
};

/** `"503 no_capacity": 20`-style counts of the refusals among `outcomes`. */
export const refusalsOf = (outcomes: readonly Outcome[]): Record<string, number> => {
  const refusals: Record<string, number> = {};
  for (const o of outcomes.filter((o) => o.status !== 200)) {
    const key = `${o.status} ${o.code}`.trim();
    refusals[key] = (refusals[key] ?? 0) + 1;
  }
  return refusals;
};

/** The sum of metric `name` in cortex's `/metrics`, over the samples whose labels hold `match`. */
export const cortexMetric = async (
  cortexUrl: string,
  name: string,
  match: (labels: string) => boolean = () => true,
): Promise<number> => {
  const text = await (await fetch(`${cortexUrl}/metrics`)).text();
  return metricSamples(text, name)
    .filter((sample) => match(sample.labels))
    .reduce((sum, sample) => sum + sample.value, 0);
};

/** Requests cortex answered 200 for `model`, per serving node (`cortex_requests_total`). */
export const answeredByNode = async (
  cortexUrl: string,
  model: string,
): Promise<Record<string, number>> => {
  const text = await (await fetch(`${cortexUrl}/metrics`)).text();
  const byNode: Record<string, number> = {};
  for (const sample of metricSamples(text, "cortex_requests_total")) {
    if (!sample.labels.includes(`model="${model}"`) || !sample.labels.includes('status="200"'))
      continue;
    const node = /node="([^"]*)"/.exec(sample.labels)?.[1] ?? "?";
    byNode[node] = (byNode[node] ?? 0) + sample.value;
  }
  return byNode;
};
