import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Runs the whole suite in smoke mode (tiny counts) as a child process, the way `pnpm bench`
// runs it, and checks that every benchmark wrote its JSON with the expected keys. Timings are
// never asserted: this only keeps the suite from rotting.

const PACKAGE = fileURLToPath(new URL("../", import.meta.url));
const TSC = createRequire(import.meta.url).resolve("typescript/bin/tsc");

let out: string;
let child: ReturnType<typeof spawn> | undefined;
let log = "";
let code: number | null = null;

const run = async (args: readonly string[], env: Record<string, string> = {}) => {
  child = spawn(process.execPath, [...args], {
    cwd: PACKAGE,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  child.stdout?.on("data", (chunk: Buffer) => {
    log += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    log += chunk.toString();
  });
  const [exitCode] = (await once(child, "exit")) as [number | null];
  child = undefined;
  return exitCode;
};

beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), "cortex-bench-smoke-"));
  // The suite runs the compiled programs (the load generator and the fake fleet are separate
  // processes), so compile this package first; its dependencies are built by turbo.
  expect(await run([TSC, "-p", "tsconfig.build.json"]), log).toBe(0);
  code = await run(["dist/main.js", "--smoke"], { BENCH_OUT_DIR: out });
}, 240_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    // main.ts stops every process it started on SIGTERM.
    child.kill("SIGTERM");
    await once(child, "exit");
  }
  await rm(out, { recursive: true, force: true });
});

const report = (name: string): Record<string, unknown> => {
  const file = join(out, `${name}.json`);
  expect(existsSync(file), `${file}\n${log}`).toBe(true);
  return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
};

describe("the benchmark suite in smoke mode", () => {
  it("exits cleanly", () => {
    expect(code, log).toBe(0);
  });

  it.each([
    ["proxy-overhead", ["sequential_ms", "sequential_added_ms", "streams_ms", "load"]],
    ["cold-load", ["requests", "loads", "successes", "latency_ms"]],
    ["memory", ["samples", "idle", "after", "second_half_growth_mib"]],
    ["inference", ["options", "modes"]],
    ["prefix-cache", ["options", "model", "modes", "follow_up_ttft_p50_speedup", "samples"]],
    ["fleet-scale", ["cortex_cpu_share_of_core", "snapshot_age_ms", "dead_neuron"]],
    ["body-attack", ["phases", "rss_peak_mib", "rss_bound_mib", "health_ms", "codes", "parsing"]],
    ["contention", ["swap", "scale_out", "scale_out_ratio", "budgets"]],
    ["affinity", ["options", "load_factor", "replicas", "runs", "budgets"]],
    ["failover", ["options", "window_ms", "scenarios", "budgets"]],
    ["locality", ["options", "samples", "ratio"]],
    ["live-state", ["options", "load_visible_ms", "unload_visible_ms", "failures", "budgets"]],
    ["cost", ["options", "added_ms", "cpu_json", "cpu_stream", "open_streams"]],
  ])("writes %s.json with its keys", (name, keys) => {
    const json = report(name);
    expect(json.benchmark).toBe(name);
    for (const key of keys) expect(json, key).toHaveProperty(key);
  });

  it("writes a summary with a verdict for every budget", () => {
    const summary = report("summary");
    expect(summary.failures).toEqual([]);
    expect(summary.benchmarks).toEqual([
      "proxy-overhead",
      "cold-load",
      "memory",
      "inference",
      "prefix-cache",
      "fleet-scale",
      "body-attack",
      "contention",
      "affinity",
      "failover",
      "locality",
      "live-state",
      "cost",
    ]);
    const modes = report("inference").modes as { mode: string }[];
    expect(modes.map((m) => m.mode)).toEqual(["json", "stream"]);
    for (const mode of modes)
      for (const key of ["direct", "cortex", "ratio"]) expect(mode).toHaveProperty(key);
    const prefix = report("prefix-cache").modes as { mode: string }[];
    expect(prefix.map((m) => m.mode)).toEqual(["reuse", "no reuse"]);
    for (const mode of prefix)
      for (const key of ["first_turn_ttft_ms", "follow_up_ttft_ms", "cached_share"])
        expect(mode).toHaveProperty(key);
    const contention = report("contention") as {
      swap: Record<string, unknown>;
      scale_out: Record<string, unknown>[];
    };
    for (const key of ["successes", "refusals", "harness_loads", "swapped_out", "wait_answered_ms"])
      expect(contention.swap, key).toHaveProperty(key);
    expect(contention.scale_out.map((run) => run.max_replicas)).toEqual([1, 2]);
    for (const run of contention.scale_out)
      for (const key of ["answered_by_node", "wall_ms", "requests_per_s"])
        expect(run, key).toHaveProperty(key);
    const failover = report("failover").scenarios as Record<string, unknown>[];
    expect(failover.map((run) => run.scenario)).toEqual(["hung", "killed"]);
    for (const run of failover)
      for (const key of ["successes", "failures", "clear", "longest_wait_ms"])
        expect(run, key).toHaveProperty(key);
    const affinity = report("affinity").runs as Record<string, unknown>[];
    expect(affinity.map((run) => run.mode)).toEqual(["on", "on", "off", "off"]);
    for (const run of affinity)
      for (const key of [
        "share_first_turn_replica",
        "share_previous_turn_replica",
        "waves",
        "within_bound",
        "affinity_hits",
        "affinity_spills",
      ])
        expect(run, key).toHaveProperty(key);
    const cost = report("cost") as Record<string, Record<string, unknown>>;
    for (const run of [cost.cpu_json, cost.cpu_stream])
      for (const key of ["per_request_us", "per_chunk_us", "rps", "requests"])
        expect(run, key).toHaveProperty(key);
    for (const key of ["complete_with_every_chunk", "mib_per_1000_streams", "health_open_ms"])
      expect(cost.open_streams, key).toHaveProperty(key);
    const budgets = summary.budgets as { budget: string; pass: boolean }[];
    expect(budgets.length).toBeGreaterThan(5);
    for (const budget of budgets) expect(typeof budget.pass).toBe("boolean");
  });
});
