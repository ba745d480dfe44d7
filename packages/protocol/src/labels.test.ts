import { describe, expect, it } from "vitest";
import { CatalogueFile, LabelMap, MAX_LABELS, ModelProfile } from "./catalogue.js";
import { NeuronConfig } from "./config.js";
import { FleetAnswer, FleetEvent } from "./cortex.js";
import { problemsOf } from "./issues.js";
import { DiscoveryAnswer } from "./neuron.js";

// Node labels (neuron.yaml `labels`, reported in `/discovery`), a catalogue entry's
// `node_selector` that matches them, and the drain a node of `GET /api/fleet` shows.

const entry = { id: "m", harness: "llamacpp", source: "m.gguf", vram_mb: 1000 };

/** The problems of a catalogue whose one model has this `node_selector`, as `path: message`. */
const problems = (node_selector: unknown): string[] => {
  const result = CatalogueFile.safeParse({ models: [{ ...entry, node_selector }] });
  return result.success
    ? []
    : problemsOf(result.error).map((problem) => `${problem.path}: ${problem.message}`);
};

const many = (count: number): Record<string, string> =>
  Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, "v"]));

describe("labels and node_selector", () => {
  it("are absent, or none, unless written", () => {
    expect(ModelProfile.parse(entry).node_selector).toBeUndefined();
    expect(NeuronConfig.parse({ name: "n" }).labels).toEqual({});
  });

  it("accept short keys and values of letters, digits, '.', '_', '/' and '-'", () => {
    const labels = { gpu: "a100", "topology.kubernetes.io/zone": "eu-west_1" };
    expect(ModelProfile.parse({ ...entry, node_selector: labels }).node_selector).toEqual(labels);
    expect(NeuronConfig.parse({ name: "n", labels }).labels).toEqual(labels);
    expect(LabelMap.parse(many(MAX_LABELS))).toEqual(many(MAX_LABELS));
  });

  it.each([
    [{ "": "x" }, "models[0].node_selector.", /1 to 63 characters/],
    [{ gpu: "" }, "models[0].node_selector.gpu", /values are 1 to 63/],
    [{ "g pu": "a100" }, "models[0].node_selector.g pu", /keys are/],
    [{ gpu: "a100;rm" }, "models[0].node_selector.gpu", /values are/],
    [{ ["k".repeat(64)]: "v" }, `models[0].node_selector.${"k".repeat(64)}`, /63/],
    [{ gpu: "v".repeat(64) }, "models[0].node_selector.gpu", /63/],
    [{ gpu: 100 }, "models[0].node_selector.gpu", /string/],
    [many(MAX_LABELS + 1), "models[0].node_selector", /at most 32 labels/],
    [JSON.parse('{"__proto__":{"gpu":"a100"}}'), "models[0].node_selector.__proto__", /__proto__/],
    [["gpu"], "models[0].node_selector", /./],
  ])("refuses %j", (selector, path, message) => {
    const found = problems(selector);
    const problem = found.find((text) => text.startsWith(`${path}: `) || text === path);
    expect(problem, found.join("\n")).toMatch(message);
  });

  it("refuses bad labels in neuron.yaml the same way", () => {
    expect(NeuronConfig.safeParse({ name: "n", labels: { gpu: "a 100" } }).success).toBe(false);
    expect(NeuronConfig.safeParse({ name: "n", labels: many(33) }).success).toBe(false);
  });

  it("are optional in a discovery answer, so an older neuron's parses", () => {
    const answer = {
      node: { name: "n", hostname: "h", os: "Linux", kernel: "6", cpu: "c", memory_mb: 1 },
      devices: [],
      harnesses: [],
    };
    expect(DiscoveryAnswer.parse(answer).labels).toBeUndefined();
    expect(DiscoveryAnswer.parse({ ...answer, labels: { gpu: "a100" } }).labels).toEqual({
      gpu: "a100",
    });
  });
});

describe("drains on the wire", () => {
  const node = {
    name: "a",
    url: "http://a:13131",
    healthy: true,
    consecutive_failures: 0,
    last_poll_at: null,
    last_ok_at: null,
    error: null,
    node: null,
    devices: [],
    harnesses: [],
    models: [],
  };

  it("a fleet answer's node shows its drain, null when an older cortex says nothing", () => {
    const answer = { taken_at: "2026-01-01T00:00:00.000Z", nodes: [node], waiting: {} };
    expect(FleetAnswer.parse(answer).nodes[0]?.drain).toBeNull();
    const drained = { ...answer, nodes: [{ ...node, drain: "drained" }] };
    expect(FleetAnswer.parse(drained).nodes[0]?.drain).toBe("drained");
    expect(FleetAnswer.safeParse({ ...answer, nodes: [{ ...node, drain: "gone" }] }).success).toBe(
      false,
    );
  });

  it.each(["node_draining", "node_drained", "node_resumed"])("%s is a fleet event", (type) => {
    const event = { type, at: "2026-01-01T00:00:00.000Z", node: "a" };
    expect(FleetEvent.parse(event)).toEqual(event);
  });
});
