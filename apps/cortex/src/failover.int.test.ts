import { APIError } from "openai";
import { describe, expect, it } from "vitest";
import { chat, client, gpu, post, resident, useCortexFleet } from "./cortex.fixtures.js";
import type { Cortex } from "./cortex.js";

// Fast failover (issue 16), in-process against fake neurons that die mid-request: a request
// that had no byte from its neuron yet is answered by another replica, a stream that had bytes
// ends with an error event the official client raises, and the dead node gets no new request
// from the first failure on, not after unhealthy_after_failures polls.

const { fleet, neuron } = useCortexFleet();

/**
 * Two nodes with `chat-small` (and `embedder`) loaded on both. Without conversation affinity,
 * the first request goes to "a": equal replicas are told apart by node name.
 */
const pair = (overrides: Record<string, unknown> = {}) =>
  fleet(
    ["a", "b"].map((name) => ({
      name,
      devices: [gpu(0, 24_000)],
      models: [resident("chat-small"), resident("embedder", { vram_mb: 1000 })],
    })),
    { affinity: { enabled: false }, ...overrides },
  );

const nodeOf = (c: Cortex, name: string) => {
  const node = c.store.snapshot.nodes.find((entry) => entry.name === name);
  if (!node) throw new Error(`no node ${name}`);
  return node;
};

/** Resolves once `name` holds a request for chat-small. */
const inFlightOn = (name: string) =>
  expect.poll(() => neuron(name).inFlight("chat-small"), { timeout: 5000 }).toBe(1);

describe("failover when a neuron dies mid-request", () => {
  it("answers a request that had no byte yet from the other replica", async () => {
    const c = await pair();
    neuron("a").setLatency(60_000);
    const answer = chat(c, "chat-small");
    await inFlightOn("a");
    const killedAt = performance.now();
    await neuron("a").kill();
    const response = await answer;
    const failoverMs = performance.now() - killedAt;
    expect(response.status).toBe(200);
    expect(response.headers.get("x-cortex-node")).toBe("b");
    expect(neuron("b").requests.get("chat-small")).toBe(1);
    expect(nodeOf(c, "a").healthy).toBe(false);
    process.stderr.write(
      `failover of a request without a byte: ${Math.round(failoverMs)} ms after the kill\n`,
    );
  });

  it("ends a stream that had bytes with an error event the official client raises", async () => {
    const c = await pair();
    neuron("a").setLatency(300);
    const chunks: string[] = [];
    const consume = async () => {
      const stream = await client(c).chat.completions.create({
        model: "chat-small",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      });
      for await (const chunk of stream) {
        chunks.push(chunk.choices[0]?.delta?.content ?? "");
        if (chunks.length === 1) await neuron("a").kill();
      }
    };
    const raised = await consume().then(
      () => null,
      (error: unknown) => error,
    );
    expect(chunks.length).toBeGreaterThanOrEqual(1);
    expect(raised).toBeInstanceOf(APIError);
    // Not a connection error: the stream itself said what happened.
    expect(raised).toMatchObject({ code: "upstream_error", status: undefined });
    expect((raised as Error).message).toMatch(/broke off/);
    expect(c.dispatcher.reservations.total).toBe(0);
  });
});

describe("the dead node", () => {
  it("gets no new request from the first failure on, and is used again once a poll finds it", async () => {
    // Polls far apart: only the failure itself can take the node out before the next one.
    const c = await pair({ poll_interval_ms: 60_000, unhealthy_after_failures: 3 });
    await neuron("a").kill();
    const first = await chat(c, "chat-small");
    expect(first.status).toBe(200);
    expect(first.headers.get("x-cortex-node")).toBe("b");
    expect(nodeOf(c, "a")).toMatchObject({ healthy: false });
    // The poll it asked for failed too: the node stays out, with that poll's error.
    await expect.poll(() => nodeOf(c, "a").consecutive_failures, { timeout: 5000 }).toBe(1);
    expect(nodeOf(c, "a").healthy).toBe(false);
    // Another model on the dead node goes to the other one without trying it.
    const embeddings = await post(c, "/v1/embeddings", { model: "embedder", input: "x" });
    expect(embeddings.status).toBe(200);
    expect(embeddings.headers.get("x-cortex-node")).toBe("b");

    await neuron("a").revive();
    await c.poller.tick();
    expect(nodeOf(c, "a")).toMatchObject({ healthy: true, error: null });
    const again = await post(c, "/v1/embeddings", { model: "embedder", input: "x" });
    expect(again.status).toBe(200);
    expect(again.headers.get("x-cortex-node")).toBe("a");
    expect(neuron("a").requests.get("embedder")).toBe(1);
  });

  it("is suspect at once, named so in the fleet's events", async () => {
    const c = await pair({ poll_interval_ms: 60_000, unhealthy_after_failures: 3 });
    const health: { node: string; healthy: boolean; error: string | null }[] = [];
    c.store.subscribe((event) => {
      if (event.type === "node_health") health.push(event);
    });
    await neuron("a").kill();
    expect((await chat(c, "chat-small")).status).toBe(200);
    // Whichever notices first: the request that failed, or the node's event stream closing.
    expect(health[0]).toMatchObject({
      node: "a",
      healthy: false,
      error: expect.stringMatching(/^suspect: (a request failed \(ECONNREFUSED\)|event stream: )/),
    });
  });
});
