import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CortexModelList, FleetAnswer } from "@cortex/protocol";
import { FAKE_HARNESS_TEMPLATE, processesMentioning, waitFor } from "@cortex/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type AppProcess, startCortexProcess, stopApp } from "./support/app-process.js";
import { type EventRecorder, recordEvents } from "./support/fleet-events.js";
import { type NeuronProcess, startNeuron, testNeuronConfig } from "./support/neuron-process.js";

// Scheduling under contention (issue 15) on the built processes: the built cortex in front of
// four built neurons, each with one static 24000 MB GPU and fake harnesses whose "model files"
// script their start delay and latency. Requests wait for a swap instead of 503 no_capacity and
// are collated by model, a saturated model scales out to a second node, and min_replicas is
// loaded without a request. Which harness a node declares decides which models may go there,
// so the three scenarios share one cortex without touching each other's GPUs.

const KEY = "sk-contention";
const ADMIN = "admin-contention";
const TOKEN = "neuron-contention";

/** Node name → the one harness it declares (the fake harness under that name). */
const NODES = { solo: "solo", left: "pair", right: "pair", keeper: "kept" } as const;

/** A catalogue model of 16000 MB: two never fit one 24000 MB GPU together. */
const big = (id: string, harness: string, fields: Record<string, unknown> = {}) => ({
  id,
  harness,
  source: `${id}.json`,
  vram_mb: 16_000,
  idle_ttl_s: 0,
  ...fields,
});

const CATALOGUE = {
  models: [
    ...["a", "b", "c"].map((id) => big(id, "solo", { max_concurrency: 4 })),
    big("wide", "pair", { max_concurrency: 2, max_replicas: 2 }),
    big("kept", "kept", { min_replicas: 1 }),
  ],
};

/** The fake harness's behaviour per model (its "model file"). */
const BEHAVIOURS: Record<string, Record<string, number>> = {
  a: { start_delay_ms: 300, latency_ms: 200 },
  b: { start_delay_ms: 300, latency_ms: 200 },
  c: { start_delay_ms: 300, latency_ms: 200 },
  wide: { start_delay_ms: 300, latency_ms: 800 },
  kept: { start_delay_ms: 100 },
};

let dir: string;
let cortex: AppProcess | undefined;
let events: EventRecorder | undefined;
const neurons: NeuronProcess[] = [];

const running = (): AppProcess => {
  if (!cortex) throw new Error("cortex did not start");
  return cortex;
};

/** One chat request through cortex: "200", or the status and the error code it answered. */
const chat = async (model: string): Promise<string> => {
  const answer = await fetch(`${running().url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
  });
  const body = (await answer.json()) as { error?: { code?: string } };
  return answer.status === 200 ? "200" : `${answer.status} ${body.error?.code}`;
};

/** The sum of a Prometheus series of cortex's `/metrics` over the series carrying `labels`. */
const metric = async (name: string, labels: Record<string, string>): Promise<number> => {
  const text = await (await fetch(`${running().url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n"))
    if (
      line.startsWith(`${name}{`) &&
      Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))
    )
      sum += Number(line.split(" ").at(-1));
  return sum;
};

const fleet = async () => FleetAnswer.parse(await (await running().api("/api/fleet")).json());

/** The nodes where cortex sees `model` loaded, by name. */
const holders = async (model: string): Promise<string[]> =>
  (await fleet()).nodes
    .filter((node) => node.models.some((m) => m.id === model && m.status === "loaded"))
    .map((node) => node.name)
    .sort();

