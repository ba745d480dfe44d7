import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TINY_MODEL_SHAPE, writeTinyModel } from "@cortex/harness-llamacpp";
import { FleetSnapshot } from "@cortex/protocol";
import { fakeHarnessTemplate, processesMentioning, waitFor } from "@cortex/testkit";
import { stringify } from "yaml";
import { type AppProcess, startCortexProcess, stopApp } from "./app-process.js";
import { type NeuronProcess, startNeuron, testNeuronConfig } from "./neuron-process.js";

// The fleet the real-client tests (clients-*.e2e.test.ts) talk to: one built neuron and the
// built cortex in front of it, with a client key so every client's way of sending it is
// exercised. The tiny generated model answers chat and embeddings through the built-in
// llama.cpp harness; the fake harness answers transcriptions, which the tiny model cannot.

/** The client key cortex accepts: each client sends it its own way (Bearer, x-api-key). */
export const CLIENT_KEY = "sk-clients-e2e";
/** The chat model, served by the built-in harness on the tiny generated model. */
export const CHAT_MODEL = "tiny";
/** An alias of CHAT_MODEL, as the catalogue declares it. */
export const CHAT_ALIAS = "tiny-chat";
/** The embedding model (the tiny model's embedding variant). */
export const EMBED_MODEL = "tiny-embed";
/** The length of EMBED_MODEL's vectors. */
export const EMBEDDING_SIZE = TINY_MODEL_SHAPE.embeddingLength;
/** A model on the fake harness, which answers `/v1/audio/transcriptions`. */
export const TRANSCRIBE_MODEL = "fake-whisper";

const ADMIN = "admin-clients-e2e";
const NEURON_TOKEN = "neuron-clients-e2e";
const NODE = "solo";

const CATALOGUE = {
  models: [
    {
      id: CHAT_MODEL,
      aliases: [CHAT_ALIAS],
      harness: "llamacpp",
      source: "tiny.gguf",
      runs_on: "cpu",
      vram_mb: 0,
      max_concurrency: 2,
      // Room for the tool definitions and JSON schemas a client puts into the prompt.
      context_length: 2048,
      idle_ttl_s: 0,
    },
    {
      id: EMBED_MODEL,
      harness: "llamacpp",
      source: "tiny-embed.gguf",
      runs_on: "cpu",
      vram_mb: 0,
      context_length: 256,
      idle_ttl_s: 0,
      capabilities: ["embeddings"],
    },
    {
      id: TRANSCRIBE_MODEL,
      harness: "fake",
      source: "whisper.json",
      runs_on: "cpu",
      vram_mb: 0,
      idle_ttl_s: 0,
    },
  ],
};

/** A started fleet: cortex's URL, and its stop, which leaves no process or file behind. */
export interface ClientsFleet {
  /** Cortex's base URL, without `/v1`. */
  readonly url: string;
  readonly cortex: AppProcess;
  readonly neuron: NeuronProcess;
  readonly stop: () => Promise<void>;
}

/**
 * Starts the fleet in a fresh scratch directory and loads `load` (every model by default) on
 * its node, so tests time answers rather than cold loads; `name` marks the directory.
 */
export const startClientsFleet = async (
  name: string,
  load: readonly string[] = [CHAT_MODEL, EMBED_MODEL, TRANSCRIBE_MODEL],
): Promise<ClientsFleet> => {
  const dir = await mkdtemp(join(tmpdir(), `clients-${name}-e2e-`));
  const models = join(dir, "models");
  await mkdir(join(dir, "catalogue"));
  await writeFile(join(dir, "catalogue", "models.yaml"), stringify(CATALOGUE));
  await writeTinyModel(join(models, "tiny.gguf"), { seed: 1 });
  await writeTinyModel(join(models, "tiny-embed.gguf"), { seed: 2, variant: "embedding" });
  await writeFile(join(models, "whisper.json"), JSON.stringify({ banner: "fake whisper" }));
  const started: AppProcess[] = [];
  // Whatever started before a failure stops with it, so a broken start leaks nothing.
  const stop = async () => {
    for (const app of started.splice(0).reverse()) await stopApp(app);
    for (const { pid } of processesMentioning(dir)) process.kill(pid, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const neuron = await startNeuron(
      dir,
      testNeuronConfig(dir, NODE, NEURON_TOKEN, {
        // Naming harnesses replaces the default set: the built-in one is named again.
        harnesses: { llamacpp: {}, fake: fakeHarnessTemplate(["--alias", "{model_id}"]) },
        stop_grace_ms: 2000,
      }),
    );
    started.push(neuron);
    const cortex = await startCortexProcess({
      dir,
      apiKey: CLIENT_KEY,
      adminToken: ADMIN,
      neurons: [{ name: NODE, url: neuron.url, token: NEURON_TOKEN }],
      config: { poll_interval_ms: 200 },
    });
    started.push(cortex);
    await waitFor("the neuron healthy in cortex", async () =>
      FleetSnapshot.parse(await (await cortex.api("/api/fleet")).json()).nodes.every(
        (node) => node.healthy,
      ),
    );
    for (const model of load) {
      const answer = await cortex.api("/api/models/load", { body: { model, node: NODE } });
      if (answer.status !== 200)
        throw new Error(`loading ${model} answered ${answer.status}: ${await answer.text()}`);
    }
    return { url: cortex.url, cortex, neuron, stop };
  } catch (error) {
    await stop();
    throw error;
  }
};

/** How long a test file's beforeAll may take to start the fleet on two slow cores. */
export const FLEET_START_TIMEOUT_MS = 120_000;
/** How long its afterAll may take to stop it. */
export const FLEET_STOP_TIMEOUT_MS = 60_000;
