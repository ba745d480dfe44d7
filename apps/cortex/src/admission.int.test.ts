import { describe, expect, it } from "vitest";
import { chat, errorOf, gpu, KEY, resident, useCortexFleet } from "./cortex.fixtures.js";

// Admission in-process against fake neurons: queueing beyond max_concurrency, a full queue,
// queue timeouts, and the reservation a disconnecting client gives back.

const { fleet, neuron } = useCortexFleet();

describe("admission", () => {
  it("queues beyond max_concurrency and serves everyone, then reports a full queue and timeouts", async () => {
    const c = await fleet(
      [
        {
          name: "a",
          devices: [gpu(0, 24_000)],
          models: [resident("chat-small", { max_concurrency: 2 })],
        },
      ],
      { queue_max: 3, queue_timeout_ms: 1500 },
    );
    neuron("a").setLatency(100);
    // 2 run, 3 wait and are served in turn.
    const served = await Promise.all(Array.from({ length: 5 }, () => chat(c, "chat-small")));
    expect(served.map((answer) => answer.status)).toEqual(Array(5).fill(200));
    // 2 run, 3 wait, the 6th finds the line full.
    neuron("a").setLatency(2500);
    const burst = await Promise.all(Array.from({ length: 6 }, () => chat(c, "chat-small")));
    const statuses = burst.map((answer) => answer.status).sort();
    expect(statuses).toEqual([200, 200, 503, 504, 504, 504]);
    const full = burst.find((answer) => answer.status === 503);
    expect(full?.headers.get("retry-after")).toBeTruthy();
    expect((await errorOf(full as Response)).code).toBe("overloaded");
    await expect.poll(() => c.dispatcher.reservations.total).toBe(0);
    expect(c.dispatcher.admission.depth("chat-small")).toBe(0);
  });

  it("releases the reservation when a client disconnects mid-stream", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    neuron("a").setLatency(200);
    const controller = new AbortController();
    const streaming = fetch(`${c.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "chat-small", stream: true, messages: [] }),
      signal: controller.signal,
    });
    const response = await streaming;
    await response.body?.getReader().read();
    expect(c.dispatcher.reservations.total).toBe(1);
    controller.abort();
    await expect.poll(() => c.dispatcher.reservations.total).toBe(0);
    await expect.poll(() => neuron("a").inFlight("chat-small")).toBe(0);
  });
});
