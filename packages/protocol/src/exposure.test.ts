import { describe, expect, it } from "vitest";
import { CortexConfig, NeuronConfig } from "./config.js";
import { checkExposure, cortexExposure, isLoopbackHost, neuronExposure } from "./exposure.js";

describe("isLoopbackHost", () => {
  it.each([
    ["localhost", true],
    ["LocalHost", true],
    ["127.0.0.1", true],
    ["127.1.2.3", true],
    ["127.255.255.255", true],
    ["::1", true],
    ["0:0:0:0:0:0:0:1", true],
    ["0000::0001", true],
    ["::ffff:127.0.0.1", true],
    ["::ffff:7f00:1", true],
    ["0.0.0.0", false],
    ["::", false],
    ["", false],
    ["128.0.0.1", false],
    ["126.255.255.255", false],
    ["10.0.0.5", false],
    ["192.168.1.10", false],
    ["127.0.0.256", false],
    ["127.0.0", false],
    ["::2", false],
    ["1::1", false],
    ["::ffff:10.0.0.1", false],
    ["fe80::1", false],
    ["1:2:3:4:5:6:7:8:9", false],
    ["::1::", false],
    ["localhost.example.com", false],
    ["gpu-a.lan", false],
    ["my-localhost", false],
  ])("%j → %s", (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});

const CORTEX_OPEN = [{ key: "admin_token", opens: "the admin API" }];

describe("checkExposure", () => {
  it.each([
    // listen, open surfaces, allow_unauthenticated → verdict
    ["127.0.0.1:31313", CORTEX_OPEN, false, "ok"],
    ["localhost:0", CORTEX_OPEN, false, "ok"],
    ["[::1]:31313", CORTEX_OPEN, false, "ok"],
    ["0.0.0.0:31313", [], false, "ok"],
    ["0.0.0.0:31313", CORTEX_OPEN, false, "refuse"],
    [":31313", CORTEX_OPEN, false, "refuse"],
    ["[::]:31313", CORTEX_OPEN, false, "refuse"],
    ["10.1.2.3:31313", CORTEX_OPEN, false, "refuse"],
    ["gpu-a.lan:31313", CORTEX_OPEN, false, "refuse"],
    ["0.0.0.0:31313", CORTEX_OPEN, true, "warn"],
    ["127.0.0.1:31313", CORTEX_OPEN, true, "ok"],
  ] as const)("%s with %j open, allow_unauthenticated %s → %s", (listen, open, allow, kind) => {
    expect(checkExposure({ what: "cortex", listen, allowUnauthenticated: allow, open }).kind).toBe(
      kind,
    );
  });
});

describe("cortexExposure", () => {
  const cortex = (input: Record<string, unknown>) => cortexExposure(CortexConfig.parse(input));

  it("refuses the defaults (every interface, no keys, no admin token), naming both settings", () => {
    const verdict = cortex({});
    expect(verdict.kind).toBe("refuse");
    if (verdict.kind !== "refuse") return;
    expect(verdict.problems.map((problem) => problem.path)).toEqual(["admin_token", "api_keys"]);
    for (const problem of verdict.problems) {
      expect(problem.message).toContain("0.0.0.0:31313");
      expect(problem.message).toContain("allow_unauthenticated: true");
      expect(problem.message).toContain("127.0.0.1");
    }
  });

  it.each([
    [{ admin_token: "a" }, ["api_keys"]],
    [{ api_keys: ["k"] }, ["admin_token"]],
  ])("says which one is missing: %j → %j", (config, paths) => {
    const verdict = cortex({ listen: "0.0.0.0:31313", ...config });
    expect(verdict.kind === "refuse" && verdict.problems.map((p) => p.path)).toEqual(paths);
  });

  it("starts with both set, or on loopback without them", () => {
    expect(cortex({ admin_token: "a", api_keys: ["k"] })).toEqual({ kind: "ok" });
    expect(cortex({ listen: "127.0.0.1:0" })).toEqual({ kind: "ok" });
  });

  it("with allow_unauthenticated, warns naming what is open", () => {
    const verdict = cortex({ allow_unauthenticated: true, admin_token: "a" });
    expect(verdict.kind).toBe("warn");
    if (verdict.kind !== "warn") return;
    expect(verdict.open.map((surface) => surface.key)).toEqual(["api_keys"]);
    expect(verdict.message).toContain("no api_keys, so inference (/v1/*)");
    expect(verdict.message).toContain("allow_unauthenticated is true");
  });
});

describe("neuronExposure", () => {
  const neuron = (input: Record<string, unknown>) =>
    neuronExposure(NeuronConfig.parse({ name: "gpu-a", ...input }));

  it.each([
    [{}, "refuse"],
    [{ token: "t" }, "ok"],
    [{ listen: "127.0.0.1:13131" }, "ok"],
    [{ listen: "[::1]:0" }, "ok"],
    [{ listen: "192.168.0.7:13131" }, "refuse"],
    [{ allow_unauthenticated: true }, "warn"],
  ])("%j → %s", (config, kind) => {
    expect(neuron(config).kind).toBe(kind);
  });

  it("names token and allow_unauthenticated in the refusal", () => {
    const verdict = neuron({});
    expect(verdict.kind === "refuse" && verdict.problems).toEqual([
      {
        path: "token",
        message: expect.stringMatching(
          /^is empty while neuron listens on 0\.0\.0\.0:13131, which is not a loopback address: the whole neuron API .* Set token, listen on 127\.0\.0\.1, or set allow_unauthenticated: true/,
        ),
      },
    ]);
  });
});
