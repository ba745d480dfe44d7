import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FAKE_HARNESS_TEMPLATE, processesMentioning, waitFor } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  modelsOf,
  type NeuronProcess,
  startNeuron,
  statusOf,
  stopNeurons,
  testNeuronConfig,
} from "./support/neuron-process.js";

// Issue 16, harness liveness, against the built neuron: a harness stopped with SIGSTOP lives on
// but answers nothing. The neuron probes it every health_interval_ms, kills it after
// unhealthy_after_failures failed probes, fails the request stuck in it with 502, and restarts
// it with the crash backoff (1 s), so a poll sees `recovering`, then `loaded`.

let dir: string;
const running: NeuronProcess[] = [];
/** Harnesses this test stopped: continued and killed afterwards, whatever happened. */
const stopped: number[] = [];

const TOKEN = "liveness-secret";
const LOAD = { model_id: "frozen", harness: "fake", source: "frozen.json", idle_ttl_s: 0 };

/** The fake harness processes serving the model (not the watchdogs above them). */
const harnessPids = () =>
  processesMentioning(join(dir, "models", "frozen.json"))
    .filter((process) => !process.cmdline.includes("watchdog.js"))
    .map((process) => process.pid);

const chat = (node: NeuronProcess) =>
  node.api("/v1/chat/completions", {
    body: { model: "frozen", messages: [{ role: "user", content: "are you there?" }] },
  });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "liveness-e2e-"));
  await mkdir(join(dir, "models"));
  await writeFile(join(dir, "models", "frozen.json"), JSON.stringify({ banner: "will freeze" }));
});

afterEach(async () => {
  for (const pid of stopped.splice(0)) {
    for (const signal of ["SIGCONT", "SIGKILL"] as const) {
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone: the neuron killed it.
      }
    }
  }
  await stopNeurons(running);
});

afterAll(async () => {
  for (const { pid } of processesMentioning(dir)) process.kill(pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("neuron harness liveness", () => {
  it("recovers a harness that stopped answering while its process lives (SIGSTOP)", async () => {
    const node = await startNeuron(
      dir,
      testNeuronConfig(dir, "liveness", TOKEN, {
        harnesses: { fake: FAKE_HARNESS_TEMPLATE },
        health_interval_ms: 200,
        unhealthy_after_failures: 3,
        stop_grace_ms: 2000,
      }),
    );
    running.push(node);
    expect((await node.api("/models/load", { body: LOAD })).status).toBe(200);
    expect((await chat(node)).status).toBe(200);
    const [pid] = harnessPids();
    if (pid === undefined) throw new Error("no harness process found");

    process.kill(pid, "SIGSTOP");
    stopped.push(pid);
    const inFlight = chat(node);

    await waitFor("the model to go recovering", async () => {
      return (await statusOf(node, "frozen")) === "recovering";
    });
    const failed = await inFlight;
    expect(failed.status).toBe(502);
    const body = await failed.json();
    expect(openAIProblems("ErrorResponse", body)).toEqual([]);
    expect(body).toMatchObject({ error: { code: "upstream_error" } });
    expect((await modelsOf(node))[0]?.error).toMatch(/^harness stopped answering \/health/);

    await waitFor("the restarted harness", async () => {
      return (await statusOf(node, "frozen")) === "loaded";
    });
    const after = harnessPids();
    expect(after).toHaveLength(1);
    expect(after).not.toContain(pid);
    expect((await chat(node)).status).toBe(200);
    expect(node.output()).toContain("harness stopped answering");
  });
});
