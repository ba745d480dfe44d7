import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactConfig } from "../config.js";

// neuron.yaml's join settings: cortex_url and join_token together or not at all, join_token
// from NEURON_JOIN_TOKEN, advertise_url an http(s) URL, and the join token never logged.

const problemsOf = (env: Record<string, string>): string => {
  try {
    loadConfig(undefined, { NEURON_NAME: "gpu-1", ...env });
  } catch (error) {
    if (error instanceof ConfigError)
      return error.problems.map((p) => `${p.path}: ${p.message}`).join("\n");
    throw error;
  }
  throw new Error("expected a ConfigError");
};

describe("join settings", () => {
  it("are off by default", () => {
    const config = loadConfig(undefined, { NEURON_NAME: "gpu-1" });
    expect([config.cortex_url, config.join_token, config.advertise_url]).toEqual([
      undefined,
      "",
      undefined,
    ]);
  });

  it("take cortex_url with join_token (from NEURON_JOIN_TOKEN too), and advertise_url", () => {
    const config = loadConfig(undefined, {
      NEURON_NAME: "gpu-1",
      NEURON_CORTEX_URL: "http://cortex:31313",
      NEURON_JOIN_TOKEN: "join-secret-0123456789",
      NEURON_ADVERTISE_URL: "https://gpu-1.example.com:13131",
    });
    expect(config.cortex_url).toBe("http://cortex:31313");
    expect(config.join_token).toBe("join-secret-0123456789");
    expect(config.advertise_url).toBe("https://gpu-1.example.com:13131");
    expect(JSON.stringify(redactConfig(config))).not.toContain("join-secret");
  });

  it("refuse half a setup and URLs that are not http(s)", () => {
    expect(problemsOf({ NEURON_CORTEX_URL: "http://cortex:31313" })).toMatch(
      /join_token: cortex_url and join_token go together/,
    );
    expect(problemsOf({ NEURON_JOIN_TOKEN: "join-secret-0123456789" })).toMatch(
      /cortex_url: cortex_url and join_token go together/,
    );
    const problems = problemsOf({
      NEURON_CORTEX_URL: "ftp://cortex",
      NEURON_JOIN_TOKEN: "join-secret-0123456789",
      NEURON_ADVERTISE_URL: "gpu-1:13131",
    });
    expect(problems).toMatch(/cortex_url: must be an http/);
    expect(problems).toMatch(/advertise_url: must be an http/);
  });
});
