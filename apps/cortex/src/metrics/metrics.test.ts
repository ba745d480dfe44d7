import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Device, FleetNode, NeuronModel } from "@cortex/protocol";
import { replicaKey } from "@cortex/routing";
import { gpuDevice, neuronModel } from "@cortex/testkit";
import express from "express";
import { afterEach, describe, expect, it } from "vitest";
import { FleetStore } from "../fleet/fleet-store.js";
import { CortexMetrics, type LiveCounts, metricsHandler } from "./metrics.js";

const targets = [
  { name: "gpu-a", url: "http://gpu-a.lan:13131", token: "" },
  { name: "gpu-b", url: "http://gpu-b.lan:13131", token: "" },
];

const device = (index: number, total: number, free: number): Device =>
  gpuDevice(index, total, free);

const model = (id: string, status: NeuronModel["status"]): NeuronModel =>
  neuronModel(id, { status, devices: [0], vram_mb: 1000 });

const healthy = (node: FleetNode, devices: Device[], models: NeuronModel[]): FleetNode => ({
  ...node,
  healthy: true,
  consecutive_failures: 0,
  error: null,
  devices,
  models,
});

/** The sample lines of the exposition, without HELP/TYPE comments. */
const samples = async (metrics: CortexMetrics): Promise<string[]> =>
  (await metrics.registry.metrics())
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"));

