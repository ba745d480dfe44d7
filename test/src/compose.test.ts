import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CortexConfig, NeuronConfig } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// docker-compose.yml cannot run here (no Docker engine), so it is checked the way Compose
// itself reads it: `docker-compose config` (Debian's package, installed by .ci/run) resolves
// anchors, paths and volumes and fails on anything invalid. The configs it mounts must also be
// valid for the apps.

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const hasCompose = spawnSync("docker-compose", ["version"], { stdio: "ignore" }).status === 0;

interface Compose {
  services: Record<
    string,
    {
      command?: string[];
      volumes?: (string | { source: string; target: string })[];
      environment?: Record<string, string>;
      ports?: unknown[];
    }
  >;
  volumes: Record<string, unknown>;
}

describe("docker-compose.yml", () => {
  it.skipIf(!hasCompose)(
    "is valid for docker-compose, with cortex and two neurons on named volumes",
    () => {
      const text = execFileSync("docker-compose", ["-f", "docker-compose.yml", "config"], {
        cwd: ROOT,
        encoding: "utf8",
      });
      const compose = parse(text) as Compose;
      expect(Object.keys(compose.services).sort()).toEqual(["cortex", "neuron-a", "neuron-b"]);
      expect(Object.keys(compose.volumes).sort()).toEqual([
        "cortex-data",
        "neuron-a-models",
        "neuron-a-state",
        "neuron-b-models",
        "neuron-b-state",
      ]);
      expect(compose.services["neuron-b"]?.environment).toEqual({ NEURON_NAME: "neuron-b" });
      expect(JSON.stringify(compose.services.cortex?.volumes)).toContain("/app/catalogue");
    },
  );

  it("mounts configs the apps accept, naming each neuron as the compose services do", () => {
    const cortex = CortexConfig.parse(
      parse(readFileSync(`${ROOT}deploy/compose/cortex.yaml`, "utf8")),
    );
    expect(cortex.neurons.map((neuron) => neuron.url)).toEqual([
      "http://neuron-a:13131",
      "http://neuron-b:13131",
    ]);
    const neuron = parse(readFileSync(`${ROOT}deploy/compose/neuron.yaml`, "utf8")) as object;
    for (const name of ["neuron-a", "neuron-b"]) {
      const config = NeuronConfig.parse({ ...neuron, name });
      expect(config.token).toBe(cortex.neurons.find((n) => n.name === name)?.token);
    }
    const compose = parse(readFileSync(`${ROOT}docker-compose.yml`, "utf8")) as Compose;
    expect(Object.keys(compose.services)).toEqual(["cortex", "neuron-a", "neuron-b"]);
  });

  it("builds from a Dockerfile that installs and builds the workspace", () => {
    const dockerfile = readFileSync(`${ROOT}Dockerfile`, "utf8");
    expect(dockerfile).toMatch(/^FROM node:20/m);
    expect(dockerfile).toContain("pnpm@10.34.9 install --frozen-lockfile");
    expect(dockerfile).toContain("pnpm@10.34.9 build");
  });
});
