import { NeuronConfig } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { envOverrides } from "./env-overrides.js";

describe("environment overrides", () => {
  it("reads every key from PREFIX_KEY, as a string when the key takes one, as JSON otherwise", () => {
    const { values, problems } = envOverrides(
      NeuronConfig,
      {
        NEURON_NAME: "gpu-b",
        NEURON_TOKEN: "12345",
        NEURON_DEFAULT_IDLE_TTL_S: "60",
        NEURON_DEVICES: '[{"vram_total_mb": 24000}]',
        NEURON_CONFIG: "/etc/neuron.yaml",
        OTHER: "x",
      },
      "NEURON",
      ["NEURON_CONFIG"],
    );
    expect(problems).toEqual([]);
    expect(values).toEqual({
      name: "gpu-b",
      token: "12345",
      default_idle_ttl_s: 60,
      devices: [{ vram_total_mb: 24000 }],
    });
    expect(NeuronConfig.safeParse({ ...values }).success).toBe(true);
  });

  it("calls an unknown prefixed variable a problem", () => {
    const { problems } = envOverrides(NeuronConfig, { NEURON_LISTN: ":1" }, "NEURON");
    expect(problems).toEqual([expect.objectContaining({ path: "NEURON_LISTN" })]);
  });
});
