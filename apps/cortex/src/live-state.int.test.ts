import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CortexConfig, type FleetEvent, type FleetSnapshot } from "@cortex/protocol";
import { startFakeNeuron } from "@cortex/testkit";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import {
  ADMIN,
  CATALOGUE,
  gpu,
  NEURON_TOKEN,
  resident,
  useCortexFleet,
} from "./cortex.fixtures.js";
import { type Cortex, startCortex } from "./cortex.js";
import { silentLog } from "./log.js";
import { startRelay } from "./relay.fixtures.js";

// Live state (docs/contract.md "Live state"): cortex subscribes to each healthy neuron's
// `GET /events` (the testkit fake neuron here) and applies its news at once. Polls are set a
// minute apart, so whatever changes within these tests came through the stream.

const { fleet, neuron } = useCortexFleet();

const SLOW_POLLS = { poll_interval_ms: 60_000 };

const fleetOf = async (c: Cortex): Promise<FleetSnapshot> =>
  (await (
    await fetch(`${c.url}/api/fleet`, { headers: { authorization: `Bearer ${ADMIN}` } })
  ).json()) as FleetSnapshot;

const statusOn = async (c: Cortex, node: string, model: string) =>
  (await fleetOf(c)).nodes
    .find((entry) => entry.name === node)
    ?.models.find((entry) => entry.id === model)?.status ?? null;

const onNeuron = (url: string, path: string, body: unknown) =>
  fetch(`${url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${NEURON_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

const healthyIn = (c: Cortex, name: string) =>
  c.store.snapshot.nodes.find((node) => node.name === name)?.healthy;

describe("live state", () => {
  it("shows a load and an unload done on the neuron directly in /api/fleet without a poll", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)] }], SLOW_POLLS);
    const events: FleetEvent[] = [];
    c.store.subscribe((event) => events.push(event));
    const a = neuron("a");
    const load = await onNeuron(a.url, "/models/load", {
      model_id: "chat-small",
      harness: "llamacpp",
      source: "small.gguf",
      vram_mb: 6000,
    });
    expect(load.status).toBe(200);
    const loadedAt = performance.now();
    await expect.poll(() => statusOn(c, "a", "chat-small"), { timeout: 2000 }).toBe("loaded");
    const loadSeenMs = performance.now() - loadedAt;
    expect(events).toContainEqual(
      expect.objectContaining({
        type: "model_state",
        node: "a",
        model: "chat-small",
        to: "loaded",
      }),
    );

    expect((await onNeuron(a.url, "/models/unload", { model_id: "chat-small" })).status).toBe(200);
    const unloadedAt = performance.now();
    await expect.poll(() => statusOn(c, "a", "chat-small"), { timeout: 2000 }).toBe(null);
    const unloadSeenMs = performance.now() - unloadedAt;
    expect(events).toContainEqual(
      expect.objectContaining({
        type: "model_state",
        model: "chat-small",
        from: "loaded",
        to: null,
      }),
    );
    process.stderr.write(
      `live state: load seen after ${Math.round(loadSeenMs)} ms, unload after ${Math.round(unloadSeenMs)} ms\n`,
    );
  });

  it("shows requests in flight on the neuron as they change", async () => {
    const c = await fleet(
      [{ name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] }],
      SLOW_POLLS,
    );
    const a = neuron("a");
    a.setLatency(1000);
    const inFlight = () =>
      c.store.snapshot.nodes[0]?.models.find((model) => model.id === "chat-small")?.in_flight;
    const answer = onNeuron(a.url, "/v1/chat/completions", {
      model: "chat-small",
      messages: [{ role: "user", content: "hi" }],
    });
    await expect.poll(inFlight, { timeout: 2000 }).toBe(1);
    expect((await answer).status).toBe(200);
    await expect.poll(inFlight, { timeout: 2000 }).toBe(0);
  });

  it("makes a killed neuron unroutable at once", async () => {
    const c = await fleet(
      [
        { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
        { name: "b", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
      ],
      SLOW_POLLS,
    );
    await expect.poll(() => c.store.snapshot.nodes.length).toBe(2);
    // Subscribed: the fake neuron's first message is the snapshot, applied as news.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const events: FleetEvent[] = [];
    c.store.subscribe((event) => events.push(event));
    const killedAt = performance.now();
    await neuron("a").kill();
    await expect.poll(() => healthyIn(c, "a"), { timeout: 1000 }).toBe(false);
    const tookMs = performance.now() - killedAt;
    // The stream's drop said so first (the poll it caused then failed to connect).
    expect(events.find((event) => event.type === "node_health")).toMatchObject({
      node: "a",
      healthy: false,
      error: expect.stringMatching(/^suspect: event stream: /),
    });
    expect(healthyIn(c, "b")).toBe(true);
    process.stderr.write(`live state: killed neuron unroutable after ${Math.round(tookMs)} ms\n`);
  });
});

describe("live state through a partition", () => {
  it("makes a partitioned neuron unroutable once its stream has been silent for 1.5 s", async () => {
    const closers: (() => Promise<unknown>)[] = [];
    try {
      const dir = await mkdtemp(join(tmpdir(), "cortex-live-"));
      closers.push(() => rm(dir, { recursive: true, force: true }));
      await writeFile(join(dir, "models.yaml"), stringify(CATALOGUE));
      const a = await startFakeNeuron({
        name: "a",
        token: NEURON_TOKEN,
        devices: [gpu(0, 24_000)],
      });
      closers.push(() => a.close());
      // Nothing is refused or reset through the relay once cut: only the silence tells.
      const relay = await startRelay(a.port);
      closers.push(() => relay.close());
      const c = await startCortex(
        CortexConfig.parse({
          listen: "127.0.0.1:0",
          catalogue: dir,
          data_dir: ":memory:",
          admin_token: ADMIN,
          neurons: [{ name: "a", url: relay.url, token: NEURON_TOKEN }],
          ...SLOW_POLLS,
        }),
        silentLog,
      );
      closers.push(() => c.stop(0));
      await expect.poll(() => healthyIn(c, "a"), { timeout: 5000 }).toBe(true);
      // The stream is open once its snapshot came (a heartbeat follows within a second).
      await new Promise((resolve) => setTimeout(resolve, 200));
      const cutAt = performance.now();
      relay.partition();
      await expect.poll(() => healthyIn(c, "a"), { timeout: 4000 }).toBe(false);
      const tookMs = performance.now() - cutAt;
      expect(c.store.snapshot.nodes[0]?.error).toBe("suspect: event stream: no event for 1500 ms");
      // Silent since the last heartbeat, at most a second before the cut.
      expect(tookMs).toBeGreaterThanOrEqual(400);
      expect(tookMs).toBeLessThan(2500);
      process.stderr.write(
        `live state: partitioned neuron unroutable after ${Math.round(tookMs)} ms\n`,
      );
    } finally {
      for (const close of closers.reverse()) await close();
    }
  });
});
