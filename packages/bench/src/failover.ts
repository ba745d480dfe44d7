import {
  type Apps,
  acceptsProfileKey,
  answeredByNode,
  type Fleet,
  type FleetModel,
  gitHead,
  runBuilds,
  startFleet,
} from "./contention-fleet.js";
import { measure, type Placed, startLoad } from "./failover-load.js";
import { ADMIN_TOKEN, fleetOf } from "./stack.js";
import {
  type BenchResult,
  type Budget,
  now,
  print,
  ROOT,
  round,
  sleep,
  table,
  writeReport,
} from "./support.js";

// Issue 16, measured: two real neurons serving one model (a fake harness, ~300 ms per answer)
// behind cortex with its default polling, a steady load of looping clients (JSON and streamed),
// and the second neuron failing mid-run: **hung** (SIGSTOP: its kernel still accepts
// connections, nothing answers; SIGCONT once the load is over) and **killed** (SIGKILL), a fresh
// fleet each → requests, successes, failures by status and code, the latency of the requests in
// flight at the failure or sent after it, the longest a request waited on the failed node, and
// when cortex stopped routing to it. `--baseline <root>` runs the same on another checkout's build.

export interface FailoverOptions {
  readonly deviceMb: number;
  readonly vramMb: number;
  /** The fake harness's delay before an answer and between stream chunks. */
  readonly latencyMs: number;
  readonly streamChunks: number;
  readonly maxConcurrency: number;
  /** Clients looping JSON requests, and clients looping streamed ones. */
  readonly jsonClients: number;
  readonly streamClients: number;
  /** Load before the failure, and after it until no new request is sent. */
  readonly beforeMs: number;
  readonly afterMs: number;
  /** A client gives up on a request after this long ("client timeout"). */
  readonly clientTimeoutMs: number;
}

export const FAILOVER_FULL: FailoverOptions = {
  deviceMb: 24_000,
  vramMb: 8_000,
  latencyMs: 300,
  streamChunks: 5,
  maxConcurrency: 16,
  jsonClients: 8,
  streamClients: 2,
  beforeMs: 4_000,
  afterMs: 15_000,
  // Longer than stream_idle_timeout_ms (120 s), so a build whose requests wait that long on a
  // hung node shows it instead of the client's own timeout.
  clientTimeoutMs: 130_000,
};
export const FAILOVER_SMOKE: FailoverOptions = {
  ...FAILOVER_FULL,
  jsonClients: 4,
  streamClients: 1,
  beforeMs: 1_000,
  afterMs: 3_000,
  clientTimeoutMs: 30_000,
};

/** cortex.yaml's defaults, which every run keeps (the fleet leaves poll_interval_ms out). */
const POLL_INTERVAL_MS = 2_000;
const POLL_TIMEOUT_MS = 1_500;
/** cortex's default; a poll that gets no answer at all no longer waits for this many. */
const UNHEALTHY_AFTER_FAILURES = 3;
/** How long a request on a node gone unhealthy may go without a byte (UNHEALTHY_GRACE_MS). */
const GRACE_MS = 2_000;
/**
 * The failure window: the first poll sent after the failure leaves up to one interval later and
 * gets no answer within its timeout, which makes the node suspect at once (2 s + 1.5 s).
 */
const WINDOW_MS = POLL_INTERVAL_MS + POLL_TIMEOUT_MS;
const BOUND_MS = WINDOW_MS + GRACE_MS;

type Scenario = "hung" | "killed";
const SIGNALS: Record<Scenario, NodeJS.Signals> = { hung: "SIGSTOP", killed: "SIGKILL" };
const MODEL = "chat";

