import { describe, expect, it } from "vitest";
import { catalogue, fleet, gpu, held, model, node, profile } from "./fleet.fixtures.js";
import { indexSnapshot } from "./fleet-index.js";
import { holding, missingWeights, sourceFile } from "./locality.js";
import { planPlacement } from "./placement.js";
import { planSwap } from "./swap-placement.js";

const ROOT = "/srv/models";

describe("sourceFile", () => {
  it.each([
    ["qwen.gguf", { kind: "path", key: "qwen.gguf" }],
    ["./team//qwen.gguf", { kind: "path", key: "team/qwen.gguf" }],
    ["/srv/models/team/qwen.gguf", { kind: "path", key: "team/qwen.gguf" }],
    ["/srv/models/llama-3-8b/", { kind: "path", key: "llama-3-8b" }],
    ["file:///srv/models/a%20b.gguf", { kind: "path", key: "a b.gguf" }],
    ["file://localhost/srv/models/x.gguf", { kind: "path", key: "x.gguf" }],
    ["model:v1.gguf", { kind: "path", key: "model:v1.gguf" }],
    ["hf:o/r/f.gguf", { kind: "download", key: "hf/o/r/main/f.gguf" }],
    ["hf:o/r@v2/sub/f.gguf", { kind: "download", key: "hf/o/r/v2/sub/f.gguf" }],
    [
      "https://cdn.example.com/m/q.gguf?sig=1",
      { kind: "download", key: "downloads/cdn.example.com/m/q.gguf" },
    ],
    [
      "http://127.0.0.1:8080/a%20b.gguf",
      { kind: "download", key: "downloads/127.0.0.1_8080/a_b.gguf" },
    ],
    ["HTTPS://Example.COM/x.gguf", { kind: "download", key: "downloads/example.com/x.gguf" }],
  ])("%s names %j", (source, expected) => {
    expect(sourceFile(source, ROOT)).toEqual(expected);
  });

  it.each([
    ["hf:o/r", "a repository the harness fetches itself"],
    ["hf:o/r@v1", "a repository with a revision (refused by the neuron)"],
    ["hf:-o/r/f.gguf", "an owner that reads as an option"],
    ["hf:o/r/../f.gguf", "a dot segment"],
    ["../x.gguf", "a path leaving models_dir"],
    ["/etc/passwd", "an absolute path outside models_dir"],
    ["/srv/models", "models_dir itself"],
    ["/srv/modelsx/a.gguf", "a sibling that shares a prefix"],
    ["file://server/share/x.gguf", "a remote file URL"],
    ["file:///srv/models/%2e%2e/x", "an encoded dot segment"],
    ["https://h/a/%2e%2e/b.gguf", "an encoded dot segment in a URL"],
    ["https://h/dir/", "a URL naming no file"],
    ["ftp://h/x.gguf", "another scheme"],
    ["", "nothing"],
  ])("%s names no file (%s)", (source) => {
    expect(sourceFile(source, ROOT)).toBeNull();
  });
});

describe("holding", () => {
  const files = held(["team/qwen.gguf", "llama-3-8b/config.json", "hf/o/r/main/f.gguf"]);

  it.each([
    ["team/qwen.gguf", "held"],
    ["/srv/models/team/qwen.gguf", "held"],
    ["llama-3-8b", "held"],
    ["hf:o/r/f.gguf", "held"],
    ["hf:o/r@main/f.gguf", "held"],
    ["hf:o/r@v2/f.gguf", "missing"],
    ["team", "held"],
    ["other.gguf", "missing"],
    ["hf:o/r", "unknown"],
  ] as const)("%s on a node listing its files: %s", (source, expected) => {
    expect(holding(node("a", { sources: files }), source)).toBe(expected);
  });

  it("knows nothing of a node that does not report its files", () => {
    expect(holding(node("a"), "team/qwen.gguf")).toBe("unknown");
  });

  it("does not conclude from an incomplete list", () => {
    const partial = node("a", { sources: held(["a.gguf"], false) });
    expect(holding(partial, "a.gguf")).toBe("held");
    expect(holding(partial, "b.gguf")).toBe("unknown");
  });

  it("reads an absolute source against the node's own models_dir", () => {
    const elsewhere = node("a", { sources: { ...held(["x.gguf"]), models_dir: "/data" } });
    expect(holding(elsewhere, "/data/x.gguf")).toBe("held");
    expect(holding(elsewhere, "/srv/models/x.gguf")).toBe("unknown");
  });
});

describe("missingWeights", () => {
  it.each([
    ["x.gguf", 'does not hold "x.gguf" under its models_dir'],
    ["file:///srv/models/x.gguf", 'does not hold "file:///srv/models/x.gguf" under its models_dir'],
    ["hf:o/r/x.gguf", null],
    ["https://h/x.gguf", null],
  ])("%s on a node without it: %s", (source, expected) => {
    expect(missingWeights(profile("m", { source }), node("a", { sources: held([]) }))).toBe(
      expected,
    );
  });
});

