import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiscoveryAnswer, NeuronConfig } from "@cortex/protocol";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Neuron, startNeuron } from "./neuron.js";

// neuron.yaml `labels` reach cortex through `/discovery`, where a catalogue node_selector
// matches them.

let dir: string;
let neuron: Neuron | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-labels-"));
});

afterEach(async () => {
  await neuron?.stop(0);
  neuron = undefined;
  await rm(dir, { recursive: true, force: true });
});

const discover = async (labels?: Record<string, string>) => {
  const config = NeuronConfig.parse({
    name: "labelled",
    listen: "127.0.0.1:0",
    token: "secret",
    models_dir: join(dir, "models"),
    state_dir: join(dir, "state"),
    devices: [{ vram_total_mb: 1024 }],
    ...(labels === undefined ? {} : { labels }),
  });
  neuron = await startNeuron(config, pino({ level: "silent" }));
  const answer = await fetch(`${neuron.url}/discovery`, {
    headers: { authorization: "Bearer secret" },
  });
  return DiscoveryAnswer.parse(await answer.json());
};

describe("/discovery labels", () => {
  it("reports neuron.yaml's labels", async () => {
    expect((await discover({ gpu: "a100", zone: "eu" })).labels).toEqual({
      gpu: "a100",
      zone: "eu",
    });
  });

  it("reports none as an empty map", async () => {
    expect((await discover()).labels).toEqual({});
  });
});
