import {
  type AffinityFleet,
  affinityCounts,
  chatTurn,
  DEVICE_MB,
  LOAD_FACTOR,
  MODES,
  type Mode,
  NODES,
  startAffinityFleet,
} from "./affinity-fleet.js";
import {
  homesOf,
  runWaves,
  type Shape,
  servedBy,
  shareOnFirstReplica,
  shareOnPreviousReplica,
  type TurnRecord,
  type Wave,
  waveLoad,
  waveWindows,
} from "./affinity-load.js";
import { type BenchResult, type Budget, now, print, round, table, writeReport } from "./support.js";

// Issue 16, measured: three replicas of one model (real neurons, each running this package's
// affinity-harness as a template harness, static GPUs) behind the built cortex; conversations
// that send their whole history again each turn, in waves of a few clients at a time; the same
// load with affinity on and off, a fresh fleet for each. Which replica served each turn
// (X-Cortex-Node), how many requests each replica had in flight at once (from the harnesses'
// logs), and cortex's hits and spills (`cortex_affinity_total`).

export interface AffinityOptions {
  readonly waves: readonly Wave[];
  readonly turns: number;
  /** Answer latency of every harness (fake harness `latency_ms`). */
  readonly latencyMs: number;
  readonly maxConcurrency: number;
  readonly shapes: readonly Shape[];
  /** Rounds of the waves per load shape, each with conversations of its own: pooled. */
  readonly rounds: number;
  /** A client gives up on a request after this long. */
  readonly clientTimeoutMs: number;
}

export const AFFINITY_FULL: AffinityOptions = {
  waves: [
    { clients: 2, conversations: 10 },
    { clients: 5, conversations: 10 },
    { clients: 10, conversations: 10 },
  ],
  turns: 6,
  latencyMs: 40,
  maxConcurrency: 8,
  shapes: [
    { name: "back to back", maxThinkMs: 0 },
    { name: "thinking 0-80 ms", maxThinkMs: 80 },
  ],
  rounds: 3,
  clientTimeoutMs: 60_000,
};
export const AFFINITY_SMOKE: AffinityOptions = {
  ...AFFINITY_FULL,
  waves: [
    { clients: 1, conversations: 2 },
    { clients: 3, conversations: 3 },
  ],
  turns: 2,
  latencyMs: 5,
  shapes: [
    { name: "back to back", maxThinkMs: 0 },
    { name: "thinking 0-10 ms", maxThinkMs: 10 },
  ],
  rounds: 1,
  clientTimeoutMs: 30_000,
};

/** One round of the waves: every conversation new to the fleet (its table remembers them). */
const runRound = async (
  fleet: AffinityFleet,
  options: AffinityOptions,
  shape: Shape,
  seed: number,
  salt: string,
) => {
  const records = await runWaves({
    waves: options.waves,
    turns: options.turns,
    shape,
    seed,
    salt,
    send: (messages) => chatTurn(fleet.cortex.url, messages, options.clientTimeoutMs),
  });
  const spans = fleet.spans();
  const windows = waveWindows(records);
  const waves = options.waves.map((wave, w) =>
    waveLoad(spans, windows[w] ?? { start: 0, end: 0 }, wave.clients, NODES, LOAD_FACTOR),
  );
  return { records, waves };
};

/** Each wave's peaks over the rounds: the most each replica had in flight in any of them. */
const worstOf = (rounds: readonly Awaited<ReturnType<typeof runRound>>[]) =>
  (rounds[0]?.waves ?? []).map((first, w) => {
    const all = rounds.map((r) => r.waves[w] ?? first);
    const peaks = Object.fromEntries(
      NODES.map((node) => [node, Math.max(...all.map((wave) => wave.peak_in_flight[node] ?? 0))]),
    );
    const busiest = Math.max(...all.map((wave) => wave.busiest_peak));
    return {
      ...first,
      peak_in_flight: peaks,
      busiest_peak: busiest,
      busiest_over_mean: round(busiest / (first.clients / NODES.length), 2),
    };
  });

