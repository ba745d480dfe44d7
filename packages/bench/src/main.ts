import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import { AFFINITY_FULL, AFFINITY_SMOKE, runAffinity } from "./affinity.js";
import { budgetRow, spliceBenchmarksMd } from "./benchmarks-md.js";
import { BODY_ATTACK_FULL, BODY_ATTACK_SMOKE, runBodyAttack } from "./body-attack.js";
import { COLD_FULL, COLD_SMOKE, runColdLoad } from "./cold-load.js";
import { CONTENTION_FULL, CONTENTION_SMOKE, runContention } from "./contention.js";
import { COST_FULL, COST_SMOKE, runCost } from "./cost.js";
import { FAILOVER_FULL, FAILOVER_SMOKE, runFailover } from "./failover.js";
import { FLEET_FULL, FLEET_SMOKE, runFleetScale } from "./fleet-scale.js";
import { INFERENCE_FULL, INFERENCE_SMOKE, runInference } from "./inference.js";
import { LIVE_STATE_FULL, LIVE_STATE_SMOKE, runLiveState } from "./live-state.js";
import { LOCALITY_FULL, LOCALITY_SMOKE, runLocality } from "./locality.js";
import { MEMORY_FULL, MEMORY_SMOKE, runMemory } from "./memory.js";
import { PREFIX_CACHE_FULL, PREFIX_CACHE_SMOKE, runPrefixCache } from "./prefix-cache.js";
import { PROXY_FULL, PROXY_SMOKE, runProxyOverhead } from "./proxy-overhead.js";
import { type BenchResult, ROOT, stopAll, writeReport } from "./support.js";

// `node dist/main.js [--smoke] [--only name,name] [--baseline <root>]`: runs the benchmarks in
// order, prints a table for each, writes .bench/<name>.json and (full runs only, unless
// --write-md) BENCHMARKS.md. With --only, BENCHMARKS.md keeps what the other benchmarks wrote:
// only the budget rows and sections of those run are replaced (e.g. `node dist/main.js --only
// body-attack`). --baseline runs `contention` and `failover` on another checkout's build too (its
// apps/*/dist), side by side with this one (its budgets judge this build only).

const args = process.argv.slice(2);
const smoke = args.includes("--smoke");
// Smoke runs keep their JSON apart, so they never overwrite a real run's numbers.
if (smoke && process.env.BENCH_OUT_DIR === undefined)
  process.env.BENCH_OUT_DIR = join(ROOT, ".bench", "smoke");
const onlyIndex = args.indexOf("--only");
const only = onlyIndex >= 0 ? (args[onlyIndex + 1] ?? "").split(",") : null;
const baselineIndex = args.indexOf("--baseline");
const baselineArg = baselineIndex >= 0 ? args[baselineIndex + 1] : undefined;
const baseline = baselineArg === undefined ? undefined : resolve(baselineArg);

const benches: { name: string; run: () => Promise<BenchResult> }[] = [
  { name: "proxy-overhead", run: () => runProxyOverhead(smoke ? PROXY_SMOKE : PROXY_FULL) },
  { name: "cold-load", run: () => runColdLoad(smoke ? COLD_SMOKE : COLD_FULL) },
  { name: "memory", run: () => runMemory(smoke ? MEMORY_SMOKE : MEMORY_FULL) },
  { name: "inference", run: () => runInference(smoke ? INFERENCE_SMOKE : INFERENCE_FULL) },
  {
    name: "prefix-cache",
    run: () => runPrefixCache(smoke ? PREFIX_CACHE_SMOKE : PREFIX_CACHE_FULL),
  },
  { name: "fleet-scale", run: () => runFleetScale(smoke ? FLEET_SMOKE : FLEET_FULL) },
  {
    name: "body-attack",
    run: () => runBodyAttack(smoke ? BODY_ATTACK_SMOKE : BODY_ATTACK_FULL),
  },
  {
    name: "contention",
    run: () => runContention(smoke ? CONTENTION_SMOKE : CONTENTION_FULL, baseline),
  },
  { name: "affinity", run: () => runAffinity(smoke ? AFFINITY_SMOKE : AFFINITY_FULL) },
  { name: "failover", run: () => runFailover(smoke ? FAILOVER_SMOKE : FAILOVER_FULL, baseline) },
  { name: "locality", run: () => runLocality(smoke ? LOCALITY_SMOKE : LOCALITY_FULL) },
  { name: "live-state", run: () => runLiveState(smoke ? LIVE_STATE_SMOKE : LIVE_STATE_FULL) },
  { name: "cost", run: () => runCost(smoke ? COST_SMOKE : COST_FULL) },
];

const main = async () => {
  const results: BenchResult[] = [];
  const failures: string[] = [];
  const started = Date.now();
  for (const bench of benches) {
    if (only && !only.includes(bench.name)) continue;
    process.stdout.write(`\n# ${bench.name}${smoke ? " (smoke)" : ""}\n`);
    const t0 = Date.now();
    try {
      results.push(await bench.run());
    } catch (error) {
      failures.push(`${bench.name}: ${error instanceof Error ? error.stack : String(error)}`);
      process.stderr.write(`${bench.name} failed: ${String(error)}\n`);
    } finally {
      await stopAll();
      process.stdout.write(`(${bench.name}: ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
    }
  }
  const command = `node packages/bench/dist/main.js${args.length > 0 ? ` ${args.join(" ")}` : ""}`;
  const summary = {
    benchmark: "summary",
    date: new Date().toISOString(),
    smoke,
    nproc: availableParallelism(),
    node_version: process.version,
    command,
    duration_s: Math.round((Date.now() - started) / 1000),
    benchmarks: results.map((r) => r.name),
    failures,
    budgets: results.flatMap((r) => r.budgets.map((b) => ({ benchmark: r.name, ...b }))),
  };
  writeReport("summary", summary);
  const mdFile = join(ROOT, "BENCHMARKS.md");
  const writeMd = !smoke || args.includes("--write-md");
  if (writeMd && only && existsSync(mdFile)) {
    writeFileSync(
      mdFile,
      spliceBenchmarksMd(readFileSync(mdFile, "utf8"), results, {
        date: summary.date,
        command,
        durationS: summary.duration_s,
      }),
    );
  } else if (writeMd) {
    const md = [
      "# Benchmarks",
      "",
      `- date: ${summary.date}`,
      `- nproc: ${summary.nproc}`,
      `- Node: ${summary.node_version}`,
      `- command: \`npx -y pnpm@10.34.9 bench\` (this part: \`${command}\`), ${summary.duration_s} s`,
      "- machine: shared and noisy; compare the side-by-side ratios rather than absolute numbers.",
      "",
      "## Budgets",
      "",
      "| budget | measured | result |",
      "| --- | --- | --- |",
      ...summary.budgets.map(budgetRow),
      "",
      "Routing-decision timings are in `.bench/routing-resolve.json` (packages/routing).",
      "",
      ...results.flatMap((r) => [`## ${r.title}`, "", r.markdown, ""]),
      ...(failures.length > 0
        ? ["## Failures", "", ...failures.map((f) => `\`\`\`\n${f}\n\`\`\``), ""]
        : []),
    ].join("\n");
    writeFileSync(mdFile, md);
  }
  process.stdout.write(
    `\n# budgets\n${summary.budgets.map((b) => `${b.pass ? "PASS" : "MISS"}  ${b.budget}: ${b.measured}`).join("\n")}\n`,
  );
  if (failures.length > 0) process.exitCode = 1;
};

const stop = () => {
  void stopAll().then(() => process.exit(130));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
await main();
