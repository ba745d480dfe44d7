import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CortexConfig } from "@cortex/protocol";
import { waitFor } from "@cortex/testkit";
import { type AttackResult, bodyAttackReport, type Phase } from "./body-attack-report.js";
import {
  countsSince,
  healthOf,
  healthStatus,
  pollHealth,
  requestsByStatus,
  sampleRss,
} from "./process-watch.js";
import { fleetOf, NEURON_TOKEN, startCortex } from "./stack.js";
import {
  type AppProcess,
  type BenchResult,
  MiB,
  now,
  print,
  readBytes,
  readyLine,
  round,
  rssMiB,
  runToLine,
  sleep,
  spawnNode,
  stopChild,
  writeReport,
} from "./support.js";

// Issue 13's attack on the built cortex: with its only model's one slot kept busy by another
// client, (a) concurrent bodies nested millions of levels deep and (b) hundreds of plain bodies
// just under the size limit, while cortex's RSS is sampled and /health polled. Before the fix
// cortex parsed every body and kept it while the request waited for a slot, so memory grew
// with the attack until the process died; now bodies are scanned (64 levels at most) and all
// of them together are bounded by max_buffered_mb, which this benchmark sets so the bound is
// the same on every machine.

const ATTACK_CLI = fileURLToPath(new URL("./body-attack-cli.js", import.meta.url));
const PARSE_CLI = fileURLToPath(new URL("./body-parse-cli.js", import.meta.url));

const MODEL = "busy";
/** A request not answered within this long counts as unanswered. */
const REQUEST_TIMEOUT_MS = 90_000;

export interface BodyAttackOptions {
  /** cortex's max_buffered_mb (its default depends on the machine's memory). */
  readonly maxBufferedMb: number;
  readonly deep: { readonly count: number; readonly levels: number; readonly concurrency: number };
  readonly plain: {
    readonly count: number;
    readonly bytes: number;
    readonly concurrency: number;
    /** The plain attack again, the same way: whether RSS levels off rather than grows. */
    readonly rounds: number;
  };
  /** After the last plain body is sent, the slot stays busy this long, then frees up. */
  readonly holdMs: number;
  readonly healthEveryMs: number;
  readonly rssEveryMs: number;
  /** Pause after each phase before its "after" RSS. */
  readonly settleMs: number;
  /** cortex's poll_interval_ms (how soon it sees the slot taken and freed); absent: default. */
  readonly pollIntervalMs?: number;
  /** The JSON.parse vs scanner comparison (one fresh process each): deep levels, plain bytes. */
  readonly compare: { readonly levels: number; readonly bytes: number };
}

export const BODY_ATTACK_FULL: BodyAttackOptions = {
  maxBufferedMb: 256,
  deep: { count: 20, levels: 8_000_000, concurrency: 20 },
  plain: { count: 240, bytes: 19 * MiB, concurrency: 32, rounds: 2 },
  holdMs: 3000,
  healthEveryMs: 150,
  rssEveryMs: 100,
  settleMs: 2000,
  compare: { levels: 8_000_000, bytes: 19 * MiB },
};
// A 1 MiB budget, so even tiny bodies meet it: some plain bodies wait, the rest are refused.
export const BODY_ATTACK_SMOKE: BodyAttackOptions = {
  maxBufferedMb: 1,
  deep: { count: 3, levels: 20_000, concurrency: 3 },
  plain: { count: 8, bytes: 300 * 1024, concurrency: 4, rounds: 2 },
  holdMs: 100,
  healthEveryMs: 100,
  rssEveryMs: 50,
  settleMs: 200,
  pollIntervalMs: 200,
  compare: { levels: 20_000, bytes: 300 * 1024 },
};

/** JSON.parse (cortex before issue 13) against the scanner (now) on one body of each kind. */
const compareParsing = async (options: BodyAttackOptions) => {
  const runs: [string, "deep" | "plain", number][] = [
    ["json-parse", "deep", options.compare.levels],
    ["scan", "deep", options.compare.levels],
    ["scan-unbounded", "deep", options.compare.levels],
    ["json-parse", "plain", options.compare.bytes],
    ["scan", "plain", options.compare.bytes],
  ];
  const rows: Record<string, unknown>[] = [];
  for (const [way, kind, size] of runs)
    rows.push(await runToLine(["--expose-gc", PARSE_CLI, way, kind, String(size)]));
  return rows;
};

