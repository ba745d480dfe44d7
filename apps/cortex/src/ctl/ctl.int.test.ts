import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CortexConfig, type Device, FleetSnapshot, type NeuronModel } from "@cortex/protocol";
import { type FakeNeuron, gpuDevice, neuronModel, startFakeNeuron } from "@cortex/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type Cortex, startCortex } from "../cortex.js";
import { silentLog } from "../log.js";

// The real cortexctl binary (dist/ctl/main.js, so build first) as a child process, against a
// cortex started in-process with fake neurons on loopback.

const BIN = fileURLToPath(new URL("../../dist/ctl/main.js", import.meta.url));
const ADMIN = "ctl-admin";
const NEURON_TOKEN = "ctl-neuron";

const gpu = (index: number, totalMb: number): Device =>
  gpuDevice(index, totalMb, totalMb, { utilization_pct: 10, temperature_c: 40 });

const resident = (id: string): NeuronModel => neuronModel(id, { devices: [0], vram_mb: 4000 });

const CATALOGUE = {
  models: [
    { id: "chat-small", aliases: ["small"], harness: "llamacpp", source: "s.gguf", vram_mb: 6000 },
    { id: "embedder", harness: "llamacpp", source: "e.gguf", vram_mb: 1000 },
  ],
};

let dir: string;
let neurons: FakeNeuron[] = [];
let cortex: Cortex | undefined;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the binary to its end (asynchronously: cortex answers from this same process). */
const ctl = (args: string[], env: Record<string, string> = {}): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: {
        ...process.env,
        CORTEX_URL: cortex?.url ?? "",
        CORTEX_ADMIN_TOKEN: ADMIN,
        ...env,
      },
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

