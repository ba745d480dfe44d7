import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FleetAnswer, ModelsAnswer } from "@cortex/protocol";
import { FAKE_HARNESS_TEMPLATE, processesMentioning, waitFor } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type AppProcess, startCortexProcess, stopApp } from "./support/app-process.js";
import { type NeuronProcess, startNeuron, testNeuronConfig } from "./support/neuron-process.js";

// Fast failover (issue 16) on the built processes: the built cortex in front of two built
// neurons that both serve one model through the fake harness, which takes its time to answer.
// A neuron killed with -9 while it holds a request has sent no byte of its answer yet, so
// cortex answers the client from the other neuron instead of failing it with 502, and takes the
// dead node out at once rather than after unhealthy_after_failures polls.

const KEY = "sk-failover";
const ADMIN = "admin-failover";
const TOKEN = "neuron-failover";
const LATENCY_MS = 1500;

let dir: string;
let cortex: AppProcess | undefined;
const neurons = new Map<string, NeuronProcess>();

const running = (): AppProcess => {
  if (!cortex) throw new Error("cortex did not start");
  return cortex;
};

const fleet = async () => FleetAnswer.parse(await (await running().api("/api/fleet")).json());

/** Requests `node`'s neuron holds for the model now. */
const inFlightOn = async (node: NeuronProcess): Promise<number> =>
  ModelsAnswer.parse(await (await node.api("/models")).json()).find((m) => m.id === "slow")
    ?.in_flight ?? 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "failover-e2e-"));
  await mkdir(join(dir, "catalogue"));
  await mkdir(join(dir, "models"));
  await writeFile(
    join(dir, "catalogue", "models.yaml"),
    stringify({
      models: [{ id: "slow", harness: "fake", source: "slow.json", vram_mb: 1000, idle_ttl_s: 0 }],
    }),
  );
  await writeFile(join(dir, "models", "slow.json"), JSON.stringify({ latency_ms: LATENCY_MS }));
  for (const name of ["left", "right"]) {
    const config = testNeuronConfig(dir, name, TOKEN, {
      devices: [{ vram_total_mb: 24_000 }],
      harnesses: { fake: FAKE_HARNESS_TEMPLATE },
      stop_grace_ms: 2000,
    });
    neurons.set(name, await startNeuron(dir, config));
  }
  cortex = await startCortexProcess({
    dir,
    apiKey: KEY,
    adminToken: ADMIN,
    neurons: [...neurons].map(([name, neuron]) => ({ name, url: neuron.url, token: TOKEN })),
    // Polls 1 s apart, three failures to unhealthy (the default): only the failed request
    // itself can take the dead node out before this test's answer arrives.
    config: { poll_interval_ms: 1000 },
  });
  await waitFor("both neurons healthy in cortex", async () =>
    (await fleet()).nodes.every((node) => node.healthy),
  );
  for (const node of neurons.keys()) {
    const load = await running().api("/api/models/load", { body: { model: "slow", node } });
    expect(load.status).toBe(200);
  }
}, 60_000);

afterAll(async () => {
  if (cortex) await stopApp(cortex);
  for (const neuron of neurons.values()) await stopApp(neuron);
  for (const { pid } of processesMentioning(dir)) process.kill(pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("failover on built processes", () => {
  it("answers from the other neuron when the one holding the request is killed with -9", async () => {
    const answer = fetch(`${running().url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "slow", messages: [{ role: "user", content: "Hi" }] }),
    });
    // Whichever neuron routing chose: it holds the request, its harness has not answered.
    let holder: string | undefined;
    await waitFor("a neuron to hold the request", async () => {
      for (const [name, neuron] of neurons) if ((await inFlightOn(neuron)) > 0) holder = name;
      return holder !== undefined;
    });
    const victim = neurons.get(holder as string) as NeuronProcess;
    const survivor = [...neurons.keys()].find((name) => name !== holder);
    const killedAt = performance.now();
    victim.child.kill("SIGKILL");
    const response = await answer;
    const afterKillMs = performance.now() - killedAt;
    const body = await response.json();
    // Before issue 16: 502 upstream_error (a reset after the request was sent was not retried).
    expect(response.status).toBe(200);
    expect(openAIProblems("CreateChatCompletionResponse", body)).toEqual([]);
    expect(response.headers.get("x-cortex-node")).toBe(survivor);
    // Out at once: three polls 1 s apart could not have failed yet.
    const dead = (await fleet()).nodes.find((node) => node.name === holder);
    expect(dead?.healthy).toBe(false);
    process.stderr.write(
      `failover e2e: ${holder} killed, answered by ${survivor} ${Math.round(afterKillMs)} ms later (its harness takes ${LATENCY_MS} ms)\n`,
    );
    await victim.exited;
  }, 30_000);
});