/** When cortex first said `node` is unhealthy, from its event stream, on the client's clock. */
const watchHealth = async (cortexUrl: string, node: string) => {
  const abort = new AbortController();
  const flips: { atMs: number; healthy: boolean; error: string | null }[] = [];
  const res = await fetch(`${cortexUrl}/api/events`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, accept: "text/event-stream" },
    signal: abort.signal,
  });
  if (res.status !== 200 || !res.body) throw new Error(`GET /api/events: ${res.status}`);
  const body = res.body;
  const reading = (async () => {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of body) {
      const lines = (partial + decoder.decode(chunk as Uint8Array, { stream: true })).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.startsWith("data:")) continue;
        const event = JSON.parse(line.slice("data:".length)) as {
          type?: string;
          node?: string;
          healthy?: boolean;
          error?: string | null;
        };
        if (event.type === "node_health" && event.node === node)
          flips.push({ atMs: now(), healthy: event.healthy === true, error: event.error ?? null });
      }
    }
  })().catch(() => {
    // Aborted at the end, or cortex stopped: what came so far is what it said.
  });
  return {
    /** The first flip to unhealthy at or after `sinceMs`. */
    unhealthySince: (sinceMs: number) =>
      flips.find((flip) => !flip.healthy && flip.atMs >= sinceMs) ?? null,
    close: async () => {
      abort.abort();
      await reading;
    },
  };
};

/** The node cortex logged for each request that failed (`"msg":"request failed"`, warn). */
const failedNodes = (cortexOutput: string): Map<string, string> => {
  const nodes = new Map<string, string>();
  for (const line of cortexOutput.split("\n")) {
    if (!line.includes('"msg":"request failed"')) continue;
    try {
      const entry = JSON.parse(line) as { request_id?: string; node?: string };
      if (entry.request_id && entry.node) nodes.set(entry.request_id, entry.node);
    } catch {
      // A line cut by the output buffer's trim.
    }
  }
  return nodes;
};

const loadedOn = async (fleet: Fleet): Promise<string[]> =>
  (await fleetOf(fleet.cortex.url)).nodes
    .filter((node) => node.models.some((m) => m.id === MODEL && m.status === "loaded"))
    .map((node) => node.name);