export const runBodyAttack = async (options: BodyAttackOptions): Promise<BenchResult> => {
  const defaults = CortexConfig.parse({});
  const dir = await mkdtemp(join(tmpdir(), "cortex-bench-attack-"));
  const attacker = spawnNode([ATTACK_CLI, NEURON_TOKEN, MODEL]);
  let cortex: AppProcess | undefined;
  try {
    const info = await readyLine<{ control: string; neuron: string }>(attacker, "attack process");
    const controlCall = async (path: string, body?: unknown): Promise<unknown> => {
      const res = await fetch(`${info.control}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body ?? {}),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS * 2),
      });
      const json = (await res.json()) as unknown;
      if (res.status !== 200) throw new Error(`${path}: ${JSON.stringify(json)}`);
      return json;
    };

    // The defaults but for what the stack needs, max_buffered_mb and an admin token (the fleet
    // check), and in smoke runs a quicker poll; api_keys empty, as on the attacker's target.
    cortex = await startCortex(
      dir,
      [{ id: MODEL, harness: "llamacpp", source: `${MODEL}.gguf`, vram_mb: 8000 }],
      {
        max_buffered_mb: options.maxBufferedMb,
        ...(options.pollIntervalMs === undefined
          ? {}
          : { poll_interval_ms: options.pollIntervalMs }),
        neurons: [{ name: "attack-target", url: info.neuron, token: NEURON_TOKEN }],
      },
    );
    const url = cortex.url;
    const modelInFleet = async () => {
      const fleet = await fleetOf(url);
      return fleet.nodes[0]?.healthy
        ? fleet.nodes[0].models.find((m) => m.id === MODEL)
        : undefined;
    };
    await waitFor(
      "the busy model in cortex's fleet",
      async () => (await modelInFleet()) !== undefined,
    );
    // One ordinary request first: the path works, and idle RSS is measured after it.
    const warm = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] }),
    });
    await warm.arrayBuffer();
    if (warm.status !== 200) throw new Error(`the warm-up request got ${warm.status}`);
    await sleep(options.settleMs);
    const idleMib = rssMiB(cortex.pid);

    const t0 = now();
    const rss = sampleRss(cortex.pid, options.rssEveryMs);
    const health = pollHealth(url, options.healthEveryMs);
    const phases: Phase[] = [];
    try {
      // Another client holds the model's only slot; cortex sees it at its next poll.
      await controlCall("/block");
      await waitFor(
        "cortex to see the model's slot taken",
        async () => ((await modelInFleet())?.in_flight ?? 0) >= 1,
      );
      const runPhase = async (name: string, attack: Record<string, unknown>) => {
        const cortexPid = cortex?.pid ?? 0;
        const startedAt = Date.now();
        const start = now();
        const before = rssMiB(cortexPid);
        const read0 = readBytes(cortexPid);
        const statuses0 = await requestsByStatus(url);
        const result = (await controlCall("/attack", {
          url: `${url}/v1/chat/completions`,
          timeoutMs: REQUEST_TIMEOUT_MS,
          ...attack,
        })) as AttackResult;
        await sleep(options.settleMs);
        const endedAt = Date.now();
        const after = rss.gone() ? Number.NaN : rssMiB(cortexPid);
        const inPhase = rss.samples.filter((s) => s.at >= startedAt && s.at <= endedAt);
        phases.push({
          name,
          attack: result,
          rss_before_mib: before,
          rss_peak_mib: Math.max(before, after, ...inPhase.map((s) => s.mib)),
          rss_after_mib: after,
          cortex_read_bytes: rss.gone() ? Number.NaN : readBytes(cortexPid) - read0,
          cortex_statuses: rss.gone() ? {} : countsSince(await requestsByStatus(url), statuses0),
          health: healthOf(health.polls.filter((p) => p.at >= startedAt && p.at <= endedAt)),
          wall_s: round((now() - start) / 1000, 1),
        });
      };
      await runPhase("deep", {
        kind: "deep",
        count: options.deep.count,
        levels: options.deep.levels,
        concurrency: options.deep.concurrency,
        releaseAfterMs: null,
      });
      for (let pass = 1; pass <= options.plain.rounds; pass += 1) {
        // The slot is taken again for every round after the first (the last one freed it).
        if (pass > 1) {
          await controlCall("/block");
          await waitFor(
            "cortex to see the model's slot taken again",
            async () => ((await modelInFleet())?.in_flight ?? 0) >= 1,
          );
        }
        await runPhase(pass === 1 ? "plain" : `plain, round ${pass}`, {
          kind: "plain",
          count: options.plain.count,
          bytes: options.plain.bytes,
          concurrency: options.plain.concurrency,
          releaseAfterMs: options.holdMs,
        });
      }
    } finally {
      await health.stop();
      rss.stop();
    }
    const attackS = round((now() - t0) / 1000, 1);
    const alive = cortex.child.exitCode === null && cortex.child.signalCode === null && !rss.gone();
    const finalHealth = alive ? await healthStatus(url) : 0;
    await stopChild(cortex.child);
    cortex = undefined;
    await stopChild(attacker.child);

    const parsing = await compareParsing(options);

    const { report, tables, result } = bodyAttackReport({
      options,
      date: new Date().toISOString(),
      defaults: { maxBodyMb: defaults.max_body_mb, queueTimeoutMs: defaults.queue_timeout_ms },
      idleMib,
      rssSamples: rss.samples,
      healthPolls: health.polls,
      phases,
      alive,
      finalHealth,
      attackS,
      parsing,
    });
    writeReport("body-attack", report);
    for (const { title, text } of tables) print(title, text);
    return result;
  } finally {
    if (cortex) await stopChild(cortex.child);
    await stopChild(attacker.child);
    await rm(dir, { recursive: true, force: true });
  }
};
