import type { FleetSnapshot } from "@cortex/protocol";
import { type FleetNeuron, startFleet, THIS_BUILD } from "./contention-fleet.js";
import { fleetOf, NEURON_TOKEN } from "./stack.js";
import {
  type BenchResult,
  type Budget,
  now,
  print,
  ROOT,
  round,
  type Spread,
  sleep,
  spread,
  table,
  writeReport,
} from "./support.js";

// Issue 19 "live state instead of only polling", measured on three real neurons (fake harness,
// static GPUs) behind cortex with its **default** settings (polls every 2 s): a load and an
// unload done on the first neuron directly, and how soon cortex's `/api/fleet` shows each; then
// the second neuron SIGKILLed and the third SIGSTOPped (hung: its kernel still holds the
// connections), and how soon `/api/fleet` calls each unhealthy.

/** How many rounds and what the fleet looks like; the smoke run only does fewer rounds. */
export interface LiveStateOptions {
  /** Load-then-unload rounds on the first neuron. */
  readonly rounds: number;
  readonly deviceMb: number;
  readonly vramMb: number;
}
export const LIVE_STATE_FULL: LiveStateOptions = { rounds: 20, deviceMb: 24_000, vramMb: 1000 };
export const LIVE_STATE_SMOKE: LiveStateOptions = { ...LIVE_STATE_FULL, rounds: 2 };

/** A change must show in `/api/fleet` within this long after the neuron answered it. */
const VISIBLE_MS = 200;
/** A killed or hung neuron must be unhealthy in `/api/fleet` within this long. */
const UNROUTABLE_MS = 2000;
/** How often `/api/fleet` is read while waiting. */
const READ_EVERY_MS = 10;
/** A wait that lasts this long is given up (and counts as a miss). */
const GIVE_UP_MS = 10_000;
/** cortex.yaml's default poll_interval_ms, which every run keeps: what polling alone would take. */
const DEFAULT_POLL_MS = 2000;
const MODEL = "live";

/** Reads `/api/fleet` every READ_EVERY_MS until `seen` holds; the ms it took, or null. */
const until = async (
  cortexUrl: string,
  since: number,
  seen: (fleet: FleetSnapshot) => boolean,
): Promise<{ ms: number | null; fleet: FleetSnapshot | null }> => {
  for (;;) {
    const fleet = await fleetOf(cortexUrl);
    if (seen(fleet)) return { ms: now() - since, fleet };
    if (now() - since > GIVE_UP_MS) return { ms: null, fleet: null };
    await sleep(READ_EVERY_MS);
  }
};

const statusOn = (fleet: FleetSnapshot, node: string): string | null =>
  fleet.nodes.find((entry) => entry.name === node)?.models.find((m) => m.id === MODEL)?.status ??
  null;

