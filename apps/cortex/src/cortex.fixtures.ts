import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CortexConfig, type Device, type NeuronModel } from "@cortex/protocol";
import { type FakeNeuron, gpuDevice, neuronModel, startFakeNeuron } from "@cortex/testkit";
import OpenAI from "openai";
import { afterEach, beforeEach, expect } from "vitest";
import { stringify } from "yaml";
import { type Cortex, startCortex } from "./cortex.js";
import { silentLog } from "./log.js";

// Shared setup for the cortex integration tests (`*.int.test.ts` beside this file): cortex
// in-process against fake neurons (real HTTP servers on loopback), driven over HTTP and with the
// official openai client. Each test file calls `useCortexFleet()` once at its top level.

export const ADMIN = "admin-secret";
export const KEY = "sk-client";
export const NEURON_TOKEN = "neuron-secret";

export const gpu = (index: number, totalMb: number, freeMb = totalMb): Device =>
  gpuDevice(index, totalMb, freeMb, {
    utilization_pct: 0,
    temperature_c: 40,
    bus_id: `00000000:0${index}:00.0`,
    driver_version: "550.0",
  });

export const resident = (id: string, fields: Partial<NeuronModel> = {}): NeuronModel =>
  neuronModel(id, { devices: [0], vram_mb: 4000, ...fields });

export const CATALOGUE = {
  models: [
    {
      id: "chat-small",
      aliases: ["small", "org/chat-small"],
      harness: "llamacpp",
      source: "small.gguf",
      vram_mb: 6000,
      max_concurrency: 2,
    },
    {
      id: "pinned-big",
      harness: "llamacpp",
      source: "big.gguf",
      vram_mb: 20_000,
      pinned_on: ["b"],
    },
    { id: "too-big", harness: "llamacpp", source: "huge.gguf", vram_mb: 90_000 },
    {
      id: "embedder",
      harness: "llamacpp",
      source: "embed.gguf",
      vram_mb: 1000,
      capabilities: ["embeddings"],
    },
  ],
};

export type FleetSpec = {
  name: string;
  devices: Device[];
  models?: NeuronModel[];
  loadDelayMs?: number;
  /** Whether the neuron serves its event stream (default true). */
  events?: boolean;
};

/**
 * Registers the hooks that give each test a fresh catalogue directory, and that stop cortex and
 * close every fake neuron after it, even when the test fails. Call it once at the top level of
 * a test file; the returned `fleet` starts the neurons and cortex, `neuron` finds one by name.
 */
export const useCortexFleet = (catalogue: { models: readonly unknown[] } = CATALOGUE) => {
  let dir: string;
  let neurons: FakeNeuron[] = [];
  let cortex: Cortex | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "cortex-int-"));
    await writeFile(join(dir, "models.yaml"), stringify(catalogue));
  });

  afterEach(async () => {
    await cortex?.stop(0);
    cortex = undefined;
    await Promise.all(neurons.map((neuron) => neuron.close()));
    neurons = [];
    await rm(dir, { recursive: true, force: true });
  });

  const fleet = async (specs: FleetSpec[], overrides: Record<string, unknown> = {}) => {
    neurons = await Promise.all(
      specs.map((spec) =>
        startFakeNeuron({
          name: spec.name,
          token: NEURON_TOKEN,
          devices: spec.devices,
          models: spec.models ?? [],
          loadDelayMs: spec.loadDelayMs ?? 50,
          ...(spec.events === undefined ? {} : { events: spec.events }),
        }),
      ),
    );
    const config = CortexConfig.parse({
      listen: "127.0.0.1:0",
      catalogue: dir,
      data_dir: ":memory:",
      poll_interval_ms: 100,
      discovery_interval_ms: 5000,
      poll_timeout_ms: 500,
      unhealthy_after_failures: 2,
      api_keys: [KEY],
      admin_token: ADMIN,
      queue_timeout_ms: 2000,
      neurons: neurons.map((neuron) => ({
        name: neuron.name,
        url: neuron.url,
        token: NEURON_TOKEN,
      })),
      ...overrides,
    });
    const started = await startCortex(config, silentLog);
    cortex = started;
    await expect
      .poll(() => started.store.snapshot.nodes.every((node) => node.healthy), { timeout: 5000 })
      .toBe(true);
    return started;
  };

  const neuron = (name: string): FakeNeuron => {
    const found = neurons.find((entry) => entry.name === name);
    if (!found) throw new Error(`no fake neuron ${name}`);
    return found;
  };

  return { fleet, neuron, catalogueDir: () => dir };
};

export const client = (c: Cortex, apiKey = KEY) =>
  new OpenAI({ baseURL: `${c.url}/v1`, apiKey, maxRetries: 0, timeout: 20_000 });

export const post = (
  c: Cortex,
  path: string,
  body: unknown,
  key = KEY,
  extra: Record<string, string> = {},
) =>
  fetch(`${c.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...extra },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

export const chat = (c: Cortex, model: string) =>
  post(c, "/v1/chat/completions", { model, messages: [{ role: "user", content: "hi" }] });

export const errorOf = async (response: Response) =>
  ((await response.json()) as { error: { code: string; message: string } }).error;
