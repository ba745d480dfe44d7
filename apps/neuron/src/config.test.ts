import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactConfig } from "./config.js";

const EXAMPLE = fileURLToPath(new URL("../neuron.example.yaml", import.meta.url));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const file = async (name: string, text: string) => {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
};

const problemsOf = (run: () => unknown): string[] => {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map((p) => `${p.path}: ${p.message}`);
    throw error;
  }
  throw new Error("expected a ConfigError");
};

describe("loadConfig", () => {
  it("accepts the documented example", () => {
    const config = loadConfig(EXAMPLE, {});
    expect(config.name).toBe("gpu-a");
    expect(Object.keys(config.harnesses)).toEqual([
      "llamacpp",
      "llama-server",
      "vllm",
      "my-engine",
    ]);
    expect(config.preload[0]?.model_id).toBe("qwen3-8b");
    expect(config.labels).toEqual({ gpu: "a100", zone: "eu" });
  });

  it("reads labels from the file or NEURON_LABELS, and names a bad one", async () => {
    const path = await file("labels.yaml", "name: a\nlabels: { gpu: h100 }\n");
    expect(loadConfig(path, {}).labels).toEqual({ gpu: "h100" });
    expect(loadConfig(path, { NEURON_LABELS: '{"zone": "eu"}' }).labels).toEqual({ zone: "eu" });
    const bad = await file("bad-labels.yaml", "name: a\nlabels: { gpu: a 100 }\n");
    expect(problemsOf(() => loadConfig(bad, {})).join("\n")).toMatch(/labels\.gpu: label values/);
  });

  it("fills defaults and lets the environment win over the file", async () => {
    const path = await file("small.yaml", "name: a\nlisten: 0.0.0.0:1\n");
    const config = loadConfig(path, {
      NEURON_LISTEN: "127.0.0.1:2",
      NEURON_DEVICES: '[{"vram_total_mb": 8192}]',
      NEURON_DEFAULT_IDLE_TTL_S: "60",
      NEURON_LOG_LEVEL: "debug",
      PATH: "/usr/bin",
    });
    expect(config).toMatchObject({
      name: "a",
      listen: "127.0.0.1:2",
      default_idle_ttl_s: 60,
      harnesses: { llamacpp: {} },
      models_dir: "./data/models",
    });
    expect(config.devices[0]?.vram_total_mb).toBe(8192);
  });

  it("probes harnesses every 5 s and gives up after 3 failures unless told otherwise", async () => {
    expect(loadConfig(undefined, { NEURON_NAME: "a" })).toMatchObject({
      health_interval_ms: 5000,
      unhealthy_after_failures: 3,
    });
    const path = await file("liveness.yaml", "name: a\nhealth_interval_ms: 0\n");
    expect(loadConfig(path, { NEURON_UNHEALTHY_AFTER_FAILURES: "5" })).toMatchObject({
      health_interval_ms: 0,
      unhealthy_after_failures: 5,
    });
    const bad = await file("bad-liveness.yaml", "name: a\nunhealthy_after_failures: 0\n");
    const problems = problemsOf(() => loadConfig(bad, { NEURON_HEALTH_INTERVAL_MS: "-1" }));
    expect(problems).toHaveLength(2);
    expect(problems.join("\n")).toMatch(
      /health_interval_ms[\s\S]*unhealthy_after_failures|unhealthy_after_failures[\s\S]*health_interval_ms/,
    );
  });

  it("runs from the environment alone", () => {
    expect(loadConfig(undefined, { NEURON_NAME: "env-only" }).name).toBe("env-only");
  });

  it("lists every problem at once", async () => {
    const path = await file(
      "bad.yaml",
      "name: a\nlisten: nowhere\ndefault_idle_ttl_s: -1\nsurprise: true\n",
    );
    const problems = problemsOf(() => loadConfig(path, { NEURON_QUEUE_MAX: "many" }));
    expect(problems.length).toBeGreaterThanOrEqual(4);
    expect(problems.join("\n")).toMatch(/listen/);
    expect(problems.join("\n")).toMatch(/default_idle_ttl_s/);
    expect(problems.join("\n")).toMatch(/surprise/);
    expect(problems.join("\n")).toMatch(/QUEUE_MAX|queue_max/);
  });

  it("reports a missing file, broken YAML and a non-mapping", async () => {
    expect(problemsOf(() => loadConfig(join(dir, "absent.yaml"), {}))[0]).toMatch(/cannot read/);
    const broken = await file("broken.yaml", "name: [a\n");
    expect(problemsOf(() => loadConfig(broken, {}))[0]).toMatch(/YAML/);
    const list = await file("list.yaml", "- a\n- b\n");
    expect(problemsOf(() => loadConfig(list, {}))).toContain(": must be a mapping of keys");
  });

  it("redacts the token and harness environment values", () => {
    const config = loadConfig(EXAMPLE, {});
    const redacted = JSON.stringify(redactConfig(config));
    expect(redacted).not.toContain("change-me");
    expect(redacted).not.toContain("spawn");
    expect(redacted).toContain("VLLM_WORKER_MULTIPROC_METHOD");
  });
});
