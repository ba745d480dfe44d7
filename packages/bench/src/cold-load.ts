import { join } from "node:path";
import { processesMentioning } from "@cortex/testkit";
import { API_KEY, loadsOf, startStack } from "./stack.js";
import { type BenchResult, now, print, round, spread, table, writeReport } from "./support.js";

export interface ColdLoadOptions {
  readonly requests: number;
  readonly startDelayMs: number;
}
export const COLD_FULL: ColdLoadOptions = { requests: 200, startDelayMs: 2000 };
export const COLD_SMOKE: ColdLoadOptions = { requests: 20, startDelayMs: 300 };

/** N concurrent first requests for a cold model whose harness starts slowly. */
export const runColdLoad = async (options: ColdLoadOptions): Promise<BenchResult> => {
  const stack = await startStack([
    { id: "slow", behaviour: { start_delay_ms: options.startDelayMs }, maxConcurrency: 64 },
  ]);
  try {
    const body = JSON.stringify({
      model: "slow",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 8,
    });
    const start = now();
    const outcomes = await Promise.all(
      Array.from({ length: options.requests }, async () => {
        const sent = now();
        try {
          const res = await fetch(`${stack.cortex.url}/v1/chat/completions`, {
            method: "POST",
            headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
            body,
          });
          await res.arrayBuffer();
          return { status: res.status, ms: now() - sent };
        } catch {
          return { status: 0, ms: now() - sent };
        }
      }),
    );
    const wallMs = now() - start;
    const loads = await loadsOf(stack.cortex.url, "slow");
    // A second, independent count: harness processes the neuron started for the model.
    const harnessProcesses = processesMentioning(join(stack.dir, "models", "slow.json")).filter(
      (p) => !p.cmdline.includes("watchdog"),
    ).length;
    const ok = outcomes.filter((o) => o.status === 200).length;
    const statuses: Record<string, number> = {};
    for (const o of outcomes) statuses[o.status] = (statuses[o.status] ?? 0) + 1;
    const latency = spread(outcomes.map((o) => o.ms));
    const report = {
      benchmark: "cold-load",
      date: new Date().toISOString(),
      options,
      requests: options.requests,
      loads,
      harness_processes: harnessProcesses,
      successes: ok,
      statuses,
      wall_ms: round(wallMs),
      latency_ms: latency,
    };
    writeReport("cold-load", report);
    const t = table(
      [
        "requests",
        "harness start delay ms",
        "loads",
        "harness processes",
        "successes",
        "min ms",
        "p50 ms",
        "p99 ms",
        "max ms",
      ],
      [
        [
          options.requests,
          options.startDelayMs,
          loads,
          harnessProcesses,
          ok,
          latency.min,
          latency.p50,
          latency.p99,
          latency.max,
        ],
      ],
    );
    print("Cold-load coalescing", t.text);
    return {
      name: "cold-load",
      title: "Cold-load coalescing",
      markdown: `${options.requests} concurrent first requests through cortex for a model whose fake harness takes ${options.startDelayMs} ms to start (loads from \`cortex_load_duration_seconds_count\`):\n\n${t.markdown}`,
      budgets: [
        {
          budget: `${options.requests} concurrent cold requests cause exactly one load`,
          measured: `${loads} load(s), ${harnessProcesses} harness process(es)`,
          pass: loads === 1 && harnessProcesses === 1,
        },
        {
          budget: `all ${options.requests} cold requests succeed`,
          measured: `${ok} succeeded (${JSON.stringify(statuses)})`,
          pass: ok === options.requests,
        },
      ],
    };
  } finally {
    await stack.stop();
  }
};
