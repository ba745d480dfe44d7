import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NeuronConfig } from "@cortex/protocol";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Neuron, startNeuron } from "../neuron.js";

// The whole neuron (its composition root) with an event stream open: the stream ends as the
// stop begins, so the drain does not wait out its grace for it.

let dir: string;
let neuron: Neuron | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-events-stop-"));
});

afterEach(async () => {
  await neuron?.stop(0);
  neuron = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe("GET /events on a stopping neuron", () => {
  it("ends the stream at once instead of holding the drain for its grace", async () => {
    const config = NeuronConfig.parse({
      name: "events-stop",
      listen: "127.0.0.1:0",
      token: "secret",
      models_dir: join(dir, "models"),
      state_dir: join(dir, "state"),
      devices: [{ vram_total_mb: 1024 }],
    });
    neuron = await startNeuron(config, pino({ level: "silent" }));
    const res = await fetch(`${neuron.url}/events`, {
      headers: { authorization: "Bearer secret" },
    });
    expect(res.status).toBe(200);
    const body = res.text();
    const started = performance.now();
    // A grace far longer than the test may take: only the stream's end lets the stop finish.
    await neuron.stop(60_000);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(await body).toContain("event: snapshot\ndata: []");
  });
});
