import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CortexConfig, cortexExposure, NeuronConfig, neuronExposure } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// Every config this repository ships must start: a server on a non-loopback address without
// authentication refuses to (issue 13), so the compose files (0.0.0.0 in containers), the demo
// and the documented examples each need their tokens or a loopback address.

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const read = (path: string): Record<string, unknown> =>
  parse(readFileSync(`${ROOT}${path}`, "utf8")) as Record<string, unknown>;

describe("the configs this repository ships", () => {
  it.each(["deploy/compose/cortex.yaml", "demo/cortex.yaml", "apps/cortex/cortex.example.yaml"])(
    "%s starts without allow_unauthenticated",
    (path) => {
      const config = CortexConfig.parse(read(path));
      expect(config.allow_unauthenticated).toBe(false);
      expect(cortexExposure(config)).toEqual({ kind: "ok" });
    },
  );

  it.each(["deploy/compose/neuron.yaml", "demo/neuron.yaml", "apps/neuron/neuron.example.yaml"])(
    "%s starts without allow_unauthenticated",
    (path) => {
      // The compose file's name comes from NEURON_NAME.
      const config = NeuronConfig.parse({ name: "neuron-a", ...read(path) });
      expect(config.allow_unauthenticated).toBe(false);
      expect(neuronExposure(config)).toEqual({ kind: "ok" });
    },
  );
});
