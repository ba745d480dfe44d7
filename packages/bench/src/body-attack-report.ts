import type { BodyAttackOptions } from "./body-attack.js";
import {
  HEALTH_TIMEOUT_MS,
  type HealthPoll,
  type HealthSummary,
  healthOf,
  type RssSample,
} from "./process-watch.js";
import { type BenchResult, MiB, round, table } from "./support.js";

// What a body-attack run shows: its JSON report, the three tables, the BENCHMARKS.md section and
// the budgets, all from the measurements alone (no I/O here).

/** The budget: every /health poll answered, none slower than this. */
const HEALTH_MAX_MS = 1000;
/**
 * The RSS bound above idle is max_buffered_mb + this. The budget counts each admitted body once
 * (readBody copies a body with a declared length into one buffer of that size as it arrives, so
 * no byte is held twice); this much more is for garbage of refused and discarded bodies not yet
 * collected, and for the socket buffers: fixed, not fitted to a run.
 */
const SLACK_MIB = 128;

/** What body-attack-cli's /attack answers. */
export interface AttackResult {
  readonly kind: "deep" | "plain";
  readonly count: number;
  readonly concurrency: number;
  readonly body_bytes: number;
  readonly started_at: number;
  readonly released_at: number | null;
  readonly ended_at: number;
  readonly wall_ms: number;
  readonly statuses: Record<string, number>;
  readonly codes: Record<string, number>;
  readonly answered: number;
  readonly refused: number;
  readonly refused_with_envelope: number;
  readonly retry_after_missing_on_503: number;
  readonly bad_answers: number;
  readonly bad_answer_samples: readonly unknown[];
  readonly sent_bytes: number;
  readonly request_ms: { readonly min: number; readonly max: number };
  readonly generator_rss_peak_mib: number;
}

export interface Phase {
  readonly name: string;
  readonly attack: AttackResult;
  readonly rss_before_mib: number;
  readonly rss_peak_mib: number;
  readonly rss_after_mib: number;
  readonly cortex_read_bytes: number;
  /** What cortex counted in cortex_requests_total during the phase, by status. */
  readonly cortex_statuses: Record<string, number>;
  readonly health: HealthSummary;
  readonly wall_s: number;
}

/** Everything a run measured. */
export interface BodyAttackRun {
  readonly options: BodyAttackOptions;
  readonly date: string;
  /** cortex's defaults for what the run leaves as it is. */
  readonly defaults: { readonly maxBodyMb: number; readonly queueTimeoutMs: number };
  readonly idleMib: number;
  readonly rssSamples: readonly RssSample[];
  readonly healthPolls: readonly HealthPoll[];
  readonly phases: readonly Phase[];
  readonly alive: boolean;
  /** The status of /health after the attack; 0: no answer. */
  readonly finalHealth: number;
  /** From the first block of the slot to the end of the last phase. */
  readonly attackS: number;
  /** body-parse-cli's lines, one per way and kind. */
  readonly parsing: readonly Record<string, unknown>[];
}

const mib = (bytes: number) => round(bytes / MiB, 1);
/** A body's size for the tables: MiB, or KiB below one (smoke runs). */
const size = (bytes: number) =>
  bytes >= MiB ? `${mib(bytes)} MiB` : `${round(bytes / 1024, 1)} KiB`;
const countsText = (counts: Record<string, number>) =>
  Object.entries(counts)
    .map(([key, n]) => `${n}× ${key}`)
    .join(", ");
const sum = (phases: readonly Phase[], of: (p: Phase) => number) =>
  phases.reduce((n, p) => n + of(p), 0);

const WAY_NAMES: Record<string, string> = {
  "json-parse": "JSON.parse (before)",
  scan: "scanner, 64 levels (now)",
  "scan-unbounded": "scanner, no depth limit",
};

