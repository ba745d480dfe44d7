import {
  type Apps,
  acceptsProfileKey,
  answeredByNode,
  burst,
  cortexMetric,
  type FleetModel,
  gitHead,
  loadModel,
  refusalsOf,
  runBuilds,
  startFleet,
} from "./contention-fleet.js";
import { fleetOf } from "./stack.js";
import {
  type BenchResult,
  type Budget,
  print,
  ROOT,
  round,
  spread,
  table,
  writeReport,
} from "./support.js";

// Issue 15, measured: (1) swap: one neuron with one 24000 MB GPU, three 16000 MB models that
// cannot be resident together, requests interleaved A B C A B C … all sent at once through
// cortex → successes, refusals, loads, models swapped out and the wait; (2) scale-out: two
// neurons, one model with max_concurrency 2 loaded before the clock starts, slow requests all
// at once, with max_replicas 1 and 2 (a fresh fleet each) → which nodes answered, wall time,
// requests/s and the ratio. `--baseline <root>` runs the same on another checkout's build.

export interface ContentionOptions {
  readonly swap: {
    readonly requests: number;
    readonly models: number;
    readonly deviceMb: number;
    readonly vramMb: number;
    readonly startDelayMs: number;
    readonly latencyMs: number;
    readonly maxConcurrency: number;
  };
  readonly scaleOut: {
    readonly requests: number;
    readonly deviceMb: number;
    readonly vramMb: number;
    readonly startDelayMs: number;
    readonly latencyMs: number;
    readonly maxConcurrency: number;
  };
  /** A client gives up on a request after this long (status 0, "client timeout"). */
  readonly clientTimeoutMs: number;
}

export const CONTENTION_FULL: ContentionOptions = {
  swap: {
    requests: 30,
    models: 3,
    deviceMb: 24_000,
    vramMb: 16_000,
    startDelayMs: 300,
    latencyMs: 200,
    maxConcurrency: 4,
  },
  scaleOut: {
    requests: 16,
    deviceMb: 24_000,
    vramMb: 16_000,
    startDelayMs: 300,
    latencyMs: 1000,
    maxConcurrency: 2,
  },
  clientTimeoutMs: 180_000,
};
export const CONTENTION_SMOKE: ContentionOptions = {
  swap: { ...CONTENTION_FULL.swap, requests: 6, startDelayMs: 50, latencyMs: 20 },
  scaleOut: { ...CONTENTION_FULL.scaleOut, requests: 4, startDelayMs: 50, latencyMs: 100 },
  // Short, so a scheduler that never answers costs the smoke test 30 s, not cortex's 60 s queue.
  clientTimeoutMs: 30_000,
};

/** cortex.yaml's default, which both runs keep (a build from before issue 15 has no such key). */
const SWAP_MAX_WAIT_MS = 30_000;
const MODEL_NAMES = ["model-a", "model-b", "model-c", "model-d", "model-e"];

const runSwap = async (apps: Apps, o: ContentionOptions["swap"], clientTimeoutMs: number) => {
  const ids = MODEL_NAMES.slice(0, o.models);
  const models: FleetModel[] = ids.map((id) => ({
    id,
    behaviour: { start_delay_ms: o.startDelayMs, latency_ms: o.latencyMs },
    profile: { vram_mb: o.vramMb, max_concurrency: o.maxConcurrency },
  }));
  const fleet = await startFleet({ apps, nodes: 1, deviceMb: o.deviceMb, models });
  try {
    const order = Array.from({ length: o.requests }, (_, i) => ids[i % ids.length] ?? "");
    const { outcomes, wallMs } = await burst(fleet.cortex.url, order, clientTimeoutMs);
    const neuron = fleet.neurons[0];
    const harnessLoadsByModel = Object.fromEntries(
      ids.map((id) => [id, neuron?.logged("model loaded", id) ?? 0]),
    );
    const answered = outcomes.filter((out) => out.status === 200);
    return {
      build: apps.label,
      requests: o.requests,
      successes: answered.length,
      refusals: refusalsOf(outcomes),
      // Loads cortex finished (success or failure), and harnesses the neuron saw become ready
      // (those count its own lazy reloads too).
      cortex_loads: await cortexMetric(fleet.cortex.url, "cortex_load_duration_seconds_count"),
      harness_loads: Object.values(harnessLoadsByModel).reduce((a, b) => a + b, 0),
      harness_loads_by_model: harnessLoadsByModel,
      swapped_out: (neuron?.logged("model evicted") ?? 0) + (neuron?.logged("model unloaded") ?? 0),
      cortex_evictions: await cortexMetric(fleet.cortex.url, "cortex_evictions_total"),
      // Issue 15's counter (0 on a build without it).
      cortex_swaps: await cortexMetric(fleet.cortex.url, "cortex_swaps_total"),
      neuron_lazy_reloads: neuron?.logged("lazy reload") ?? 0,
      wall_ms: round(wallMs),
      wait_answered_ms: spread(answered.map((out) => out.ms)),
      wait_all_ms: spread(outcomes.map((out) => out.ms)),
      wait_by_model_ms: Object.fromEntries(
        ids.map((id) => [
          id,
          spread(answered.filter((out) => out.model === id).map((out) => out.ms)),
        ]),
      ),
    };
  } finally {
    await fleet.stop();
  }
};