const big = gpu(0, 48_000);
const small = gpu(0, 16_000);

const place = (incoming: ReturnType<typeof profile>, ...nodes: ReturnType<typeof node>[]) =>
  planPlacement(indexSnapshot(fleet(...nodes)), incoming, catalogue(incoming), undefined);

describe("placement by locality", () => {
  const path = profile("p", { source: "weights/p.gguf", vram_mb: 8000 });
  const remote = profile("r", { source: "hf:o/r/r.gguf", vram_mb: 8000 });
  const hasP = held(["weights/p.gguf"]);
  const hasR = held(["hf/o/r/main/r.gguf"]);

  it.each([
    {
      rule: "a path source goes to the node that holds it, even with less room",
      incoming: path,
      nodes: [
        node("a", { devices: [big], sources: held([]) }),
        node("b", { devices: [small], sources: hasP }),
      ],
      expected: "b",
    },
    {
      rule: "a node that does not say what it holds stays feasible for a path source",
      incoming: path,
      nodes: [node("a", { devices: [big] }), node("b", { devices: [small], sources: held([]) })],
      expected: "a",
    },
    {
      rule: "a download source prefers the node that holds it over more room",
      incoming: remote,
      nodes: [
        node("a", { devices: [big], sources: held([]) }),
        node("b", { devices: [small], sources: hasR }),
      ],
      expected: "b",
    },
    {
      rule: "holding the weights beats node priority",
      incoming: remote,
      nodes: [
        node("a", { devices: [big], priority: 10, sources: held([]) }),
        node("b", { devices: [small], sources: hasR }),
      ],
      expected: "b",
    },
    {
      rule: "holding the weights beats fitting without an eviction",
      incoming: remote,
      nodes: [
        node("a", { devices: [big], sources: held([]) }),
        node("b", {
          devices: [small],
          sources: hasR,
          models: [model("idle", { vram_mb: 12_000 })],
        }),
      ],
      expected: "b",
    },
    {
      rule: "a download goes where nobody holds it, by the usual order",
      incoming: remote,
      nodes: [
        node("a", { devices: [small], sources: held([]) }),
        node("b", { devices: [big], sources: held([]) }),
      ],
      expected: "b",
    },
    {
      rule: "pinned_on still decides: a pinned node that must download beats one holding it",
      incoming: profile("pin", { source: "hf:o/r/r.gguf", vram_mb: 8000, pinned_on: ["a"] }),
      nodes: [
        node("a", { devices: [big], sources: held([]) }),
        node("b", { devices: [big], sources: hasR }),
      ],
      expected: "a",
    },
    {
      rule: "among nodes that all hold it, the usual order",
      incoming: remote,
      nodes: [
        node("a", { devices: [small], sources: hasR }),
        node("b", { devices: [big], sources: hasR }),
      ],
      expected: "b",
    },
  ])("$rule", ({ incoming, nodes, expected }) => {
    expect(place(incoming, ...nodes)).toMatchObject({ node: expected });
  });

  it("refuses a path source that no node holds, naming the path and every node checked", () => {
    const answer = place(
      path,
      node("a", { sources: held(["other.gguf"]) }),
      node("b", { sources: held([]) }),
    );
    expect(answer).toEqual({
      kind: "reject",
      code: "no_feasible_node",
      message:
        'no node can run model "p": a: does not hold "weights/p.gguf" under its models_dir; b: does not hold "weights/p.gguf" under its models_dir',
      retry_after_s: null,
    });
  });

  it("refuses an operator's load on a named node that does not hold the path", () => {
    const snapshot = fleet(node("a", { sources: held([]) }), node("b", { sources: hasP }));
    const answer = planPlacement(indexSnapshot(snapshot), path, catalogue(path), undefined, "a");
    expect(answer).toMatchObject({ kind: "reject", code: "no_feasible_node" });
  });
});

describe("swap placement by locality", () => {
  // Each node's only GPU is full of a busy model: the incoming one must wait for a swap.
  const busy = () => [model("busy", { vram_mb: 16_000, in_flight: 2 })];
  const incoming = profile("m", { source: "weights/m.gguf", vram_mb: 8000 });
  const swap = (...nodes: ReturnType<typeof node>[]) =>
    planSwap(indexSnapshot(fleet(...nodes)), incoming, catalogue(incoming), undefined);

  it("waits on the node that holds the weights", () => {
    const plan = swap(
      node("a", { devices: [small], models: busy(), sources: held(["x.gguf"]) }),
      node("b", { devices: [small], models: busy(), sources: held(["weights/m.gguf"]) }),
    );
    expect(plan).toMatchObject({ node: "b", blockers: ["busy"] });
  });

  it("never waits on a node known not to hold a path source", () => {
    const plan = swap(node("a", { devices: [small], models: busy(), sources: held([]) }));
    expect(plan).toBeNull();
  });
});