/** The JSON report, the tables to print (title, text) and the benchmark's result. */
export const bodyAttackReport = (run: BodyAttackRun) => {
  const { options, phases, parsing, idleMib, alive, finalHealth, attackS } = run;
  const peak = Math.max(...run.rssSamples.map((s) => s.mib));
  const boundMib = round(idleMib + options.maxBufferedMb + SLACK_MIB, 1);
  const allHealth = healthOf(run.healthPolls);
  const requests = sum(phases, (p) => p.attack.count);
  const answered = sum(phases, (p) => p.attack.answered);
  const refused = sum(phases, (p) => p.attack.refused);
  const refusedWithEnvelope = sum(phases, (p) => p.attack.refused_with_envelope);
  const badAnswers = sum(phases, (p) => p.attack.bad_answers);
  const sentBytes = sum(phases, (p) => p.attack.sent_bytes);
  const offeredBytes = sum(phases, (p) => p.attack.count * p.attack.body_bytes);
  const readTotal = sum(phases, (p) => p.cortex_read_bytes);
  const deepPhase = phases.find((p) => p.name === "deep");
  // A deep body must never reach a model: only the depth limit (400) or the budget (503).
  const deepServed = deepPhase?.attack.statuses["200"] ?? 0;
  const codes: Record<string, number> = {};
  const statuses: Record<string, number> = {};
  for (const p of phases) {
    for (const [code, n] of Object.entries(p.attack.codes)) codes[code] = (codes[code] ?? 0) + n;
    for (const [status, n] of Object.entries(p.attack.statuses))
      statuses[status] = (statuses[status] ?? 0) + n;
  }

  const report = {
    benchmark: "body-attack",
    date: run.date,
    options,
    cortex_config: {
      max_buffered_mb: options.maxBufferedMb,
      ...(options.pollIntervalMs === undefined ? {} : { poll_interval_ms: options.pollIntervalMs }),
      max_body_mb: run.defaults.maxBodyMb,
      api_keys: [],
      queue_timeout_ms: run.defaults.queueTimeoutMs,
    },
    idle_rss_mib: idleMib,
    rss_bound_mib: boundMib,
    rss_bound_formula: `idle + max_buffered_mb + ${SLACK_MIB} MiB`,
    rss_peak_mib: peak,
    rss_samples: run.rssSamples.length,
    cortex_alive_after: alive,
    final_health_status: finalHealth,
    attack_s: attackS,
    requests,
    answered,
    refused,
    refused_with_envelope: refusedWithEnvelope,
    bad_answers: badAnswers,
    offered_bytes: offeredBytes,
    sent_bytes: sentBytes,
    cortex_read_bytes: readTotal,
    codes,
    statuses,
    health_ms: allHealth,
    phases,
    parsing,
  };

  const attackTable = table(
    [
      "phase",
      "requests × body",
      "at once",
      "offered MiB",
      "sent MiB",
      "cortex read MiB",
      "answers the attacker got",
      "cortex counted",
      "refusals with envelope",
      "wall s",
    ],
    phases.map((p) => [
      p.name,
      `${p.attack.count} × ${size(p.attack.body_bytes)}`,
      p.attack.concurrency,
      mib(p.attack.count * p.attack.body_bytes),
      mib(p.attack.sent_bytes),
      mib(p.cortex_read_bytes),
      countsText(p.attack.codes),
      countsText(p.cortex_statuses),
      `${p.attack.refused_with_envelope}/${p.attack.refused}`,
      p.wall_s,
    ]),
  );
  const cortexTable = table(
    [
      "phase",
      "RSS before MiB",
      "RSS peak MiB",
      "RSS after MiB",
      "/health polls",
      "failed",
      "/health p50 ms",
      "/health p99 ms",
      "/health max ms",
    ],
    phases.map((p) => [
      p.name,
      p.rss_before_mib,
      p.rss_peak_mib,
      p.rss_after_mib,
      p.health.n,
      p.health.failures,
      round(p.health.p50, 1),
      round(p.health.p99, 1),
      round(p.health.max, 1),
    ]),
  );
  const parseTable = table(
    ["body", "read as", "ms", "heap held MiB", "RSS held MiB", "RSS peak MiB", "outcome"],
    parsing.map((r) => [
      `${r.kind} ${size(Number(r.body_bytes))}`,
      WAY_NAMES[String(r.way)] ?? r.way,
      r.ms,
      r.heap_used_delta_mib,
      r.rss_delta_mib,
      r.rss_peak_delta_mib,
      String(r.outcome).startsWith("ApiError") ? "400: nested deeper than 64" : r.outcome,
    ]),
  );
  const tables = [
    { title: "Body attack: requests", text: attackTable.text },
    { title: "Body attack: cortex", text: cortexTable.text },
    { title: "Body attack: reading one body", text: parseTable.text },
  ];

  const deepSize = size(deepPhase?.attack.body_bytes ?? 0);
  const plainSize = size(options.plain.bytes);
  const levels = options.deep.levels.toLocaleString("en-US");
  const markdown = [
    `Issue 13 against the built cortex: its defaults but \`max_buffered_mb: ${options.maxBufferedMb}\` (set, so the bound is the same on any machine; \`max_body_mb\` is the default ${run.defaults.maxBodyMb}), no API keys as on the attacker's target, and its only model on a testkit fake neuron with one slot, which another client holds during the attack. The attacker, a process of its own, sends with fetch (undici, as the OpenAI SDK) each body streamed from one Buffer with its length declared: (a) ${options.deep.count} bodies of ${deepSize} nested ${levels} levels deep, all at once; (b) ${options.plain.count} plain chat bodies of ${plainSize}, ${options.plain.concurrency} at a time, ${options.plain.rounds === 1 ? "once" : `${options.plain.rounds} times (whether RSS levels off)`}. When every request of (b) is sent and none has been answered for ${options.holdMs / 1000} s, the slot frees up and the bodies waiting for it are answered. cortex's RSS (VmRSS) is sampled every ${options.rssEveryMs} ms and \`/health\` polled every ${options.healthEveryMs} ms (a poll fails after ${HEALTH_TIMEOUT_MS / 1000} s). "sent" is the attacker's \`/proc/<pid>/io\` wchar (it stops sending a body once refused), "cortex read" cortex's rchar, "cortex counted" its \`cortex_requests_total\`. Before the fix the issue measured RSS from 108 MB to 4.8 GB, \`/health\` unanswered after ~40 s and the process dead at ~60 s for (a), and the same within 48 s for (b).`,
    "",
    attackTable.markdown,
    "",
    `In all ${requests} requests: ${mib(offeredBytes)} MiB offered, ${mib(sentBytes)} MiB sent, ${mib(readTotal)} MiB read by cortex, in ${attackS} s from the first block of the slot to the end of the last phase.`,
    "",
    `cortex idle: ${idleMib} MiB. The bound is idle + max_buffered_mb + ${SLACK_MIB} MiB: the budget counts each admitted body once (a body with a declared length is copied into one buffer of that size as it arrives); ${SLACK_MIB} MiB for garbage of refused and discarded bodies not yet collected and for socket buffers. The allocator keeps freed pages for the next bodies, so RSS stays up after an attack and levels off when it comes again.`,
    "",
    cortexTable.markdown,
    "",
    "Reading one attack body, in a fresh process each (`body-parse-cli.ts`, after a warm-up): what is held when the read returns, and the peak. JSON.parse of the deep body is what every such request cost cortex before the fix, held until the request ended.",
    "",
    parseTable.markdown,
  ].join("\n");

  const noRetryAfter = sum(phases, (p) => p.attack.retry_after_missing_on_503);
  const envelopesOk =
    badAnswers === 0 && answered === requests && deepServed === 0 && noRetryAfter === 0;
  const result: BenchResult = {
    name: "body-attack",
    title: "Body attack",
    markdown,
    // Short enough for the budget table's columns: the attack itself is in the section.
    budgets: [
      {
        budget: `cortex survives the body attack: RSS below idle + max_buffered_mb (${options.maxBufferedMb}) + ${SLACK_MIB} MiB`,
        measured: `peak ${peak} MiB < ${boundMib} MiB (idle ${idleMib}); ${alive ? "alive" : "DEAD"}, /health ${finalHealth} after`,
        pass: alive && finalHealth === 200 && peak < boundMib,
      },
      {
        budget: `body attack: /health answers throughout (every poll, max latency < ${HEALTH_MAX_MS / 1000} s)`,
        measured: `${allHealth.n} polls, ${allHealth.failures} failed, max ${round(allHealth.max, 1)} ms, p99 ${round(allHealth.p99, 1)} ms`,
        pass: allHealth.n > 0 && allHealth.failures === 0 && allHealth.max < HEALTH_MAX_MS,
      },
      {
        budget:
          "body attack: every request answered, every refusal in the envelope, no deep body served",
        measured: `${answered}/${requests} answered (${countsText(statuses)}), ${refusedWithEnvelope}/${refused} with the envelope${noRetryAfter === 0 ? "" : `, ${noRetryAfter} 503s without Retry-After`}`,
        pass: envelopesOk,
      },
    ],
  };
  return { report, tables, result };
};
