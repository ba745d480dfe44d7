import type { FleetEvent } from "@cortex/protocol";
import { openAIProblems } from "@cortex/testkit/openai";
import { describe, expect, it } from "vitest";
import {
  chat,
  client,
  errorOf,
  gpu,
  NEURON_TOKEN,
  resident,
  useCortexFleet,
} from "./cortex.fixtures.js";

// Routing in-process against fake neurons: every resolution branch (loaded, alias, cold load,
// pinned, eviction, lazy unload, recovering, infeasible, unknown), how cortex counts its own
// load between polls, and what happens when a neuron fails between polls.

const { fleet, neuron } = useCortexFleet();

describe("routing a request", () => {
  it("routes to a loaded replica and proxies with the official client", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    const answer = await client(c).chat.completions.create({
      model: "chat-small",
      messages: [{ role: "user", content: "hello" }],
    });
    expect(openAIProblems("CreateChatCompletionResponse", answer)).toEqual([]);
    expect(neuron("a").requests.get("chat-small")).toBe(1);
    expect(neuron("a").loads).toHaveLength(0);
    // The client's key stays with cortex; the neuron gets its own token.
    expect(neuron("a").headers?.authorization).toBe(`Bearer ${NEURON_TOKEN}`);
    expect(c.dispatcher.reservations.total).toBe(0);
  });

  it("streams chunk by chunk, each a valid OpenAI chunk", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    const chunks = [];
    for await (const chunk of await client(c).chat.completions.create({
      model: "chat-small",
      messages: [{ role: "user", content: "hello" }],
      stream: true,
    })) {
      expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
      chunks.push(chunk);
    }
    expect(chunks.length).toBeGreaterThan(1);
  });

  it("resolves an alias and forwards the canonical id", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    const answer = await chat(c, "org/chat-small");
    expect(answer.status).toBe(200);
    expect(neuron("a").requests.get("chat-small")).toBe(1);
  });

  it("cold-loads a catalogue model once for many concurrent first requests", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)], loadDelayMs: 300 }]);
    const answers = await Promise.all(Array.from({ length: 30 }, () => chat(c, "chat-small")));
    expect(answers.map((answer) => answer.status)).toEqual(Array(30).fill(200));
    expect(neuron("a").loads).toHaveLength(1);
    expect(neuron("a").loads[0]).toMatchObject({ model_id: "chat-small", devices: [0] });
    expect(c.dispatcher.reservations.total).toBe(0);
  });

  it("places a pinned model only on its node, even when another has more room", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 80_000)] },
      { name: "b", devices: [gpu(0, 24_000)] },
    ]);
    expect((await chat(c, "pinned-big")).status).toBe(200);
    expect(neuron("a").loads).toHaveLength(0);
    expect(neuron("b").loads.map((load) => load.model_id)).toEqual(["pinned-big"]);
  });

  it("evicts an idle model to make room, and the snapshot drops it at once", async () => {
    const c = await fleet([
      {
        name: "b",
        devices: [gpu(0, 24_000, 4_000)],
        models: [resident("old", { vram_mb: 20_000, last_accessed: "2026-01-01T00:00:00.000Z" })],
      },
    ]);
    const events: FleetEvent[] = [];
    c.store.subscribe((event) => events.push(event));
    const answer = await chat(c, "pinned-big");
    expect(answer.status, JSON.stringify(await answer.clone().json())).toBe(200);
    expect(neuron("b").unloads.map((unload) => unload.model_id)).toEqual(["old"]);
    expect(c.store.snapshot.nodes[0]?.models.map((model) => model.id)).toEqual(["pinned-big"]);
    expect(events.map((event) => event.type)).toEqual(
      expect.arrayContaining(["load_started", "evicted", "load_finished"]),
    );
  });

  it("routes to a lazily unloaded replica without a cortex load", async () => {
    const c = await fleet([
      {
        name: "a",
        devices: [gpu(0, 24_000)],
        models: [resident("chat-small", { status: "unloaded" })],
      },
    ]);
    expect((await chat(c, "chat-small")).status).toBe(200);
    expect(neuron("a").loads).toHaveLength(0);
    expect(neuron("a").loadsStarted.get("chat-small")).toBe(1);
  });

  it("answers 503 with Retry-After while the only replica recovers", async () => {
    const c = await fleet([
      {
        name: "a",
        devices: [gpu(0, 24_000)],
        models: [resident("chat-small", { status: "recovering" })],
      },
    ]);
    const answer = await chat(c, "chat-small");
    expect(answer.status).toBe(503);
    expect(answer.headers.get("retry-after")).toBeTruthy();
    expect((await errorOf(answer)).code).toBe("service_unavailable");
  });

  it("says no_feasible_node for a model no node can hold, model_not_found for an unknown one", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)] }]);
    const big = await chat(c, "too-big");
    expect(big.status).toBe(503);
    expect((await errorOf(big)).code).toBe("no_feasible_node");
    const unknown = await chat(c, "nope");
    expect(unknown.status).toBe(404);
    expect((await errorOf(unknown)).code).toBe("model_not_found");
  });

  it("gives every waiter the same clear error when the cold load fails", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)], loadDelayMs: 200 }]);
    neuron("a").failNextLoad("load_failed", "the harness exited with code 1");
    const answers = await Promise.all(Array.from({ length: 5 }, () => chat(c, "chat-small")));
    expect(answers.map((answer) => answer.status)).toEqual(Array(5).fill(502));
    const messages = await Promise.all(
      answers.map(async (answer) => (await errorOf(answer)).message),
    );
    expect(new Set(messages).size).toBe(1);
    expect(messages[0]).toContain("harness exited");
    expect(neuron("a").loads).toHaveLength(1);
    expect(c.store.snapshot.nodes[0]?.models.find((m) => m.id === "chat-small")?.status).not.toBe(
      "loading",
    );
  });
});

