import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeTinyModel } from "@cortex/harness-llamacpp";
import { FleetAnswer, NeuronConfig } from "@cortex/protocol";
import { type FakeNeuron, gpuDevice, startFakeNeuron } from "@cortex/testkit";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Neuron, startNeuron } from "../neuron.js";

// A real neuron joins a real cortex process by itself: it shows as `joined`, serves a request,
// and joins again after cortex forgot it. The same cortex reloads cortex.yaml's `neurons:` on
// SIGHUP. Cortex runs from its build (apps/cortex/dist), as the e2e tests run it. Its YAML
// files are written as JSON (which YAML reads as it is).

const stringify = (value: unknown): string => JSON.stringify(value, null, 2);

const CORTEX_CLI = fileURLToPath(new URL("../../../cortex/dist/cli.js", import.meta.url));
const ADMIN = "join-e2e-admin";
const KEY = "sk-join-e2e";
const JOIN_TOKEN = "join-e2e-token-0123456789";
const NEURON_TOKEN = "join-e2e-neuron";

let dir: string;
let cortex: { child: ChildProcess; url: string; output: () => string } | undefined;
let neuron: Neuron | undefined;
let fake: FakeNeuron | undefined;

const cortexConfig = (neurons: unknown[] = []) => ({
  listen: "127.0.0.1:0",
  catalogue: join(dir, "catalogue"),
  data_dir: join(dir, "cortex-data"),
  poll_interval_ms: 200,
  discovery_interval_ms: 5000,
  admin_token: ADMIN,
  api_keys: [KEY],
  join_tokens: [JOIN_TOKEN],
  neurons,
});

const startCortexProcess = async () => {
  const file = join(dir, "etc", "cortex.yaml");
  await writeFile(file, stringify(cortexConfig()));
  const child = spawn(process.execPath, [CORTEX_CLI, "serve", "--config", file], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CORTEX_LOG_LEVEL: "info" },
  });
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"url":"(http:\/\/[^"]+)","msg":"listening"/.exec(output);
      if (match?.[1]) resolve(match[1]);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", (code) => reject(new Error(`cortex exited with ${code}:\n${output}`)));
  });
  cortex = { child, url, output: () => output };
  return { file, url };
};

const admin = (method: string, path: string) =>
  fetch(`${cortex?.url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}` } });

const fleet = async () => FleetAnswer.parse(await (await admin("GET", "/api/fleet")).json());

beforeEach(async () => {
  if (!existsSync(CORTEX_CLI))
    throw new Error(`${CORTEX_CLI} is missing: build cortex first (tsc -p tsconfig.build.json)`);
  dir = await mkdtemp(join(tmpdir(), "neuron-join-"));
  await mkdir(join(dir, "catalogue"), { recursive: true });
  await mkdir(join(dir, "etc"), { recursive: true });
  await writeTinyModel(join(dir, "models", "tiny.gguf"));
  await writeFile(
    join(dir, "catalogue", "models.yaml"),
    stringify({
      models: [
        {
          id: "tiny",
          harness: "llamacpp",
          source: "tiny.gguf",
          runs_on: "cpu",
          vram_mb: 0,
          context_length: 512,
        },
      ],
    }),
  );
});

afterEach(async () => {
  await neuron?.stop(0);
  neuron = undefined;
  await fake?.close();
  fake = undefined;
  if (cortex && cortex.child.exitCode === null) {
    const exited = new Promise((resolve) => cortex?.child.once("exit", resolve));
    cortex.child.kill("SIGTERM");
    await exited;
  }
  cortex = undefined;
  await rm(dir, { recursive: true, force: true });
});

const startJoiningNeuron = async (cortexUrl: string, forgottenAfterMs?: number) => {
  neuron = await startNeuron(
    NeuronConfig.parse({
      name: "joiner",
      listen: "127.0.0.1:0",
      token: NEURON_TOKEN,
      models_dir: join(dir, "models"),
      state_dir: join(dir, "state"),
      devices: [{ vram_total_mb: 4096 }],
      cortex_url: cortexUrl,
      join_token: JOIN_TOKEN,
    }),
    pino({ level: "silent" }),
    {},
    forgottenAfterMs === undefined ? {} : { joinForgottenAfterMs: forgottenAfterMs },
  );
  return neuron;
};

describe("a neuron joining cortex", () => {
  it("joins on start, serves, and joins again after cortex forgot it", async () => {
    const { url } = await startCortexProcess();
    const started = await startJoiningNeuron(url, 1500);
    await expect
      .poll(
        async () => {
          const node = (await fleet()).nodes.find((entry) => entry.name === "joiner");
          return [node?.origin, node?.healthy, node?.url];
        },
        { timeout: 10_000 },
      )
      .toEqual(["joined", true, started.url]);

    const answer = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "tiny",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 4,
      }),
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-cortex-node")).toBe("joiner");

    expect((await admin("DELETE", "/api/neurons/joiner")).status).toBe(200);
    expect((await fleet()).nodes.map((node) => node.name)).not.toContain("joiner");
    // No polls any more: the neuron notices within its bound and joins again.
    await expect
      .poll(async () => (await fleet()).nodes.find((entry) => entry.name === "joiner")?.healthy, {
        timeout: 10_000,
      })
      .toBe(true);
  }, 40_000);

  it("reloads cortex.yaml's neurons on SIGHUP", async () => {
    fake = await startFakeNeuron({
      name: "static-b",
      token: NEURON_TOKEN,
      devices: [gpuDevice(0, 8000)],
    });
    const { file } = await startCortexProcess();
    expect((await fleet()).nodes).toEqual([]);
    await writeFile(
      file,
      stringify(cortexConfig([{ name: "static-b", url: fake.url, token: NEURON_TOKEN }])),
    );
    cortex?.child.kill("SIGHUP");
    await expect
      .poll(
        async () => (await fleet()).nodes.map((node) => [node.name, node.origin, node.healthy]),
        {
          timeout: 10_000,
        },
      )
      .toEqual([["static-b", "static", true]]);
    expect(cortex?.output()).toContain("SIGHUP: reloading the config");
    expect(cortex?.child.exitCode).toBeNull();
  }, 30_000);
});