const runScaleOut = async (
  apps: Apps,
  o: ContentionOptions["scaleOut"],
  maxReplicas: number,
  clientTimeoutMs: number,
) => {
  // A build from before issue 15 refuses the key: there it runs without (its only behaviour).
  const honoured =
    maxReplicas === 1 || (await acceptsProfileKey(apps.root, "max_replicas", maxReplicas));
  const model: FleetModel = {
    id: "slow",
    behaviour: { start_delay_ms: o.startDelayMs, latency_ms: o.latencyMs },
    profile: {
      vram_mb: o.vramMb,
      max_concurrency: o.maxConcurrency,
      ...(honoured && maxReplicas > 1 ? { max_replicas: maxReplicas } : {}),
    },
  };
  const fleet = await startFleet({ apps, nodes: 2, deviceMb: o.deviceMb, models: [model] });
  try {
    await loadModel(fleet.cortex.url, model.id);
    const loadsBefore = fleet.neurons.reduce((n, neuron) => n + neuron.logged("model loaded"), 0);
    const order = Array.from({ length: o.requests }, () => model.id);
    const { outcomes, wallMs } = await burst(fleet.cortex.url, order, clientTimeoutMs);
    const byNode = await answeredByNode(fleet.cortex.url, model.id);
    const replicas = (await fleetOf(fleet.cortex.url)).nodes.filter((node) =>
      node.models.some((m) => m.id === model.id && m.status === "loaded"),
    ).length;
    const successes = outcomes.filter((out) => out.status === 200).length;
    return {
      build: apps.label,
      max_replicas: maxReplicas,
      max_replicas_honoured: honoured,
      requests: o.requests,
      successes,
      refusals: refusalsOf(outcomes),
      answered_by_node: byNode,
      nodes_answering: Object.values(byNode).filter((n) => n > 0).length,
      replicas_loaded_after: replicas,
      cortex_scale_outs: await cortexMetric(fleet.cortex.url, "cortex_scale_outs_total"),
      loads_during_burst:
        fleet.neurons.reduce((n, neuron) => n + neuron.logged("model loaded"), 0) - loadsBefore,
      wall_ms: round(wallMs),
      requests_per_s: round(successes / (wallMs / 1000), 2),
      latency_ms: spread(outcomes.map((out) => out.ms)),
    };
  } finally {
    await fleet.stop();
  }
};

type SwapRun = Awaited<ReturnType<typeof runSwap>>;
type ScaleRun = Awaited<ReturnType<typeof runScaleOut>>;

const runBuild = async (apps: Apps, options: ContentionOptions) => {
  const swap = await runSwap(apps, options.swap, options.clientTimeoutMs);
  const one = await runScaleOut(apps, options.scaleOut, 1, options.clientTimeoutMs);
  const two = await runScaleOut(apps, options.scaleOut, 2, options.clientTimeoutMs);
  const ratio = round(two.requests_per_s / one.requests_per_s, 2);
  return { build: apps.label, swap, scale_out: [one, two], scale_out_ratio: ratio };
};
type BuildRun = Awaited<ReturnType<typeof runBuild>>;

const counts = (record: Record<string, number>): string =>
  Object.entries(record)
    .map(([key, n]) => `${n}× ${key}`)
    .join(", ") || "none";

const swapRow = (s: SwapRun) => [
  s.build,
  s.requests,
  s.successes,
  counts(s.refusals),
  s.cortex_loads,
  s.harness_loads,
  s.swapped_out,
  s.wait_answered_ms.p50,
  s.wait_answered_ms.p99,
  s.wait_answered_ms.max,
  round(s.wall_ms / 1000, 2),
];

const scaleRow = (s: ScaleRun, ratio: number) => [
  s.build,
  `${s.max_replicas}${s.max_replicas_honoured ? "" : " (unknown key: 1)"}`,
  s.requests,
  s.successes,
  counts(s.answered_by_node),
  s.loads_during_burst,
  round(s.wall_ms / 1000, 2),
  s.requests_per_s,
  s.max_replicas === 1 ? 1 : ratio,
];