describe("counting load", () => {
  it("does not keep a replica full after cortex's own requests finish, before the next poll", async () => {
    const c = await fleet(
      [
        {
          name: "a",
          devices: [gpu(0, 24_000)],
          models: [resident("chat-small", { max_concurrency: 2 })],
          // A neuron without an event stream: only polls tell cortex its counts.
          events: false,
        },
      ],
      { poll_interval_ms: 100, queue_timeout_ms: 300 },
    );
    neuron("a").setLatency(800);
    // Two slow requests fill the replica while a poll sees both in flight; then polling stops,
    // so the snapshot keeps saying "2 in flight" after they are done.
    const slow = [chat(c, "chat-small"), chat(c, "chat-small")];
    await expect
      .poll(() => c.store.snapshot.nodes[0]?.models[0]?.in_flight, { timeout: 3000 })
      .toBe(2);
    await c.poller.stop();
    await Promise.all(slow);
    neuron("a").setLatency(0);
    expect(c.store.snapshot.nodes[0]?.models[0]?.in_flight).toBe(2);
    // Those two were cortex's own and have finished: the replica is free, not saturated (which
    // would leave this request waiting, with no poll to wake it, until its 504).
    expect(c.dispatcher.decide("chat-small").kind).toBe("route");
    expect((await chat(c, "chat-small")).status).toBe(200);
  });
});

describe("failures between polls", () => {
  it("fails over to another replica when a neuron refuses the connection", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
      { name: "b", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    await neuron("a").kill();
    const answers = await Promise.all(Array.from({ length: 4 }, () => chat(c, "chat-small")));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
    expect(neuron("b").requests.get("chat-small")).toBe(4);
    await expect
      .poll(() => c.store.snapshot.nodes.find((node) => node.name === "a")?.healthy, {
        timeout: 3000,
      })
      .toBe(false);
  });

  it("answers 503 when no node is healthy", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    await neuron("a").kill();
    await expect.poll(() => c.store.snapshot.nodes[0]?.healthy, { timeout: 3000 }).toBe(false);
    const answer = await chat(c, "chat-small");
    expect(answer.status).toBe(503);
    expect((await errorOf(answer)).code).toBe("service_unavailable");
  });
});
