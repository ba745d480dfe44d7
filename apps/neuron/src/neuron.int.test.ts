import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NeuronConfig } from "@cortex/protocol";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Neuron, startNeuron } from "./neuron.js";

// The composition root in-process: a neuron on a loopback port 0 with one static device.

let dir: string;
let neuron: Neuron | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-root-"));
});

afterEach(async () => {
  await neuron?.stop(0);
  neuron = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe("startNeuron", () => {
  it("listens on the port it picked, answers, and stops", async () => {
    const config = NeuronConfig.parse({
      name: "root-test",
      listen: "127.0.0.1:0",
      token: "secret",
      models_dir: join(dir, "models"),
      state_dir: join(dir, "state"),
      devices: [{ vram_total_mb: 1024 }],
    });
    neuron = await startNeuron(config, pino({ level: "silent" }));
    expect(neuron.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(neuron.url).not.toMatch(/:0$/);
    const health = await fetch(`${neuron.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok" });
    const models = await fetch(`${neuron.url}/models`, {
      headers: { authorization: "Bearer secret" },
    });
    expect(await models.json()).toEqual([]);
    await neuron.stop(1000);
    expect(neuron.server.listening).toBe(false);
  });
});
