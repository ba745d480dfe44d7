import { describe, expect, it } from "vitest";
import { CortexConfig, LoadRequest, MAX_TIMER_MS, ModelProfile, NeuronConfig } from "./index.js";

// Every duration that ends up in a Node timer is bounded by what a timer holds: a longer one
// fires after 1 ms (an idle TTL of 25 days unloaded the model after every request).

const PROFILE = { id: "m", harness: "llamacpp", source: "m.gguf", vram_mb: 1 };
const LOAD = { model_id: "m", harness: "llamacpp", source: "m.gguf" };

const cortexKeys = [
  "poll_interval_ms",
  "discovery_interval_ms",
  "poll_timeout_ms",
  "load_timeout_ms",
  "stream_idle_timeout_ms",
  "queue_timeout_ms",
  "client_stall_timeout_ms",
  "shutdown_grace_ms",
];
const neuronKeys = [
  "queue_timeout_ms",
  "stop_grace_ms",
  "client_stall_timeout_ms",
  "shutdown_grace_ms",
];

describe("durations", () => {
  it.each(cortexKeys)("cortex.yaml %s takes at most 2^31-1 ms", (key) => {
    expect(CortexConfig.safeParse({ [key]: MAX_TIMER_MS }).success).toBe(true);
    const refused = CortexConfig.safeParse({ [key]: MAX_TIMER_MS + 1 });
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]?.message).toContain("2147483647 ms");
  });

  it.each(neuronKeys)("neuron.yaml %s takes at most 2^31-1 ms", (key) => {
    expect(NeuronConfig.safeParse({ name: "n", [key]: MAX_TIMER_MS }).success).toBe(true);
    expect(NeuronConfig.safeParse({ name: "n", [key]: MAX_TIMER_MS + 1 }).success).toBe(false);
  });

  it("bounds idle TTLs in seconds everywhere they are set", () => {
    const most = Math.floor(MAX_TIMER_MS / 1000);
    expect(most).toBe(2_147_483);
    expect(NeuronConfig.safeParse({ name: "n", default_idle_ttl_s: most }).success).toBe(true);
    expect(NeuronConfig.safeParse({ name: "n", default_idle_ttl_s: most + 1 }).success).toBe(false);
    expect(ModelProfile.safeParse({ ...PROFILE, idle_ttl_s: most }).success).toBe(true);
    expect(ModelProfile.safeParse({ ...PROFILE, idle_ttl_s: 2_147_484 }).success).toBe(false);
    expect(LoadRequest.safeParse({ ...LOAD, idle_ttl_s: most }).success).toBe(true);
    expect(LoadRequest.safeParse({ ...LOAD, idle_ttl_s: 30 * 86_400 }).success).toBe(false);
  });

  it("keeps the request log for at most a century", () => {
    expect(CortexConfig.safeParse({ request_log_retention_days: 36_500 }).success).toBe(true);
    expect(CortexConfig.safeParse({ request_log_retention_days: 36_501 }).success).toBe(false);
  });
});

describe("server limits", () => {
  it("default the same in both servers, the body limit included", () => {
    const cortex = CortexConfig.parse({});
    const neuron = NeuronConfig.parse({ name: "n" });
    const limits = (config: typeof cortex | typeof neuron) => ({
      allow_unauthenticated: config.allow_unauthenticated,
      max_body_mb: config.max_body_mb,
      max_buffered_mb: config.max_buffered_mb,
      max_connections: config.max_connections,
      client_stall_timeout_ms: config.client_stall_timeout_ms,
      shutdown_grace_ms: config.shutdown_grace_ms,
    });
    expect(limits(cortex)).toEqual(limits(neuron));
    expect(limits(cortex)).toEqual({
      allow_unauthenticated: false,
      max_body_mb: 20,
      max_buffered_mb: undefined,
      max_connections: 10_000,
      client_stall_timeout_ms: 30_000,
      shutdown_grace_ms: 10_000,
    });
  });

  it.each([
    ["max_body_mb", 0],
    ["max_body_mb", 1025],
    ["max_buffered_mb", 0],
    ["max_connections", 0],
    ["client_stall_timeout_ms", 0],
    ["shutdown_grace_ms", -1],
  ])("refuse %s: %d", (key, value) => {
    expect(CortexConfig.safeParse({ [key]: value }).success).toBe(false);
    expect(NeuronConfig.safeParse({ name: "n", [key]: value }).success).toBe(false);
  });
});

describe("names from requests and files", () => {
  // JSON.parse makes "__proto__" an own key; z.record alone would drop it without a word.
  const proto = JSON.parse('{"__proto__": "--chat-template-file=/etc/shadow"}') as unknown;

  it("refuse __proto__ as an option name in the catalogue and in load requests", () => {
    const profile = ModelProfile.safeParse({ ...PROFILE, args: proto });
    expect(profile.success).toBe(false);
    expect(profile.error?.issues[0]?.path).toEqual(["args", "__proto__"]);
    expect(LoadRequest.safeParse({ ...LOAD, args: proto }).success).toBe(false);
    expect(LoadRequest.safeParse({ ...LOAD, args: { threads: 2 } }).success).toBe(true);
  });

  it("refuse __proto__ in neuron.yaml's harnesses, their env and their options", () => {
    const harnesses = JSON.parse('{"__proto__": {}}') as unknown;
    expect(NeuronConfig.safeParse({ name: "n", harnesses }).success).toBe(false);
    const env = JSON.parse('{"__proto__": "x"}') as unknown;
    expect(NeuronConfig.safeParse({ name: "n", harnesses: { t: { env } } }).success).toBe(false);
    expect(
      NeuronConfig.safeParse({ name: "n", harnesses: { t: { options: proto } } }).success,
    ).toBe(false);
  });
});

describe("secrets", () => {
  it.each([" sk-1", "sk-1 ", "\tsk"])(
    "refuse %j, which a trimmed header could never match",
    (key) => {
      expect(CortexConfig.safeParse({ api_keys: [key] }).success).toBe(false);
      expect(CortexConfig.safeParse({ admin_token: key }).success).toBe(false);
      expect(NeuronConfig.safeParse({ name: "n", token: key }).success).toBe(false);
      expect(
        CortexConfig.safeParse({ neurons: [{ name: "a", url: "http://a:1", token: key }] }).success,
      ).toBe(false);
    },
  );

  it("take tokens with spaces inside, and empty ones meaning none", () => {
    expect(CortexConfig.safeParse({ api_keys: ["a b"], admin_token: "" }).success).toBe(true);
    expect(CortexConfig.safeParse({ api_keys: [""] }).success).toBe(false);
  });
});