const budgetsOf = (run: BuildRun, options: ContentionOptions): Budget[] => {
  const { swap } = run;
  const o = options.swap;
  // The starvation bound: swap_max_wait_ms, then the resident model's drain (one
  // request's latency) and the load, and the request's own answer.
  const bound = SWAP_MAX_WAIT_MS + o.latencyMs + o.startDelayMs + o.latencyMs;
  const [one, two] = run.scale_out;
  return [
    {
      budget: `contention: all ${o.requests} interleaved requests for ${o.models} models that cannot be resident together succeed`,
      measured: `${swap.successes}/${swap.requests} (refused: ${counts(swap.refusals)})`,
      pass: swap.successes === o.requests,
    },
    {
      budget: `contention: one load per model (${o.models}), not one per change of model`,
      measured: `${swap.harness_loads} harness load(s), ${swap.cortex_loads} by cortex, ${swap.swapped_out} swapped out (cortex_swaps_total ${swap.cortex_swaps})`,
      pass: swap.harness_loads === o.models && swap.successes === o.requests,
    },
    {
      budget: `contention: no request waits longer than swap_max_wait_ms + drain + load (${bound} ms)`,
      measured: `max ${swap.wait_answered_ms.max} ms, p99 ${swap.wait_answered_ms.p99} ms (answered requests)`,
      pass: swap.successes === o.requests && swap.wait_answered_ms.max <= bound,
    },
    {
      budget: "scale-out: max_replicas 2 on two nodes ≥ 1.5 × the requests/s of max_replicas 1",
      measured: `${run.scale_out_ratio} × (${two?.requests_per_s} vs ${one?.requests_per_s} req/s; nodes answering: ${two?.nodes_answering} vs ${one?.nodes_answering})`,
      pass:
        run.scale_out_ratio >= 1.5 &&
        run.scale_out.every((sc) => sc.successes === options.scaleOut.requests),
    },
  ];
};

export const runContention = async (
  options: ContentionOptions,
  baselineRoot?: string,
): Promise<BenchResult> => {
  const { baseline, current, runs } = await runBuilds(baselineRoot, (apps) =>
    runBuild(apps, options),
  );
  const budgets = budgetsOf(current, options);
  writeReport("contention", {
    benchmark: "contention",
    date: new Date().toISOString(),
    options,
    swap_max_wait_ms: SWAP_MAX_WAIT_MS,
    head: gitHead(ROOT),
    swap: current.swap,
    scale_out: current.scale_out,
    scale_out_ratio: current.scale_out_ratio,
    baseline: baseline && { root: baselineRoot, ...baseline },
    budgets,
  });
  const s = options.swap;
  const swapTable = table(
    [
      "build",
      "requests",
      "successes",
      "refused",
      "loads (cortex)",
      "harness loads",
      "swapped out",
      "wait p50 ms",
      "wait p99 ms",
      "wait max ms",
      "wall s",
    ],
    runs.map((run) => swapRow(run.swap)),
  );
  const x = options.scaleOut;
  const scaleTable = table(
    [
      "build",
      "max_replicas",
      "requests",
      "successes",
      "answered by node",
      "loads during the burst",
      "wall s",
      "requests/s",
      "vs max_replicas 1",
    ],
    runs.flatMap((run) => run.scale_out.map((sc) => scaleRow(sc, run.scale_out_ratio))),
  );
  print("Contention: swap", swapTable.text);
  print("Contention: scale-out", scaleTable.text);
  const markdown = [
    `Swap: one neuron with one ${s.deviceMb} MB GPU (a static device), ${s.models} models of ${s.vramMb} MB (fake harness: ${s.startDelayMs} ms to start, ${s.latencyMs} ms per answer, max_concurrency ${s.maxConcurrency}); ${s.requests} requests interleaved across them (A B C A B C …), all sent at once through cortex with swap_max_wait_ms at its default (${SWAP_MAX_WAIT_MS}). Loads: cortex's \`cortex_load_duration_seconds_count\` and the harnesses the neuron logged ready; swapped out: models the neuron evicted or unloaded; wait: from sending to the end of the answer, answered requests only.`,
    "",
    swapTable.markdown,
    "",
    `Scale-out: two neurons with one ${x.deviceMb} MB GPU each, one model of ${x.vramMb} MB with max_concurrency ${x.maxConcurrency} (${x.startDelayMs} ms to start, ${x.latencyMs} ms per answer), loaded through \`/api/models/load\` before the clock starts; ${x.requests} requests at once, a fresh fleet for each max_replicas. Nodes from \`cortex_requests_total\`.`,
    "",
    scaleTable.markdown,
    ...(baseline
      ? [
          "",
          `"${baseline.build}" is the same run on the build of another checkout (\`--baseline ${baselineRoot}\`); the budgets judge this build only. A build that does not know \`max_replicas\` runs without it ("unknown key: 1").`,
        ]
      : []),
  ].join("\n");
  return { name: "contention", title: "Contention", markdown, budgets };
};
