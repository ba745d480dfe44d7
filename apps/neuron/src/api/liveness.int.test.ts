import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModelsAnswer } from "@cortex/protocol";
import { fakeHarnessTemplate, processesMentioning, waitFor } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { processSettings, testManager } from "../models/model-manager.fixtures.js";
import type { ModelManager } from "../models/model-manager.js";
import { freeLoopbackPort, probeReady } from "../supervisor/net.js";
import { spawnRunner } from "../supervisor/process-runner.js";
import { startTestApp, type TestApp } from "./neuron-app.fixtures.js";

// Liveness against a real harness process on loopback: a fake harness stopped with SIGSTOP
// lives on but answers nothing. The neuron must notice from its probes, kill it, fail the
// request stuck in it with 502 at once, and serve again from a restarted harness.

let dir: string;
let app: TestApp;
let manager: ModelManager;
/** Harnesses this test stopped: continued and killed afterwards, whatever happened. */
const stopped: number[] = [];

const SETTINGS = processSettings({
  healthIntervalMs: 200,
  unhealthyAfterFailures: 3,
  // Recovering lasts at least this long: long enough for the test's polls to see it.
  restartDelaysMs: [1000],
  maxQueued: 4,
});

/** The fake harness processes serving `source` (not the watchdogs above them). */
const harnessPids = (source: string): number[] =>
  processesMentioning(join(dir, source))
    .filter((process) => !process.cmdline.includes("watchdog.js"))
    .map((process) => process.pid);

const models = async () => ModelsAnswer.parse(await (await fetch(`${app.base}/models`)).json());

const chat = (model: string) =>
  fetch(`${app.base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-liveness-"));
  await writeFile(join(dir, "hung.json"), JSON.stringify({ banner: "about to hang" }));
  const fake = defineHarness("fake", fakeHarnessTemplate(["--alias", "{model_id}"]), {
    node: process.execPath,
    entry: "unused",
  }) as Harness;
  manager = testManager(
    {
      harnesses: new Map([["fake", fake]]),
      runner: spawnRunner({ parentPid: process.pid, watchdogGraceMs: 500 }),
      sources: { check: () => {}, prepare: async (source) => join(dir, source) },
      freePort: freeLoopbackPort,
      probe: probeReady,
    },
    SETTINGS,
  );
  app = await startTestApp(manager, { token: "" });
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
  await manager.shutdown();
  await app.close();
  for (const { pid } of processesMentioning(dir)) process.kill(pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("a harness that lives but stops answering (SIGSTOP)", () => {
  it("goes recovering, fails the request in flight with 502, and serves again once restarted", async () => {
    await manager.load({ model_id: "hung", harness: "fake", source: "hung.json" });
    expect((await chat("hung")).status).toBe(200);
    const [pid] = harnessPids("hung.json");
    if (pid === undefined) throw new Error("no harness process found");

    process.kill(pid, "SIGSTOP");
    stopped.push(pid);
    // Sent to a harness that will never answer: only liveness can end it.
    const inFlight = chat("hung");

    // Cortex polls /models: it sees the model recovering, never loaded with a dead harness.
    await waitFor(
      "the model to go recovering",
      async () => (await models())[0]?.status === "recovering",
      10_000,
    );
    const failed = await inFlight;
    expect(failed.status).toBe(502);
    const body = await failed.json();
    expect(openAIProblems("ErrorResponse", body)).toEqual([]);
    expect(body).toMatchObject({ error: { code: "upstream_error", type: "server_error" } });
    expect((await models())[0]?.error).toMatch(/^harness stopped answering \/health: 3 probes/);

    await waitFor(
      "the restarted harness",
      async () => (await models())[0]?.status === "loaded",
      10_000,
    );
    // The stopped process was killed, not left beside its replacement.
    const after = harnessPids("hung.json");
    expect(after).toHaveLength(1);
    expect(after).not.toContain(pid);
    expect((await chat("hung")).status).toBe(200);
  });
});
