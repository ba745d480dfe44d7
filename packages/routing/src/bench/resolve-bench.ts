import { mkdirSync, writeFileSync } from "node:fs";
import { createCatalogue } from "@cortex/catalogue/rules";
import {
  type FleetNode,
  type FleetSnapshot,
  ModelProfile,
  type NeuronModel,
} from "@cortex/protocol";
import { indexSnapshot, replicaKey } from "../fleet-index.js";
import { resolve } from "../resolve.js";
import type { LiveState } from "../types.js";

/**
 * Times `resolve` on synthetic fleets of N nodes × 20 models. Each node has two GPUs and two of
 * the 20 models loaded, so every model has N/10 replicas to choose from; cortex's live state
 * holds reservations on a tenth of them. Run: `pnpm bench` (or `node dist/bench/resolve-bench.js`).
 */

const MODELS = 20;
const EPOCH = Date.parse("2026-01-01T00:00:00.000Z");

export interface ScenarioResult {
  readonly nodes: number;
  readonly scenario: "route-loaded" | "cold-placement";
  readonly calls: number;
  readonly median_us: number;
  readonly p99_us: number;
  readonly mean_us: number;
}

export interface BenchReport {
  readonly benchmark: "routing-resolve";
  readonly date: string;
  readonly node_version: string;
  readonly index_build_ms: Record<string, number>;
  readonly results: ScenarioResult[];
}

/** Deterministic xorshift so every run measures the same fleet. */
const rng = (seed: number) => {
  let state = seed >>> 0 || 1;
  return (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
};

const buildFleet = (nodes: number): { snapshot: FleetSnapshot; live: LiveState } => {
  const random = rng(nodes);
  const reserved = new Map<string, number>();
  const list: FleetNode[] = [];
  for (let i = 0; i < nodes; i += 1) {
    const name = `node-${String(i).padStart(5, "0")}`;
    const models: NeuronModel[] = [i % MODELS, (i + 7) % MODELS].map((m, slot) => ({
      id: `model-${m}`,
      harness: "llamacpp",
      status: "loaded",
      devices: [slot],
      vram_mb: 8000,
      in_flight: Math.floor(random() * 3),
      queued: 0,
      max_concurrency: 4,
      last_accessed: new Date(EPOCH + Math.floor(random() * 3_600_000)).toISOString(),
      loaded_at: new Date(EPOCH).toISOString(),
      error: null,
    }));
    if (random() < 0.1) reserved.set(replicaKey(name, `model-${i % MODELS}`), 1);
    list.push({
      name,
      url: `http://${name}.lan:13131`,
      healthy: random() > 0.02,
      consecutive_failures: 0,
      last_poll_at: null,
      last_ok_at: null,
      error: null,
      node: null,
      devices: [0, 1].map((index) => ({
        index,
        vendor: "NVIDIA",
        name: "RTX 4090",
        vram_total_mb: 24_000,
        vram_free_mb: 16_000,
        utilization_pct: 0,
        temperature_c: 40,
        bus_id: null,
        driver_version: null,
      })),
      harnesses: [{ name: "llamacpp", kind: "builtin" }],
      models,
    });
  }
  return { snapshot: { taken_at: new Date(EPOCH).toISOString(), nodes: list }, live: { reserved } };
};

const catalogue = createCatalogue([
  ...Array.from({ length: MODELS }, (_, m) =>
    ModelProfile.parse({
      id: `model-${m}`,
      harness: "llamacpp",
      source: `m${m}.gguf`,
      vram_mb: 8000,
    }),
  ),
  ModelProfile.parse({ id: "cold", harness: "llamacpp", source: "cold.gguf", vram_mb: 12_000 }),
]);

const percentile = (sorted: Float64Array, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;

const time = (calls: number, run: (i: number) => unknown): Float64Array => {
  const samples = new Float64Array(calls);
  let sink = 0;
  for (let i = 0; i < calls; i += 1) {
    const start = process.hrtime.bigint();
    const decision = run(i);
    samples[i] = Number(process.hrtime.bigint() - start) / 1000;
    if (decision) sink += 1;
  }
  if (sink !== calls) throw new Error("resolve returned nothing");
  return samples.sort();
};

const summarise = (
  nodes: number,
  scenario: ScenarioResult["scenario"],
  samples: Float64Array,
): ScenarioResult => ({
  nodes,
  scenario,
  calls: samples.length,
  median_us: percentile(samples, 0.5),
  p99_us: percentile(samples, 0.99),
  mean_us: samples.reduce((sum, value) => sum + value, 0) / samples.length,
});

export const runResolveBench = (
  sizes: readonly number[] = [100, 1000, 10_000],
  calls = 20_000,
): BenchReport => {
  const results: ScenarioResult[] = [];
  const indexBuild: Record<string, number> = {};
  for (const nodes of sizes) {
    const { snapshot, live } = buildFleet(nodes);
    const started = process.hrtime.bigint();
    indexSnapshot(snapshot);
    indexBuild[String(nodes)] = Number(process.hrtime.bigint() - started) / 1e6;
    const route = (i: number) =>
      resolve(snapshot, catalogue, { model: `model-${i % MODELS}` }, live);
    time(Math.min(calls, 2000), route); // warm-up: let the JIT settle before measuring
    results.push(summarise(nodes, "route-loaded", time(calls, route)));
    const coldCalls = Math.max(10, Math.floor(calls / Math.max(1, nodes / 100)));
    const cold = () => resolve(snapshot, catalogue, { model: "cold" }, live);
    time(Math.min(coldCalls, 200), cold);
    results.push(summarise(nodes, "cold-placement", time(coldCalls, cold)));
  }
  return {
    benchmark: "routing-resolve",
    date: new Date().toISOString(),
    node_version: process.version,
    index_build_ms: indexBuild,
    results,
  };
};

const fmt = (value: number): string => value.toFixed(value < 10 ? 2 : 1);

export const printReport = (report: BenchReport): void => {
  console.log("resolve() over N nodes × 20 models (µs per decision)");
  console.table(
    report.results.map((result) => ({
      nodes: result.nodes,
      scenario: result.scenario,
      calls: result.calls,
      median_us: fmt(result.median_us),
      p99_us: fmt(result.p99_us),
      mean_us: fmt(result.mean_us),
    })),
  );
  console.log("index build per snapshot (ms):", report.index_build_ms);
};

const isMain =
  process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split("/").pop() ?? "");

if (isMain) {
  const smoke = process.argv.includes("--smoke");
  const report = smoke ? runResolveBench([10, 100], 200) : runResolveBench();
  printReport(report);
  const outDir = new URL("../../../../.bench/", import.meta.url);
  mkdirSync(outDir, { recursive: true });
  const outFile = new URL(smoke ? "routing-resolve.smoke.json" : "routing-resolve.json", outDir);
  writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${outFile.pathname}`);
  const at1000 = report.results.find((r) => r.nodes === 1000 && r.scenario === "route-loaded");
  if (at1000)
    console.log(`budget: route at 1,000 nodes median ${fmt(at1000.median_us)} µs (target < 50 µs)`);
}