const runShape = async (
  fleet: AffinityFleet,
  options: AffinityOptions,
  mode: Mode,
  shape: Shape,
  index: number,
) => {
  const before = await affinityCounts(fleet.cortex.url);
  const start = now();
  const rounds: Awaited<ReturnType<typeof runRound>>[] = [];
  for (let r = 0; r < options.rounds; r += 1)
    rounds.push(await runRound(fleet, options, shape, 16 + 100 * index + r, ` #${index}.${r}`));
  const wallMs = now() - start;
  const after = await affinityCounts(fleet.cortex.url);
  // Every round's conversations, numbered apart.
  const records: TurnRecord[] = rounds.flatMap((r, i) =>
    r.records.map((record) => ({ ...record, conversation: record.conversation + i * 1_000_000 })),
  );
  const waves = worstOf(rounds);
  const firstShares = rounds.map((r) => round(shareOnFirstReplica(r.records)));
  return {
    mode,
    shape: shape.name,
    max_think_ms: shape.maxThinkMs,
    rounds: rounds.length,
    turns: records.length,
    successes: records.filter((record) => record.status === 200).length,
    share_first_turn_replica: round(shareOnFirstReplica(records)),
    share_first_turn_replica_by_round: firstShares,
    share_previous_turn_replica: round(shareOnPreviousReplica(records)),
    share_previous_turn_replica_by_round: rounds.map((r) =>
      round(shareOnPreviousReplica(r.records)),
    ),
    conversations_by_home: homesOf(records),
    served_by_node: servedBy(records),
    waves,
    // Over the waves with a request per replica at least: below that the mean is a fraction.
    busiest_over_mean: Math.max(
      ...waves.filter((wave) => wave.clients >= NODES.length).map((wave) => wave.busiest_over_mean),
    ),
    within_bound: waves.every((wave) => wave.busiest_peak <= wave.bound),
    affinity_hits: after.hits - before.hits,
    affinity_spills: after.spills - before.spills,
    wall_ms: round(wallMs),
  };
};
type ShapeRun = Awaited<ReturnType<typeof runShape>>;

const runMode = async (options: AffinityOptions, mode: Mode): Promise<ShapeRun[]> => {
  const fleet = await startAffinityFleet(options, mode === "on");
  try {
    const runs: ShapeRun[] = [];
    for (const [index, shape] of options.shapes.entries())
      runs.push(await runShape(fleet, options, mode, shape, index));
    return runs;
  } finally {
    await fleet.stop();
  }
};

const percent = (share: number): string => `${round(share * 100, 1)} %`;

/** The pooled share, and each round's when there were several. */
const shareText = (pooled: number, byRound: readonly number[]): string =>
  byRound.length > 1
    ? `${percent(pooled)} (rounds ${byRound.map((share) => round(share * 100, 1)).join(", ")})`
    : percent(pooled);

const counts = (record: Record<string, number>): string =>
  NODES.map((node) => `${record[node] ?? 0}`).join("/");

const budgetsOf = (runs: readonly ShapeRun[], options: AffinityOptions): Budget[] => {
  const conversations = options.waves.reduce((n, wave) => n + wave.conversations, 0);
  const clients = options.waves.map((wave) => wave.clients).join("/");
  const rounds = options.rounds > 1 ? `, ${options.rounds} rounds pooled` : "";
  const on = runs.filter((run) => run.mode === "on");
  const offOf = (shape: string) => runs.find((run) => run.mode === "off" && run.shape === shape);
  return [
    ...on.map((run) => ({
      budget: `affinity: ≥ 90 % of ${conversations} conversations × ${options.turns} turns on their first turn's replica (3 replicas, ${clients} clients, ${run.shape}${rounds})`,
      measured: `on ${shareText(run.share_first_turn_replica, run.share_first_turn_replica_by_round)}, previous turn's replica ${percent(run.share_previous_turn_replica)}, ${run.affinity_hits} hits, ${run.affinity_spills} spills; off ${percent(offOf(run.shape)?.share_first_turn_replica ?? Number.NaN)}`,
      pass: run.share_first_turn_replica >= 0.9 && run.successes === run.turns,
    })),
    {
      budget: `affinity: busiest replica's peak in flight ≤ ⌈load_factor (${LOAD_FACTOR}) × the mean⌉ in every wave`,
      measured: on
        .map(
          (run) =>
            `${run.shape}: ${run.waves.map((w) => `${w.busiest_peak} ≤ ${w.bound}`).join(", ")} (busiest over mean ≤ ${run.busiest_over_mean})`,
        )
        .join("; "),
      pass: on.every((run) => run.within_bound),
    },
  ];
};

