import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "@cortex/testkit";
import { API_KEY, fleetOf, NEURON_TOKEN, startCortex } from "./stack.js";
import {
  type BenchResult,
  cpuSeconds,
  now,
  print,
  readyLine,
  round,
  sleep,
  spawnNode,
  spread,
  stopChild,
  table,
  writeReport,
} from "./support.js";

const FLEET_CLI = fileURLToPath(new URL("./fleet-cli.js", import.meta.url));

export interface FleetOptions {
  readonly neurons: number;
  readonly pollIntervalMs: number;
  readonly durationS: number;
}
export const FLEET_FULL: FleetOptions = { neurons: 500, pollIntervalMs: 2000, durationS: 30 };
export const FLEET_SMOKE: FleetOptions = { neurons: 20, pollIntervalMs: 500, durationS: 2 };

const UNHEALTHY_AFTER = 3;
const POLL_TIMEOUT_MS = 1500;

/** Cortex polling N fake neurons (in another process): CPU share, responsiveness, snapshot age. */
export const runFleetScale = async (options: FleetOptions): Promise<BenchResult> => {
  const dir = await mkdtemp(join(tmpdir(), "cortex-bench-fleet-"));
  const fleetProcess = spawnNode([FLEET_CLI, String(options.neurons), NEURON_TOKEN]);
  try {
    const info = await readyLine<{ control: string; neurons: { name: string; url: string }[] }>(
      fleetProcess,
      "fleet process",
    );
    const cortex = await startCortex(
      dir,
      Array.from({ length: 20 }, (_, i) => `fleet-${i}`).map((id) => ({
        id,
        harness: "llamacpp",
        source: `${id}.gguf`,
        vram_mb: 8000,
      })),
      {
        poll_interval_ms: options.pollIntervalMs,
        poll_timeout_ms: POLL_TIMEOUT_MS,
        unhealthy_after_failures: UNHEALTHY_AFTER,
        api_keys: [API_KEY],
        neurons: info.neurons.map((n) => ({ name: n.name, url: n.url, token: NEURON_TOKEN })),
      },
    );
    try {
      const fleet = () => fleetOf(cortex.url);
      await waitFor(
        "every fake neuron healthy in cortex",
        async () => {
          const f = await fleet();
          return f.nodes.length === options.neurons && f.nodes.every((n) => n.healthy);
        },
        60_000,
      );
      // Settle one interval, then measure CPU over the window; /health latency every 100 ms
      // stands in for event-loop delay (cortex exposes no histogram).
      await sleep(options.pollIntervalMs);
      const cpu0 = cpuSeconds(cortex.pid);
      const t0 = now();
      const health: number[] = [];
      while (now() - t0 < options.durationS * 1000) {
        const start = now();
        await (await fetch(`${cortex.url}/health`)).arrayBuffer();
        health.push(now() - start);
        await sleep(100);
      }
      const cpuShare = (cpuSeconds(cortex.pid) - cpu0) / ((now() - t0) / 1000);
      // Snapshot age: how old the fleet snapshot is when asked for, sampled over an interval.
      const ages: number[] = [];
      const fleetMs: number[] = [];
      for (let i = 0; i < 8; i += 1) {
        const start = now();
        const f = await fleet();
        fleetMs.push(now() - start);
        ages.push(Date.now() - Date.parse(f.taken_at));
        await sleep(options.pollIntervalMs / 4);
      }
      // Kill node 0 and time until cortex reports it unhealthy; "only-on-0" (resident on node 0
      // alone, not in the catalogue, so never re-placed) must then be unroutable.
      const victim = info.neurons[0]?.name ?? "";
      const killedAt = now();
      await fetch(`${info.control}/kill/0`, { method: "POST" });
      const windowMs = UNHEALTHY_AFTER * options.pollIntervalMs + POLL_TIMEOUT_MS;
      let unhealthyMs = Number.NaN;
      const deadline = killedAt + windowMs * 3;
      while (now() < deadline) {
        const f = await fleet();
        if (f.nodes.find((n) => n.name === victim)?.healthy === false) {
          unhealthyMs = now() - killedAt;
          break;
        }
        await sleep(100);
      }
      const after = await fetch(`${cortex.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "only-on-0", messages: [{ role: "user", content: "hi" }] }),
      });
      await after.arrayBuffer();
      const healthSpread = spread(health);
      const ageSpread = spread(ages);
      const report = {
        benchmark: "fleet-scale",
        date: new Date().toISOString(),
        options,
        cortex_cpu_share_of_core: round(cpuShare, 4),
        health_latency_ms: healthSpread,
        snapshot_age_ms: ageSpread,
        fleet_api_ms: spread(fleetMs),
        dead_neuron: {
          unhealthy_after_ms: round(unhealthyMs, 1),
          failure_window_ms: windowMs,
          status_of_its_model_after: after.status,
        },
      };
      writeReport("fleet-scale", report);
      const t = table(
        [
          "neurons",
          "poll ms",
          "window s",
          "cortex CPU % of a core",
          "/health p50 ms",
          "/health p99 ms",
          "snapshot age p50 ms",
          "snapshot age max ms",
          "dead → unhealthy ms",
          "failure window ms",
          "its model then",
        ],
        [
          [
            options.neurons,
            options.pollIntervalMs,
            options.durationS,
            round(cpuShare * 100, 1),
            healthSpread.p50,
            healthSpread.p99,
            ageSpread.p50,
            ageSpread.max,
            round(unhealthyMs, 0),
            windowMs,
            after.status,
          ],
        ],
      );
      print("Fleet scale", t.text);
      return {
        name: "fleet-scale",
        title: "Fleet scale",
        markdown: `Cortex polling ${options.neurons} testkit fake neurons (one separate process) every ${options.pollIntervalMs} ms; CPU from /proc utime+stime over ${options.durationS} s; \`/health\` latency sampled every 100 ms stands in for event-loop delay (cortex exposes no histogram); the failure window is unhealthy_after_failures × poll interval + poll timeout:\n\n${t.markdown}`,
        budgets: [
          {
            budget: `polling ${options.neurons} neurons every ${options.pollIntervalMs / 1000} s costs < 20 % of a core`,
            measured: `${round(cpuShare * 100, 1)} %`,
            pass: cpuShare < 0.2,
          },
          {
            budget: "a dead neuron is unroutable within its configured failure window",
            measured: `${round(unhealthyMs, 0)} ms (window ${windowMs} ms; its model then answers ${after.status})`,
            pass: unhealthyMs <= windowMs && after.status !== 200,
          },
        ],
      };
    } finally {
      await stopChild(cortex.child);
    }
  } finally {
    await stopChild(fleetProcess.child);
    await rm(dir, { recursive: true, force: true });
  }
};