const modelList = async () =>
  CortexModelList.parse(
    await (
      await fetch(`${running().url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })
    ).json(),
  );

beforeAll(async () => {
  const startedAt = new Date();
  dir = await mkdtemp(join(tmpdir(), "contention-e2e-"));
  await mkdir(join(dir, "catalogue"));
  await mkdir(join(dir, "models"));
  await writeFile(join(dir, "catalogue", "models.yaml"), stringify(CATALOGUE));
  for (const [id, behaviour] of Object.entries(BEHAVIOURS))
    await writeFile(join(dir, "models", `${id}.json`), JSON.stringify(behaviour));
  for (const [name, harness] of Object.entries(NODES)) {
    const config = testNeuronConfig(dir, name, TOKEN, {
      devices: [{ vram_total_mb: 24_000 }],
      harnesses: { [harness]: FAKE_HARNESS_TEMPLATE },
      stop_grace_ms: 2000,
    });
    neurons.push(await startNeuron(dir, config));
  }
  cortex = await startCortexProcess({
    dir,
    apiKey: KEY,
    adminToken: ADMIN,
    neurons: neurons.map((neuron, index) => ({
      name: Object.keys(NODES)[index],
      url: neuron.url,
      token: TOKEN,
    })),
    config: { poll_interval_ms: 200 },
  });
  // From before cortex started: min_replicas may be acted on before the stream is open.
  events = await recordEvents(cortex.url, ADMIN, startedAt);
  await waitFor("every neuron healthy in cortex", async () =>
    (await fleet()).nodes.every((node) => node.healthy),
  );
}, 60_000);

afterAll(async () => {
  try {
    await events?.close();
  } finally {
    if (cortex) await stopApp(cortex);
    for (const neuron of neurons) await stopApp(neuron);
    for (const { pid } of processesMentioning(dir)) process.kill(pid, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});

describe("cortex scheduling under contention, on built processes", () => {
  it("keeps min_replicas loaded without a request, and lists waiting counts", async () => {
    await expect.poll(() => holders("kept"), { timeout: 15_000 }).toEqual(["keeper"]);
    await expect
      .poll(() => events?.of("scaled_out").filter((event) => event.model === "kept"))
      .toEqual([expect.objectContaining({ node: "keeper", reason: "min_replicas", replicas: 1 })]);
    // No request asked for it.
    expect(await metric("cortex_requests_total", { model: "kept" })).toBe(0);
    const list = await modelList();
    expect(list.data.map((model) => model.id).sort()).toEqual(["a", "b", "c", "kept", "wide"]);
    for (const model of list.data) expect(typeof model.waiting).toBe("number");
    expect(list.data.find((model) => model.id === "kept")).toMatchObject({
      status: "loaded",
      waiting: 0,
      locations: [{ node: "keeper", status: "loaded" }],
    });
  }, 30_000);

  it("serves A B C A B C … on one GPU by waiting and swapping, one load per model", async () => {
    const order = Array.from({ length: 12 }, (_, index) => ["a", "b", "c"][index % 3] as string);
    let burstDone = false;
    const burst = Promise.all(order.map(chat)).finally(() => {
      burstDone = true;
    });
    // While B and C wait for A's turn, /v1/models counts them.
    let mostWaiting = 0;
    while (!burstDone) {
      for (const model of (await modelList()).data)
        mostWaiting = Math.max(mostWaiting, model.waiting);
      await sleep(50);
    }
    // Before issue 15 most of these were "503 no_capacity".
    expect(await burst).toEqual(Array(12).fill("200"));
    expect(mostWaiting).toBeGreaterThan(0);
    for (const model of ["a", "b", "c"])
      expect(await metric("cortex_requests_total", { model, node: "solo", status: "200" })).toBe(4);
    // Collated: one load per model, not one per change of model.
    expect(await metric("cortex_load_duration_seconds_count", { node: "solo" })).toBe(3);
    await expect
      .poll(() =>
        events
          ?.of("load_started")
          .filter((event) => event.node === "solo")
          .map((event) => event.model)
          .sort(),
      )
      .toEqual(["a", "b", "c"]);
    const swaps = events?.of("swap_started").filter((event) => event.node === "solo") ?? [];
    expect(swaps).toHaveLength(2);
    for (const swap of swaps) {
      expect(swap.evicting).toHaveLength(1);
      expect(swap.evicting).not.toContain(swap.model);
      expect(swap.waiting).toBeGreaterThan(0);
    }
    expect(await metric("cortex_swaps_total", { node: "solo" })).toBe(2);
    expect((await holders("a")).concat(await holders("b"), await holders("c"))).toEqual(["solo"]);
  }, 60_000);

  it("scales a saturated model out to a second node and serves from both", async () => {
    expect(await chat("wide")).toBe("200");
    await expect.poll(async () => (await holders("wide")).length).toBe(1);
    const [first] = await holders("wide");
    const second = first === "left" ? "right" : "left";
    const answers = await Promise.all(Array.from({ length: 8 }, () => chat("wide")));
    expect(answers).toEqual(Array(8).fill("200"));
    await expect.poll(() => holders("wide")).toEqual(["left", "right"]);
    await expect
      .poll(() => events?.of("scaled_out").filter((event) => event.model === "wide"))
      .toEqual([expect.objectContaining({ node: second, reason: "demand", replicas: 2 })]);
    for (const node of ["left", "right"])
      expect(
        await metric("cortex_requests_total", { model: "wide", node, status: "200" }),
      ).toBeGreaterThan(0);
  }, 60_000);
});
