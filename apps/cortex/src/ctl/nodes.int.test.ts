import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CortexConfig } from "@cortex/protocol";
import { type FakeNeuron, gpuDevice, startFakeNeuron } from "@cortex/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type Cortex, startCortex } from "../cortex.js";
import { silentLog } from "../log.js";

// `cortexctl nodes` and `nodes rm` against a real cortex (in this process) with one static and
// one joined fake neuron, through the built binary as an operator runs it.

const BIN = fileURLToPath(new URL("../../dist/ctl/main.js", import.meta.url));
const ADMIN = "ctl-nodes-admin";
const JOIN_TOKEN = "ctl-nodes-join-token";
const NEURON_TOKEN = "ctl-nodes-neuron";

let dir: string;
let neurons: FakeNeuron[] = [];
let cortex: Cortex | undefined;

const ctl = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, CORTEX_URL: cortex?.url ?? "", CORTEX_ADMIN_TOKEN: ADMIN },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });

beforeAll(async () => {
  if (!existsSync(BIN))
    throw new Error(
      `${BIN} is missing: build cortex first (tsc -p tsconfig.build.json in apps/cortex)`,
    );
  dir = await mkdtemp(join(tmpdir(), "cortexctl-nodes-"));
  await writeFile(join(dir, "models.yaml"), stringify({ models: [] }));
  neurons = await Promise.all(
    ["gpu-static", "gpu-joined"].map((name) =>
      startFakeNeuron({
        name,
        token: NEURON_TOKEN,
        devices: [gpuDevice(0, 24_000)],
        ...(name === "gpu-joined" ? { labels: { zone: "eu" } } : {}),
      }),
    ),
  );
  const [fixed, joined] = neurons as [FakeNeuron, FakeNeuron];
  cortex = await startCortex(
    CortexConfig.parse({
      listen: "127.0.0.1:0",
      catalogue: dir,
      data_dir: ":memory:",
      poll_interval_ms: 100,
      admin_token: ADMIN,
      join_tokens: [JOIN_TOKEN],
      neurons: [{ name: fixed.name, url: fixed.url, token: NEURON_TOKEN }],
    }),
    silentLog,
  );
  const answer = await fetch(`${cortex.url}/api/neurons/join`, {
    method: "POST",
    headers: { authorization: `Bearer ${JOIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ name: joined.name, url: joined.url, token: NEURON_TOKEN }),
  });
  if (answer.status !== 200) throw new Error(`join answered ${answer.status}`);
  const started = cortex;
  const ready = () =>
    started.store.snapshot.nodes.length === 2 &&
    started.store.snapshot.nodes.every((node) => node.healthy && node.devices.length > 0);
  for (let waited = 0; !ready(); waited += 20) {
    if (waited > 5000) throw new Error("the fake neurons never became healthy");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
});

afterAll(async () => {
  await cortex?.stop(0);
  await Promise.all(neurons.map((neuron) => neuron.close()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("cortexctl nodes", () => {
  it("lists every node with its URL, origin, health, drain and labels", async () => {
    const run = await ctl(["nodes"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^NODE\s+URL\s+ORIGIN\s+HEALTH\s+DRAIN\s+LABELS$/);
    expect(lines[1]).toMatch(/^gpu-static\s+http:\/\/127\.0\.0\.1:\d+\s+static\s+healthy\s+-\s+-$/);
    expect(lines[2]).toMatch(
      /^gpu-joined\s+http:\/\/127\.0\.0\.1:\d+\s+joined\s+healthy\s+-\s+zone=eu$/,
    );
    const json = JSON.parse((await ctl(["nodes", "--json"])).stdout) as { origin: string }[];
    expect(json.map((row) => row.origin)).toEqual(["static", "joined"]);
  });

  it("rm forgets a joined node, and refuses a static or unknown one", async () => {
    const fixed = await ctl(["nodes", "rm", "gpu-static"]);
    expect(fixed.code).toBe(1);
    expect(fixed.stderr).toContain("remove it from cortex.yaml");
    const removed = await ctl(["nodes", "rm", "gpu-joined"]);
    expect(removed.stderr).toBe("");
    expect(removed.code).toBe(0);
    expect(removed.stdout.trim()).toBe(
      "gpu-joined removed: cortex polls it no more (it may join again)",
    );
    expect((await ctl(["nodes"])).stdout).not.toContain("gpu-joined");
    const unknown = await ctl(["nodes", "rm", "gpu-joined"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("not a joined node");
  });
});
