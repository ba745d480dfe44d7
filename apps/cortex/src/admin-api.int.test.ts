import { describe, expect, it } from "vitest";
import {
  ADMIN,
  chat,
  client,
  errorOf,
  gpu,
  KEY,
  post,
  resident,
  useCortexFleet,
} from "./cortex.fixtures.js";
import type { TrafficBucket, TrafficOverallBucket } from "./state/queries.js";

// The admin API and the model list in-process against fake neurons: /v1/models, placing and
// unloading by hand, model logs, lifecycle history, traffic buckets and Prometheus metrics.

const { fleet } = useCortexFleet();

describe("the admin API and model list", () => {
  it("lists catalogue and loaded models with status and locations", async () => {
    const c = await fleet([
      {
        name: "a",
        devices: [gpu(0, 24_000)],
        models: [resident("chat-small"), resident("by-hand")],
      },
    ]);
    const list = await client(c).models.list();
    const ids = list.data.map((model) => model.id);
    expect(ids).toEqual(
      expect.arrayContaining(["chat-small", "by-hand", "pinned-big", "embedder"]),
    );
    const raw = (await (
      await fetch(`${c.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })
    ).json()) as {
      data: { id: string; status: string; locations: unknown[] }[];
    };
    expect(raw.data.find((model) => model.id === "chat-small")).toMatchObject({
      status: "loaded",
      locations: [{ node: "a", status: "loaded" }],
    });
    expect(raw.data.find((model) => model.id === "pinned-big")?.status).toBe("available");
  });

  it("pre-places a model by hand, then unloads it", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)] },
      { name: "b", devices: [gpu(0, 24_000)] },
    ]);
    const admin = { authorization: `Bearer ${ADMIN}` };
    const load = await post(c, "/api/models/load", { model: "small", node: "b" }, ADMIN);
    expect(load.status).toBe(200);
    expect(await load.json()).toMatchObject({
      model: "chat-small",
      node: "b",
      status: "loaded",
      already_loaded: false,
    });
    const again = await post(c, "/api/models/load", { model: "chat-small" }, ADMIN);
    expect(await again.json()).toMatchObject({ node: "b", already_loaded: true });
    const fleetAnswer = (await (await fetch(`${c.url}/api/fleet`, { headers: admin })).json()) as {
      nodes: { name: string; models: { id: string }[] }[];
    };
    expect(fleetAnswer.nodes.find((node) => node.name === "b")?.models.map((m) => m.id)).toEqual([
      "chat-small",
    ]);
    const unload = await post(c, "/api/models/unload", { model: "chat-small" }, ADMIN);
    expect(await unload.json()).toEqual({ model: "chat-small", status: "unloaded", nodes: ["b"] });
    expect((await post(c, "/api/models/unload", { model: "chat-small" }, ADMIN)).status).toBe(404);
    expect((await post(c, "/api/models/load", { model: "x", surprise: 1 }, ADMIN)).status).toBe(
      400,
    );
    // Logs come from the node that has the model.
    await post(c, "/api/models/load", { model: "chat-small", node: "a" }, ADMIN);
    const logs = await fetch(`${c.url}/api/models/chat-small/logs`, { headers: admin });
    expect(logs.status).toBe(200);
    expect(logs.headers.get("content-type")).toContain("text/plain");
    expect((await fetch(`${c.url}/api/models/nope/logs`, { headers: admin })).status).toBe(404);
  });

  it("serves the lifecycle history and the nodes it has seen", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)] }]);
    const admin = { authorization: `Bearer ${ADMIN}` };
    await post(c, "/api/models/load", { model: "chat-small" }, ADMIN);
    await post(c, "/api/models/unload", { model: "chat-small" }, ADMIN);
    const answer = await fetch(`${c.url}/api/history?limit=50`, { headers: admin });
    expect(answer.status).toBe(200);
    const history = (await answer.json()) as {
      events: { type: string; model: string | null; duration_ms: number | null; at: string }[];
      nodes: { name: string; healthy: boolean; last_ok_at: string | null }[];
    };
    // Newest first: the unload, then the load that finished with its duration.
    const types = history.events.filter((e) => e.model === "chat-small").map((e) => e.type);
    expect(types.indexOf("unloaded")).toBeLessThan(types.indexOf("load_finished"));
    expect(types).toContain("load_started");
    const finished = history.events.find((e) => e.type === "load_finished");
    expect(finished?.duration_ms).toBeGreaterThanOrEqual(0);
    expect(Number.isNaN(Date.parse(finished?.at ?? ""))).toBe(false);
    expect(history.nodes).toEqual([expect.objectContaining({ name: "a", healthy: true })]);
    for (const limit of ["0", "1001", "x", "-1"]) {
      const refused = await fetch(`${c.url}/api/history?limit=${limit}`, { headers: admin });
      expect(refused.status).toBe(400);
      expect((await errorOf(refused)).code).toBe("invalid_request_error");
    }
    expect((await fetch(`${c.url}/api/history`)).status).toBe(401);
  });

  it("aggregates the request log into traffic buckets", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    await chat(c, "chat-small");
    await chat(c, "chat-small");
    await chat(c, "nope");
    const admin = { authorization: `Bearer ${ADMIN}` };
    const traffic = (await (
      await fetch(`${c.url}/api/traffic?window=600&bucket=600`, { headers: admin })
    ).json()) as {
      bucket_s: number;
      buckets: TrafficBucket[];
      overall: TrafficOverallBucket[];
    };
    expect(traffic.bucket_s).toBe(600);
    // Percentiles per model and overall, in order; ttft only where something was answered.
    for (const row of [...traffic.buckets, ...traffic.overall]) {
      const { p50LatencyMs, p95LatencyMs, p99LatencyMs, maxLatencyMs } = row;
      expect(p50LatencyMs).toBeGreaterThan(0);
      expect(p50LatencyMs).toBeLessThanOrEqual(p95LatencyMs);
      expect(p95LatencyMs).toBeLessThanOrEqual(p99LatencyMs);
      expect(p99LatencyMs).toBeLessThanOrEqual(maxLatencyMs);
      expect(row).toHaveProperty("p99TtftMs");
    }
    expect(traffic.buckets.find((row) => row.model === "chat-small")?.p50TtftMs).toEqual(
      expect.any(Number),
    );
    expect(traffic.overall.reduce((sum, row) => sum + row.requests, 0)).toBe(3);
    expect(traffic.overall.reduce((sum, row) => sum + row.errors, 0)).toBe(1);
    const byModel = new Map<string, { requests: number; errors: number }>();
    for (const bucket of traffic.buckets) {
      const sum = byModel.get(bucket.model) ?? { requests: 0, errors: 0 };
      byModel.set(bucket.model, {
        requests: sum.requests + bucket.requests,
        errors: sum.errors + bucket.errors,
      });
    }
    expect(byModel.get("chat-small")).toEqual({ requests: 2, errors: 0 });
    expect(byModel.get("unknown")).toEqual({ requests: 1, errors: 1 });
    // One model: `overall` holds that model's numbers.
    const one = (await (
      await fetch(`${c.url}/api/traffic?window=600&bucket=600&model=chat-small`, {
        headers: admin,
      })
    ).json()) as typeof traffic;
    expect(one.buckets.map((row) => row.model)).toEqual(one.buckets.map(() => "chat-small"));
    expect(one.overall).toEqual(one.buckets.map(({ model: _model, ...rest }) => rest));
    expect((await fetch(`${c.url}/api/traffic?bucket=0`, { headers: admin })).status).toBe(400);
    expect((await fetch(`${c.url}/api/traffic?window=abc`, { headers: admin })).status).toBe(400);
  });

  it("exposes Prometheus metrics", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    await chat(c, "chat-small");
    const text = await (await fetch(`${c.url}/metrics`)).text();
    expect(text).toContain('cortex_requests_total{model="chat-small",node="a",status="200"} 1');
    expect(text).toContain('cortex_node_healthy{node="a"} 1');
  });
});