export const runAffinity = async (options: AffinityOptions): Promise<BenchResult> => {
  const runs: ShapeRun[] = [];
  for (const mode of MODES) runs.push(...(await runMode(options, mode)));
  const budgets = budgetsOf(runs, options);
  writeReport("affinity", {
    benchmark: "affinity",
    date: new Date().toISOString(),
    options,
    load_factor: LOAD_FACTOR,
    replicas: NODES,
    runs,
    budgets,
  });
  const shareTable = table(
    [
      "affinity",
      "load",
      "turns",
      "successes",
      "on first turn's replica",
      "on previous turn's replica",
      "conversations by home (a/b/c)",
      "turns by node (a/b/c)",
      "hits",
      "spills",
      "wall s",
    ],
    runs.map((run) => [
      run.mode,
      run.shape,
      run.turns,
      run.successes,
      shareText(run.share_first_turn_replica, run.share_first_turn_replica_by_round),
      shareText(run.share_previous_turn_replica, run.share_previous_turn_replica_by_round),
      counts(run.conversations_by_home),
      counts(run.served_by_node),
      run.affinity_hits,
      run.affinity_spills,
      round(run.wall_ms / 1000, 2),
    ]),
  );
  const loadTable = table(
    ["affinity", "load", "clients", "peak in flight (a/b/c)", "bound", "busiest over mean"],
    runs.flatMap((run) =>
      run.waves.map((wave) => [
        run.mode,
        run.shape,
        wave.clients,
        counts(wave.peak_in_flight),
        wave.bound,
        wave.busiest_over_mean,
      ]),
    ),
  );
  print("Affinity: where turns went", shareTable.text);
  print("Affinity: load per replica", loadTable.text);
  const waves = options.waves
    .map((wave) => `${wave.conversations} conversations by ${wave.clients} clients`)
    .join(", then ");
  const thinking = options.shapes.find((shape) => shape.maxThinkMs > 0);
  const markdown = [
    `Three neurons with one ${DEVICE_MB} MB GPU each (static devices), one model (\`affinity-harness\`, the fake harness with a log of its answers: ${options.latencyMs} ms per answer, max_concurrency ${options.maxConcurrency}) loaded on all three; cortex with \`affinity: {enabled: true|false, load_factor: ${LOAD_FACTOR}}\`, a fresh fleet for each. Conversations send their whole history each turn (system, first user message, then every answer and question since), ${options.turns} turns each, in waves: ${waves}; each client sends a conversation's turns back to back${thinking ? `, or (${thinking.name}) pauses 0 to ${thinking.maxThinkMs} ms between them` : ""}; ${options.rounds} round(s) of the waves per load, each with conversations of its own (other keys, so other homes on the ring), pooled, each round's share in brackets. Replica of each turn from \`X-Cortex-Node\`; hits and spills from \`cortex_affinity_total\`; peaks in flight are the most in any round.`,
    "",
    shareTable.markdown,
    "",
    `Requests in flight per replica at their peak in each wave, from the harnesses' logs of each answer's start and end (a harness sees a request after cortex picked its replica and before cortex released it); the bound is CHWBL's with every client in flight, ⌈${LOAD_FACTOR} × clients ÷ 3⌉, and "busiest over mean" the busiest replica's peak over clients ÷ 3.`,
    "",
    loadTable.markdown,
  ].join("\n");
  return { name: "affinity", title: "Affinity", markdown, budgets };
};