describe("CortexMetrics", () => {
  it("exports request, load and eviction series after observations", async () => {
    const metrics = new CortexMetrics({ store: new FleetStore(targets) });
    metrics.observeRequest({
      model: "qwen3-8b",
      node: "gpu-a",
      status: 200,
      seconds: 0.2,
      ttftSeconds: 0.05,
    });
    metrics.observeRequest({ model: "qwen3-8b", node: "gpu-a", status: 200, seconds: 0.3 });
    metrics.observeRequest({ model: "unknown", node: "none", status: 404, seconds: 0.001 });
    metrics.coldStart("qwen3-8b", "gpu-a");
    metrics.observeLoad("qwen3-8b", "gpu-a", "success", 12);
    metrics.observeLoad("llama-70b", "gpu-b", "failure", 3);
    metrics.eviction("llama-70b", "gpu-b");

    const lines = await samples(metrics);
    expect(lines).toEqual(
      expect.arrayContaining([
        'cortex_requests_total{model="qwen3-8b",node="gpu-a",status="200"} 2',
        'cortex_requests_total{model="unknown",node="none",status="404"} 1',
        'cortex_request_duration_seconds_count{model="qwen3-8b",node="gpu-a",status="200"} 2',
        'cortex_request_duration_seconds_sum{model="qwen3-8b",node="gpu-a",status="200"} 0.5',
        'cortex_request_duration_seconds_bucket{le="0.0005",model="qwen3-8b",node="gpu-a",status="200"} 0',
        'cortex_request_duration_seconds_bucket{le="120",model="qwen3-8b",node="gpu-a",status="200"} 2',
        'cortex_time_to_first_token_seconds_count{model="qwen3-8b",node="gpu-a"} 1',
        'cortex_cold_starts_total{model="qwen3-8b",node="gpu-a"} 1',
        'cortex_load_duration_seconds_count{model="qwen3-8b",node="gpu-a",outcome="success"} 1',
        'cortex_load_duration_seconds_count{model="llama-70b",node="gpu-b",outcome="failure"} 1',
        'cortex_evictions_total{model="llama-70b",node="gpu-b"} 1',
      ]),
    );
    // Only the one request that had a first token counts towards time to first token.
    expect(
      lines.filter((line) => line.startsWith("cortex_time_to_first_token_seconds_count")),
    ).toHaveLength(1);
  });

  it.each([
    ["NaN", Number.NaN],
    ["infinity", Number.POSITIVE_INFINITY],
  ])("never throws on a %s duration", async (_name, seconds) => {
    const metrics = new CortexMetrics({ store: new FleetStore(targets) });
    expect(() => {
      metrics.observeRequest({
        model: "m",
        node: "gpu-a",
        status: 200,
        seconds,
        ttftSeconds: seconds,
      });
      metrics.observeLoad("m", "gpu-a", "success", seconds);
    }).not.toThrow();
    const lines = await samples(metrics);
    expect(lines).toContain('cortex_requests_total{model="m",node="gpu-a",status="200"} 1');
    expect(lines.some((line) => line.startsWith("cortex_request_duration_seconds"))).toBe(false);
  });

  it("keeps separate registries per instance", async () => {
    const store = new FleetStore(targets);
    const first = new CortexMetrics({ store });
    const second = new CortexMetrics({ store });
    first.eviction("m", "gpu-a");
    expect(await samples(first)).toContain('cortex_evictions_total{model="m",node="gpu-a"} 1');
    expect((await samples(second)).some((line) => line.startsWith("cortex_evictions_total"))).toBe(
      false,
    );
  });

  it("computes snapshot gauges at scrape time and drops nodes that left", async () => {
    const store = new FleetStore(targets);
    const metrics = new CortexMetrics({ store });

    // Before the first poll every node is configured but unhealthy.
    let lines = await samples(metrics);
    expect(lines).toEqual(
      expect.arrayContaining([
        'cortex_node_healthy{node="gpu-a"} 0',
        'cortex_node_healthy{node="gpu-b"} 0',
      ]),
    );
    expect(lines.some((line) => line.startsWith("cortex_device_vram_total_bytes"))).toBe(false);

    store.update((current) => ({
      ...current,
      nodes: current.nodes.map((node) =>
        node.name === "gpu-a"
          ? healthy(
              node,
              [device(0, 24_000, 20_000), device(1, 24_000, 4_000)],
              [
                model("qwen3-8b", "loaded"),
                model("phi-4", "loaded"),
                model("llama-70b", "unloaded"),
              ],
            )
          : { ...node, consecutive_failures: 2, error: "ECONNREFUSED" },
      ),
    }));

    lines = await samples(metrics);
    const MB = 1024 * 1024;
    expect(lines).toEqual(
      expect.arrayContaining([
        'cortex_node_healthy{node="gpu-a"} 1',
        'cortex_node_healthy{node="gpu-b"} 0',
        'cortex_neuron_poll_failures{node="gpu-a"} 0',
        'cortex_neuron_poll_failures{node="gpu-b"} 2',
        `cortex_device_vram_total_bytes{node="gpu-a",device="0",name="Test GPU"} ${24_000 * MB}`,
        `cortex_device_vram_free_bytes{node="gpu-a",device="1",name="Test GPU"} ${4_000 * MB}`,
        'cortex_models_resident{node="gpu-a",status="loaded"} 2',
        'cortex_models_resident{node="gpu-a",status="unloaded"} 1',
        'cortex_models_resident{node="gpu-a",status="loading"} 0',
      ]),
    );
    // The unhealthy node's stale devices and models are not exported.
    expect(
      lines.some(
        (line) => line.includes('node="gpu-b"') && line.startsWith("cortex_models_resident"),
      ),
    ).toBe(false);

    // A model changes state and the other node leaves the configuration.
    store.update((current) => ({
      ...current,
      nodes: current.nodes
        .filter((node) => node.name === "gpu-a")
        .map((node) => ({ ...node, models: [model("qwen3-8b", "loading")] })),
    }));

    lines = await samples(metrics);
    expect(lines).toEqual(
      expect.arrayContaining([
        'cortex_models_resident{node="gpu-a",status="loaded"} 0',
        'cortex_models_resident{node="gpu-a",status="loading"} 1',
        'cortex_models_resident{node="gpu-a",status="unloaded"} 0',
      ]),
    );
    expect(lines.some((line) => line.includes('node="gpu-b"'))).toBe(false);
  });

  it("reads queue depth and in-flight counts from the live source at scrape time", async () => {
    const live: { queued: Map<string, number>; inFlight: Map<string, number> } = {
      queued: new Map([["qwen3-8b", 3]]),
      inFlight: new Map([
        [replicaKey("gpu-a", "qwen3-8b"), 4],
        [replicaKey("gpu-b", "qwen3-8b"), 1],
        ["no-separator", 9],
      ]),
    };
    const metrics = new CortexMetrics({
      store: new FleetStore(targets),
      live: (): LiveCounts => live,
    });

    let lines = await samples(metrics);
    expect(lines).toEqual(
      expect.arrayContaining([
        'cortex_queue_depth{model="qwen3-8b"} 3',
        'cortex_in_flight{model="qwen3-8b",node="gpu-a"} 4',
        'cortex_in_flight{model="qwen3-8b",node="gpu-b"} 1',
      ]),
    );
    expect(lines.some((line) => line.includes("no-separator"))).toBe(false);

    live.queued = new Map();
    live.inFlight = new Map([[replicaKey("gpu-a", "qwen3-8b"), 1]]);
    lines = await samples(metrics);
    expect(lines.some((line) => line.startsWith("cortex_queue_depth"))).toBe(false);
    expect(lines.filter((line) => line.startsWith("cortex_in_flight"))).toEqual([
      'cortex_in_flight{model="qwen3-8b",node="gpu-a"} 1',
    ]);
  });
});

describe("metricsHandler", () => {
  let server: Server | undefined;

  afterEach(async () => {
    const running = server;
    server = undefined;
    if (running) await new Promise<void>((resolve) => running.close(() => resolve()));
  });

  it("serves the registry in the Prometheus text format", async () => {
    const metrics = new CortexMetrics({ store: new FleetStore(targets) });
    metrics.coldStart("qwen3-8b", "gpu-a");
    const app = express();
    app.get("/metrics", metricsHandler(metrics));
    const listening = app.listen(0, "127.0.0.1");
    server = listening;
    await new Promise<void>((resolve) => listening.once("listening", () => resolve()));
    const { port } = listening.address() as AddressInfo;

    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe(metrics.registry.contentType);
    const body = await response.text();
    expect(body).toContain("# TYPE cortex_cold_starts_total counter");
    expect(body).toContain('cortex_cold_starts_total{model="qwen3-8b",node="gpu-a"} 1');
    expect(body).toContain('cortex_node_healthy{node="gpu-a"} 0');
  });
});