const adminPost = async (path: string, body: unknown) => {
  const response = await fetch(`${cortex?.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(200);
};

beforeAll(async () => {
  if (!existsSync(BIN)) {
    throw new Error(
      `${BIN} is missing: build cortex first (pnpm --filter @cortex/cortex build, or tsc -p tsconfig.build.json in apps/cortex)`,
    );
  }
  dir = await mkdtemp(join(tmpdir(), "cortexctl-int-"));
  await writeFile(join(dir, "models.yaml"), stringify(CATALOGUE));
  neurons = await Promise.all([
    startFakeNeuron({
      name: "gpu-a",
      token: NEURON_TOKEN,
      devices: [gpu(0, 24_000)],
      models: [resident("resident-one")],
      loadDelayMs: 50,
    }),
    startFakeNeuron({
      name: "gpu-b",
      token: NEURON_TOKEN,
      devices: [gpu(0, 48_000)],
      loadDelayMs: 400,
    }),
  ]);
  const started = await startCortex(
    CortexConfig.parse({
      listen: "127.0.0.1:0",
      catalogue: dir,
      data_dir: ":memory:",
      poll_interval_ms: 100,
      discovery_interval_ms: 5000,
      poll_timeout_ms: 500,
      admin_token: ADMIN,
      neurons: neurons.map((n) => ({ name: n.name, url: n.url, token: NEURON_TOKEN })),
    }),
    silentLog,
  );
  cortex = started;
  // Every node healthy (the first polls answered) before any test looks at the fleet.
  for (let waited = 0; !started.store.snapshot.nodes.every((node) => node.healthy); waited += 20) {
    if (waited > 5000) throw new Error("the fake neurons never became healthy");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
});

afterAll(async () => {
  await cortex?.stop(0);
  cortex = undefined;
  await Promise.all(neurons.map((neuron) => neuron.close()));
  neurons = [];
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("cortexctl", () => {
  it("status prints the nodes, their GPUs and resident models", async () => {
    const run = await ctl(["status"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^NODE\s+HEALTH/);
    expect(run.stdout).toMatch(/gpu-a\s+healthy/);
    expect(run.stdout).toMatch(/gpu-b\s+healthy/);
    expect(run.stdout).toMatch(/gpu-a\s+resident-one\s+loaded/);
    expect(run.stdout).toContain("Test GPU");
  });

  it("status --json prints the snapshot", async () => {
    const run = await ctl(["status", "--json"]);
    expect(run.code).toBe(0);
    const snapshot = FleetSnapshot.parse(JSON.parse(run.stdout));
    expect(snapshot.nodes.map((node) => node.name).sort()).toEqual(["gpu-a", "gpu-b"]);
  });

  it("models lists catalogue and resident models", async () => {
    const run = await ctl(["--json", "models"]);
    expect(run.code).toBe(0);
    const rows = JSON.parse(run.stdout) as {
      id: string;
      status: string;
      vram: { declared_mb: number | null } | null;
    }[];
    expect(rows.map((row) => [row.id, row.status, row.vram?.declared_mb ?? null])).toEqual([
      ["chat-small", "available", 6000],
      ["embedder", "available", 1000],
      ["resident-one", "loaded", null],
    ]);
    const text = await ctl(["models"]);
    expect(text.stdout).toMatch(/resident-one\s+loaded\s+gpu-a:loaded/);
    expect(text.stdout.split("\n")[0]).toMatch(/VRAM\s+DECLARED\s+ESTIMATED\s+OBSERVED/);
  });

  it("load shows the load's progress and ends with where it landed; unload removes it", async () => {
    const run = await ctl(["load", "small", "--node", "gpu-b"]);
    expect(run.code).toBe(0);
    // Not a terminal: progress comes as lines on stderr, fed by the load's events.
    expect(run.stderr).toMatch(/load_started\s+chat-small on gpu-b/);
    expect(run.stderr).toMatch(/load_progress\s+chat-small on gpu-b: downloading/);
    expect(run.stdout).toMatch(/^loaded chat-small on gpu-b in /);

    const again = await ctl(["load", "chat-small", "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      model: "chat-small",
      node: "gpu-b",
      already_loaded: true,
    });

    const unload = await ctl(["unload", "chat-small", "--node", "gpu-b"]);
    expect(unload.stderr).toBe("");
    expect(unload.code).toBe(0);
    expect(unload.stdout.trim()).toBe("unloaded chat-small from gpu-b");
  });

  it("logs prints the harness output", async () => {
    const run = await ctl(["logs", "resident-one", "--node", "gpu-a"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("fake harness output for resident-one");
    const missing = await ctl(["logs", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('model "nope" is not on any node');
  });

  it("events without --follow prints what arrives within --seconds, then exits", async () => {
    await adminPost("/api/models/load", { model: "embedder", node: "gpu-a" });
    const run = await ctl(["events", "--since", "5m", "--seconds", "0.5"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/load_finished\s+embedder on gpu-a in /);
    const json = await ctl(["events", "--since", "5m", "--seconds", "0.3", "--json"]);
    const events = json.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { type: string });
    expect(events.some((event) => event.type === "load_started")).toBe(true);
  });

  it("events with nothing to show says so on stderr and exits 0", async () => {
    const run = await ctl(["events", "--seconds", "0.2"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("");
    expect(run.stderr.trim()).toBe(
      "no events within 0.2 s (--since 15m shows recent ones, --follow waits for new ones)",
    );
    const json = await ctl(["events", "--seconds", "0.2", "--json"]);
    expect(json.code).toBe(0);
    expect(json.stdout).toBe("");
    expect(json.stderr).toContain("no events within 0.2 s");
  });

  it("a wrong or missing token exits 1 saying how to pass the admin token", async () => {
    const run = await ctl(["status"], { CORTEX_ADMIN_TOKEN: "wrong" });
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe(
      `cortexctl: cortex at ${cortex?.url} refused the admin token (HTTP 401): pass cortex's admin_token with --token <token> or in CORTEX_ADMIN_TOKEN`,
    );
    expect(run.stderr).not.toContain("invalid_api_key");
    expect(run.stderr).not.toMatch(/\bat .*\.js:\d+/);
    const none = await ctl(["status"], { CORTEX_ADMIN_TOKEN: "" });
    expect(none.code).toBe(1);
    expect(none.stderr.trim()).toBe(
      `cortexctl: cortex at ${cortex?.url} needs its admin token (HTTP 401): pass cortex's admin_token with --token <token> or in CORTEX_ADMIN_TOKEN`,
    );
    const flag = await ctl(["status", "--token", ADMIN], { CORTEX_ADMIN_TOKEN: "" });
    expect(flag.code).toBe(0);
  });

  it("an unreachable cortex exits 1 with 'cannot reach cortex'", async () => {
    // A port that was free a moment ago: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const address = server.address();
        server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
      });
    });
    const url = `http://127.0.0.1:${port}`;
    const run = await ctl(["status", "--url", url]);
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe(`cortexctl: cannot reach cortex at ${url} (ECONNREFUSED)`);
  });

  it("refuses --seconds longer than a timer holds instead of returning at once", async () => {
    const run = await ctl(["events", "--seconds", "3000000"]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain("--seconds must be a number of seconds from 0 to 2147483");
  });

  it("drain takes a node out, status shows it, resume puts it back", async () => {
    const drain = await ctl(["drain", "gpu-b"]);
    expect(drain.stderr).toBe("");
    expect(drain.code).toBe(0);
    expect(drain.stdout).toMatch(/^gpu-b is draining: no new requests/);
    // Nothing resident on gpu-b: it is drained at the next look.
    await expect
      .poll(async () => JSON.parse((await ctl(["drain", "gpu-b", "--json"])).stdout).drain)
      .toBe("drained");
    const status = await ctl(["status"]);
    expect(status.stdout).toMatch(/^NODE\s+HEALTH\s+DRAIN\s+LAST POLL/);
    expect(status.stdout).toMatch(/gpu-b\s+healthy\s+drained/);
    const events = await ctl(["events", "--since", "1m", "--seconds", "0.3"]);
    expect(events.stdout).toMatch(/node_draining\s+gpu-b: no new requests/);
    expect(events.stdout).toMatch(/node_drained\s+gpu-b: nothing resident/);

    const resume = await ctl(["resume", "gpu-b"]);
    expect(resume.code).toBe(0);
    expect(resume.stdout.trim()).toBe("gpu-b is in service");
    expect((await ctl(["status"])).stdout).not.toContain("DRAIN");

    const unknown = await ctl(["drain", "gpu-z"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toBe(
      'cortexctl: node "gpu-z" is not in the fleet (not_found, HTTP 404)',
    );
  });

  it("bad usage exits 2", async () => {
    const run = await ctl(["load"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("missing required argument 'model'");
  });
});