const onNeuron = async (neuron: FleetNeuron, path: string, body: unknown): Promise<void> => {
  const res = await fetch(`${neuron.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${NEURON_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (res.status !== 200)
    throw new Error(`${path} on ${neuron.name}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
};

/** One load and one unload on the neuron itself, each timed from its answer to /api/fleet. */
const loadAndUnload = async (cortexUrl: string, neuron: FleetNeuron, o: LiveStateOptions) => {
  await onNeuron(neuron, "/models/load", {
    model_id: MODEL,
    harness: "fake",
    source: `${MODEL}.json`,
    devices: [0],
    vram_mb: o.vramMb,
  });
  const loaded = await until(
    cortexUrl,
    now(),
    (fleet) => statusOn(fleet, neuron.name) === "loaded",
  );
  await onNeuron(neuron, "/models/unload", { model_id: MODEL });
  const unloaded = await until(cortexUrl, now(), (fleet) => statusOn(fleet, neuron.name) === null);
  return { load_ms: loaded.ms, unload_ms: unloaded.ms };
};

/** Sends `signal` to the neuron and times it until /api/fleet calls it unhealthy. */
const fail = async (cortexUrl: string, neuron: FleetNeuron, signal: NodeJS.Signals) => {
  const since = now();
  process.kill(neuron.pid, signal);
  const seen = await until(
    cortexUrl,
    since,
    (fleet) => fleet.nodes.find((node) => node.name === neuron.name)?.healthy === false,
  );
  const node = seen.fleet?.nodes.find((entry) => entry.name === neuron.name);
  return {
    node: neuron.name,
    signal,
    unroutable_ms: seen.ms === null ? null : round(seen.ms),
    error: node?.error ?? null,
  };
};

const known = (values: readonly (number | null)[]): number[] =>
  values.filter((value): value is number => value !== null);

const spreadOf = (values: readonly (number | null)[]): Spread & { missing: number } => ({
  ...spread(known(values)),
  missing: values.length - known(values).length,
});

const ms = (value: number | null): string => (value === null ? "none" : String(Math.round(value)));

/** Starts the fleet, measures both budgets, and stops every process it started. */
export const runLiveState = async (o: LiveStateOptions): Promise<BenchResult> => {
  const fleet = await startFleet({
    apps: THIS_BUILD(ROOT),
    nodes: 3,
    deviceMb: o.deviceMb,
    models: [{ id: MODEL, behaviour: {}, profile: { vram_mb: o.vramMb } }],
    pollIntervalMs: null,
  });
  const [direct, killed, hung] = fleet.neurons;
  if (!direct || !killed || !hung) throw new Error("the fleet has fewer than three neurons");
  let stopped = false;
  try {
    const rounds: { load_ms: number | null; unload_ms: number | null }[] = [];
    for (let i = 0; i < o.rounds; i += 1)
      rounds.push(await loadAndUnload(fleet.cortex.url, direct, o));
    const kill = await fail(fleet.cortex.url, killed, "SIGKILL");
    stopped = true;
    const hang = await fail(fleet.cortex.url, hung, "SIGSTOP");
    const load = spreadOf(rounds.map((r) => r.load_ms));
    const unload = spreadOf(rounds.map((r) => r.unload_ms));
    const failures = [kill, hang];

    const budgets: Budget[] = [
      {
        budget: `live-state: a load or unload done on a neuron directly is visible in cortex's /api/fleet within ${VISIBLE_MS} ms`,
        measured: `load p50 ${ms(load.p50)} / max ${ms(load.max)} ms, unload p50 ${ms(unload.p50)} / max ${ms(unload.max)} ms over ${o.rounds} rounds${load.missing + unload.missing > 0 ? `, ${load.missing + unload.missing} never seen` : ""}`,
        pass:
          load.missing + unload.missing === 0 && load.max <= VISIBLE_MS && unload.max <= VISIBLE_MS,
      },
      ...failures.map((f) => ({
        budget: `live-state: a neuron ${f.signal === "SIGKILL" ? "killed (SIGKILL)" : "hung (SIGSTOP)"} is unroutable within ${UNROUTABLE_MS} ms with default settings`,
        measured: `${ms(f.unroutable_ms)} ms (${f.error ?? "still healthy"})`,
        pass: f.unroutable_ms !== null && f.unroutable_ms <= UNROUTABLE_MS,
      })),
    ];
    writeReport("live-state", {
      benchmark: "live-state",
      date: new Date().toISOString(),
      options: o,
      defaults: { poll_interval_ms: DEFAULT_POLL_MS },
      read_every_ms: READ_EVERY_MS,
      load_visible_ms: load,
      unload_visible_ms: unload,
      rounds,
      failures,
      budgets,
    });

    const visible = table(
      ["change", "rounds", "p50 ms", "p90 ms", "max ms", "never seen"],
      [
        ["load", load.n, ms(load.p50), ms(load.p90), ms(load.max), load.missing],
        ["unload", unload.n, ms(unload.p50), ms(unload.p90), ms(unload.max), unload.missing],
      ],
    );
    const unroutable = table(
      ["neuron", "signal", "unhealthy in /api/fleet after ms", "cortex's reason"],
      failures.map((f) => [f.node, f.signal, ms(f.unroutable_ms), f.error ?? "still healthy"]),
    );
    print("Live state", `${visible.text}\n\n${unroutable.text}`);
    const markdown = [
      `Three neurons (one static ${o.deviceMb} MB GPU each, the fake harness as a template harness) behind cortex with its default settings (poll_interval_ms ${DEFAULT_POLL_MS}, poll_timeout_ms 1500). ${o.rounds} rounds of \`POST /models/load\` then \`POST /models/unload\` of a ${o.vramMb} MB model sent to the first neuron itself (its token, not through cortex); each is timed from the neuron's answer until cortex's \`/api/fleet\`, read every ${READ_EVERY_MS} ms, shows the model loaded (or gone) there — polling alone would take up to ${DEFAULT_POLL_MS} ms. Then the second neuron is SIGKILLed and the third SIGSTOPped (hung: its kernel still holds the connections, nothing answers; SIGCONT at the end), each timed until \`/api/fleet\` calls it unhealthy. The reason is the node's \`error\` at that moment: a dropped stream makes the node suspect and polls it at once, and that poll's failure may already have replaced \`suspect: event stream: …\`.`,
      "",
      visible.markdown,
      "",
      unroutable.markdown,
    ].join("\n");
    return { name: "live-state", title: "Live state", markdown, budgets };
  } finally {
    try {
      if (stopped) process.kill(hung.pid, "SIGCONT");
    } catch {
      // Already gone.
    }
    await fleet.stop();
  }
};
