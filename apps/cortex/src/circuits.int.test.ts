import { describe, expect, it } from "vitest";
import { chat, gpu, resident, useCortexFleet } from "./cortex.fixtures.js";

// Failure memory per replica (issue 16), in-process against fake neurons: a replica whose
// harness answers 5xx gets no new request while its circuit is open, then one trial.

const { fleet, neuron } = useCortexFleet();

const nodeOf = (response: Response) => response.headers.get("x-cortex-node");

describe("circuits", () => {
  it("a replica that answered 5xx is left alone for its cooldown, then tried once and used again", async () => {
    // Affinity off: every request here is the same conversation, which would keep one replica.
    const c = await fleet(
      [
        { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
        { name: "b", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
      ],
      { affinity: { enabled: false } },
    );
    // Healthy, equally loaded replicas take turns.
    const before = [];
    for (let i = 0; i < 4; i += 1) before.push(nodeOf(await chat(c, "chat-small")));
    expect(new Set(before)).toEqual(new Set(["a", "b"]));

    neuron("a").failInference(1);
    let failed: Response | undefined;
    for (let i = 0; i < 4 && failed === undefined; i += 1) {
      const answer = await chat(c, "chat-small");
      if (answer.status === 502) failed = answer;
    }
    expect(failed && nodeOf(failed)).toBe("a");
    // Open for 1 s: every request meanwhile goes to b, though a has free slots.
    const during = [];
    for (let i = 0; i < 6; i += 1) {
      const answer = await chat(c, "chat-small");
      expect(answer.status).toBe(200);
      during.push(nodeOf(answer));
    }
    expect(during).toEqual(Array(6).fill("b"));
    // After the cooldown a trial reaches a, succeeds, and a takes its turns again.
    await expect
      .poll(async () => nodeOf(await chat(c, "chat-small")), { timeout: 5000, interval: 100 })
      .toBe("a");
    const after = [];
    for (let i = 0; i < 4; i += 1) after.push(nodeOf(await chat(c, "chat-small")));
    expect(after).toContain("a");
  });

  it("a replica whose circuit is open still serves when it is the only one", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    neuron("a").failInference(1);
    expect((await chat(c, "chat-small")).status).toBe(502);
    const answer = await chat(c, "chat-small");
    expect(answer.status).toBe(200);
    expect(nodeOf(answer)).toBe("a");
  });
});