/** Loads the model on every neuron (min_replicas does too where the build has it). */
const loadEverywhere = async (fleet: Fleet): Promise<void> => {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const loaded = await loadedOn(fleet);
    const missing = fleet.neurons.filter((neuron) => !loaded.includes(neuron.name));
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${MODEL} never loaded on ${missing[0]?.name}`);
    // A load under way elsewhere may be joined instead: the loop asks again until both hold it.
    await fetch(`${fleet.cortex.url}/api/models/load`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, node: missing[0]?.name }),
    }).then((res) => res.text());
    await sleep(200);
  }
};

const delta = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(after)
      .map(([node, n]) => [node, n - (before[node] ?? 0)] as const)
      .filter(([, n]) => n > 0),
  );

const runScenario = async (apps: Apps, scenario: Scenario, o: FailoverOptions) => {
  const replicas = (await acceptsProfileKey(apps.root, "min_replicas", 2))
    ? { min_replicas: 2, max_replicas: 2 }
    : {};
  const model: FleetModel = {
    id: MODEL,
    behaviour: { latency_ms: o.latencyMs, stream_chunks: o.streamChunks },
    profile: { vram_mb: o.vramMb, max_concurrency: o.maxConcurrency, ...replicas },
  };
  const fleet = await startFleet({
    apps,
    nodes: 2,
    deviceMb: o.deviceMb,
    models: [model],
    pollIntervalMs: null,
  });
  const failed = fleet.neurons[1];
  if (!failed) throw new Error("the fleet has no second neuron");
  let stopped = false;
  try {
    await loadEverywhere(fleet);
    const health = await watchHealth(fleet.cortex.url, failed.name);
    const load = startLoad({
      cortexUrl: fleet.cortex.url,
      model: MODEL,
      json: o.jsonClients,
      stream: o.streamClients,
      timeoutMs: o.clientTimeoutMs,
      tag: `${scenario}-${Date.now()}`,
    });
    await sleep(o.beforeMs);
    const answeredBefore = await answeredByNode(fleet.cortex.url, MODEL);
    const failMs = now();
    process.kill(failed.pid, SIGNALS[scenario]);
    stopped = scenario === "hung";
    await sleep(o.afterMs);
    const records = await load.stop();
    const endMs = now();
    const answeredAfter = await answeredByNode(fleet.cortex.url, MODEL);
    const flip = health.unhealthySince(failMs);
    await health.close();
    const logged = failedNodes(fleet.cortex.output());
    const placed: Placed[] = records.map((r) => ({
      ...r,
      servedBy: r.node || (logged.get(r.id) ?? ""),
    }));
    return {
      build: apps.label,
      scenario,
      signal: SIGNALS[scenario],
      failed_node: failed.name,
      ...measure(placed, failMs, failed.name, o.latencyMs),
      /** From the failure to cortex's `node_health` event saying the node is unhealthy. */
      unroutable_after_ms: flip === null ? null : round(flip.atMs - failMs),
      unhealthy_error: flip?.error ?? null,
      answered_after_failure_by_node: delta(answeredAfter, answeredBefore),
      load_after_failure_ms: round(endMs - failMs),
      records: placed.map((r) => ({
        id: r.id,
        kind: r.kind,
        sent_ms: round(r.sentMs - failMs),
        latency_ms: round(r.doneMs - r.sentMs),
        silence_ms: round(r.silenceMs),
        status: r.status,
        outcome: r.outcome,
        code: r.code,
        node: r.servedBy,
      })),
    };
  } finally {
    if (stopped) process.kill(failed.pid, "SIGCONT");
    await fleet.stop();
  }
};
type ScenarioRun = Awaited<ReturnType<typeof runScenario>>;

const runBuild = async (apps: Apps, o: FailoverOptions) => {
  const hung = await runScenario(apps, "hung", o);
  const killed = await runScenario(apps, "killed", o);
  return { build: apps.label, scenarios: [hung, killed] };
};
type BuildRun = Awaited<ReturnType<typeof runBuild>>;

const counts = (record: Record<string, number>): string =>
  Object.entries(record)
    .map(([key, n]) => `${n}× ${key}`)
    .join(", ") || "none";

const ms = (value: number | null): string => (value === null ? "none" : String(Math.round(value)));

const row = (s: ScenarioRun) => [
  s.build,
  `${s.scenario} (${s.signal})`,
  s.requests,
  s.successes,
  counts(s.failures),
  s.requests - s.clear,
  s.affected,
  Math.round(s.latency_affected_ms.p50),
  Math.round(s.latency_affected_ms.p99),
  Math.round(s.latency_affected_ms.max),
  Math.round(s.longest_wait_ms),
  ms(s.unroutable_after_ms),
  ms(s.last_sent_to_failed_ms),
  counts(s.answered_after_failure_by_node),
];

/** `351/351 (350 answered, 1 clear error, 0 unclear)`: how the requests ended. */
const endings = (s: ScenarioRun): string =>
  `${s.clear}/${s.requests} (${s.successes} answered, ${s.clear - s.successes} clear error(s), ${s.requests - s.clear} unclear)`;

const budgetsOf = (run: BuildRun, baseline: BuildRun | null): Budget[] =>
  run.scenarios.flatMap((s) => {
    const before = baseline?.scenarios.find((b) => b.scenario === s.scenario);
    const what = `failover (${s.scenario}, ${s.signal})`;
    return [
      {
        budget: `${what}: no request waits on it longer than the failure window + 2 s (${BOUND_MS} ms)`,
        measured: `${Math.round(s.longest_wait_ms)} ms, unroutable after ${ms(s.unroutable_after_ms)} ms${before ? `; before: ${Math.round(before.longest_wait_ms)} ms` : ""}`,
        pass: s.affected > 0 && s.longest_wait_ms <= BOUND_MS,
      },
      {
        budget: `${what}: every request succeeds or ends with a clear error`,
        measured: `${endings(s)}${before ? `; before: ${before.clear}/${before.requests}` : ""}`,
        pass: s.requests > 0 && s.clear === s.requests,
      },
    ];
  });

export const runFailover = async (
  options: FailoverOptions,
  baselineRoot?: string,
): Promise<BenchResult> => {
  const { baseline, current, runs } = await runBuilds(baselineRoot, (apps) =>
    runBuild(apps, options),
  );
  const budgets = budgetsOf(current, baseline);
  writeReport("failover", {
    benchmark: "failover",
    date: new Date().toISOString(),
    options,
    defaults: {
      poll_interval_ms: POLL_INTERVAL_MS,
      poll_timeout_ms: POLL_TIMEOUT_MS,
      unhealthy_after_failures: UNHEALTHY_AFTER_FAILURES,
      stream_idle_timeout_ms: 120_000,
    },
    window_ms: WINDOW_MS,
    bound_ms: BOUND_MS,
    head: gitHead(ROOT),
    scenarios: current.scenarios,
    baseline: baseline && { root: baselineRoot, ...baseline },
    budgets,
  });
  const t = table(
    [
      "build",
      "second neuron",
      "requests",
      "successes",
      "failures",
      "unclear",
      "affected",
      "p50 ms",
      "p99 ms",
      "max ms",
      "longest wait on it ms",
      "unroutable after ms",
      "last request sent to it ms",
      "answers after the failure",
    ],
    runs.flatMap((run) => run.scenarios.map(row)),
  );
  print("Failover", t.text);
  const o = options;
  const markdown = [
    `Two neurons (one static ${o.deviceMb} MB GPU each) hold one model of ${o.vramMb} MB (fake harness: ${o.latencyMs} ms before an answer and between its ${o.streamChunks} stream chunks, max_concurrency ${o.maxConcurrency}) behind cortex with its default polling (poll_interval_ms ${POLL_INTERVAL_MS}, poll_timeout_ms ${POLL_TIMEOUT_MS}, unhealthy_after_failures ${UNHEALTHY_AFTER_FAILURES}, stream_idle_timeout_ms 120000). ${o.jsonClients} clients loop JSON chat requests and ${o.streamClients} loop streamed ones (a client timeout of ${o.clientTimeoutMs / 1000} s); ${o.beforeMs / 1000} s in, the second neuron is SIGSTOPped (hung: its kernel still accepts connections; SIGCONT once every request has ended) or SIGKILLed, and the clients go on for ${o.afterMs / 1000} s more. A fresh fleet for each.`,
    "",
    t.markdown,
    "",
    `Failures: status and code (\`200 error event …\`: a stream that ended with an OpenAI error event; \`cut\`: an answer that broke off; \`0 client timeout\`). Unclear: requests that ended with neither an answer nor a clear error (a status with the OpenAI envelope, or an error event). Affected: requests in flight at the failure or sent after it; p50/p99/max is their latency. Longest wait on it: a request's longest stretch without a byte (sending to the head, between chunks, the last one to the end), less the ${o.latencyMs} ms any node takes before each byte — an upper bound on the time spent on the failed node. The budget assumes a failure window of one poll that gets no answer (a healthy node that gives none is suspect at once): up to ${POLL_INTERVAL_MS / 1000} s until it leaves + ${POLL_TIMEOUT_MS / 1000} s timeout = ${WINDOW_MS / 1000} s, plus the ${GRACE_MS / 1000} s grace. Unroutable after: from the failure to cortex's \`node_health\` event for it. Last request sent to it: the latest request sent after the failure that ended on it (\`X-Cortex-Node\`, or cortex's \`request failed\` log line); a request retried elsewhere names the node that answered. Answers after the failure: \`cortex_requests_total\` 200s per node.`,
    ...(baseline
      ? [
          "",
          `"${baseline.build}" is the same run on the build of another checkout (\`--baseline ${baselineRoot}\`); the budgets judge this build only.`,
        ]
      : []),
  ].join("\n");
  return { name: "failover", title: "Failover", markdown, budgets };
};
