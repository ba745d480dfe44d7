import type { IncomingMessage } from "node:http";
import { createCatalogue } from "@cortex/catalogue";
import { type FleetSnapshot, ModelProfile, type ModelProfileInput } from "@cortex/protocol";
import { neuronModel } from "@cortex/testkit";
import { describe, expect, it } from "vitest";
import { isUpstream, knownModel, modelInPath } from "./upstream-path.js";

const profile = (id: string, extra: Partial<ModelProfileInput> = {}) =>
  ModelProfile.parse({ id, harness: "llamacpp", source: `${id}.gguf`, vram_mb: 1000, ...extra });

const catalogue = createCatalogue([
  profile("org", { aliases: ["o"] }),
  profile("chat-small", { aliases: ["org/chat-small", "org/chat-small/q4", "ä", "x%y"] }),
  profile("qwen3:8b"),
]);

const snapshot = (healthy: boolean): FleetSnapshot => ({
  taken_at: "2025-06-15T12:00:00.000Z",
  nodes: [
    {
      name: "a",
      url: "http://a:13131",
      healthy,
      consecutive_failures: 0,
      last_poll_at: null,
      last_ok_at: null,
      error: null,
      node: null,
      devices: [],
      harnesses: [],
      models: [neuronModel("by-hand")],
    },
  ],
});

const known = knownModel(catalogue, snapshot(true));

describe("modelInPath", () => {
  it.each<[string, { name: string; id: string; rest: string } | undefined]>([
    ["chat-small/health", { name: "chat-small", id: "chat-small", rest: "/health" }],
    ["chat-small/", { name: "chat-small", id: "chat-small", rest: "/" }],
    ["chat-small", { name: "chat-small", id: "chat-small", rest: "" }],
    // An alias with a slash: the longest known run of segments wins over a shorter model.
    ["org/chat-small/props", { name: "org/chat-small", id: "chat-small", rest: "/props" }],
    ["org/chat-small/q4/slots", { name: "org/chat-small/q4", id: "chat-small", rest: "/slots" }],
    ["org/chat-small", { name: "org/chat-small", id: "chat-small", rest: "" }],
    ["org/other/x", { name: "org", id: "org", rest: "/other/x" }],
    ["o/x", { name: "o", id: "org", rest: "/x" }],
    // Segments are percent-decoded to match; what the client wrote is what goes on.
    ["%C3%A4/x%20y", { name: "%C3%A4", id: "chat-small", rest: "/x%20y" }],
    ["x%25y/z", { name: "x%25y", id: "chat-small", rest: "/z" }],
    ["qwen3%3A8b/health", { name: "qwen3%3A8b", id: "qwen3:8b", rest: "/health" }],
    ["qwen3:8b/health", { name: "qwen3:8b", id: "qwen3:8b", rest: "/health" }],
    // A model only the fleet knows (loaded by hand).
    ["by-hand/v1/models", { name: "by-hand", id: "by-hand", rest: "/v1/models" }],
    ["nope/health", undefined],
    ["", undefined],
    ["/chat-small/health", undefined],
    ["chat-smal", undefined],
    ["%zz/health", undefined],
  ])("%j → %j", (path, expected) => {
    expect(modelInPath(path, known)).toEqual(expected);
  });

  it("tries no name longer than any model's, whatever the path's length", () => {
    const asked: string[] = [];
    const path = `${"s/".repeat(10_000)}x`;
    expect(
      modelInPath(path, (name) => {
        asked.push(name);
        return undefined;
      }),
    ).toBeUndefined();
    expect(asked.length).toBeLessThanOrEqual(101);
    expect(Math.max(...asked.map((name) => name.length))).toBeLessThanOrEqual(200);
  });
});

describe("knownModel", () => {
  it("resolves ids and aliases to the id, and models of the fleet to themselves", () => {
    expect(["chat-small", "org/chat-small", "o", "by-hand", "nope"].map(known)).toEqual([
      "chat-small",
      "chat-small",
      "org",
      "by-hand",
      undefined,
    ]);
  });

  it("knows a model of an unhealthy node too: routing answers why it cannot serve it", () => {
    expect(knownModel(catalogue, snapshot(false))("by-hand")).toBe("by-hand");
  });

  it("finds nothing up the prototype chain", () => {
    expect(["__proto__", "constructor", "toString"].map(known)).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
  });
});

describe("isUpstream", () => {
  it.each([
    ["GET", "/upstream/m/health", true],
    ["DELETE", "/upstream/m/slots/0", true],
    ["POST", "/upstream/", true],
    ["GET", "/upstream", false],
    ["GET", "/upstreams/m", false],
    ["POST", "/v1/chat/completions", false],
  ])("%s %s → %s", (method, url, expected) => {
    expect(isUpstream({ method, url } as IncomingMessage)).toBe(expected);
  });
});
