import type { FleetEvent } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { describeEvent, subjectOf } from "./event-text.js";

const AT = "2025-06-15T12:00:00.000Z";

describe("describeEvent", () => {
  it.each<[FleetEvent, string, string, string]>([
    [
      { type: "node_health", at: AT, node: "a", healthy: false, error: "refused" },
      "node unhealthy",
      "refused",
      "bad",
    ],
    [
      { type: "node_health", at: AT, node: "a", healthy: true, error: null },
      "node healthy",
      "answering polls",
      "good",
    ],
    [
      { type: "node_draining", at: AT, node: "a" },
      "node draining",
      "no new requests; its models unload once idle",
      "warn",
    ],
    [{ type: "node_drained", at: AT, node: "a" }, "node drained", "nothing resident", "info"],
    [{ type: "node_resumed", at: AT, node: "a" }, "node resumed", "back in service", "good"],
    [
      { type: "node_joined", at: AT, node: "a", url: "http://a:13131" },
      "node joined",
      "reached at http://a:13131",
      "good",
    ],
    [
      { type: "node_removed", at: AT, node: "a" },
      "node removed",
      "left the fleet; no longer polled",
      "info",
    ],
    [
      { type: "model_state", at: AT, node: "a", model: "m", from: null, to: "loading" },
      "state",
      "absent → loading",
      "info",
    ],
    [
      { type: "model_state", at: AT, node: "a", model: "m", from: "loaded", to: null },
      "state",
      "loaded → gone",
      "info",
    ],
    [
      {
        type: "load_started",
        at: AT,
        node: "a",
        model: "m",
        evicting: [{ node: "a", model: "x" }],
      },
      "load started",
      "evicting x on a",
      "info",
    ],
    [
      {
        type: "load_progress",
        at: AT,
        node: "a",
        model: "m",
        phase: "downloading",
        bytes: 1_048_576,
        total: 4_194_304,
      },
      "loading",
      "downloading 1 MB of 4 MB",
      "info",
    ],
    [
      { type: "load_finished", at: AT, node: "a", model: "m", load_ms: 2400 },
      "loaded",
      "in 2.4 s",
      "good",
    ],
    [
      { type: "load_failed", at: AT, node: "a", model: "m", error: "boom" },
      "load failed",
      "boom",
      "bad",
    ],
    [
      { type: "evicted", at: AT, node: "a", model: "m" },
      "evicted",
      "to make room for another model",
      "warn",
    ],
    [
      { type: "catalogue_reloaded", at: AT, models: 3, error: null },
      "catalogue reloaded",
      "3 models",
      "info",
    ],
    [
      { type: "catalogue_reloaded", at: AT, models: 3, error: "bad yaml" },
      "catalogue edit refused",
      "bad yaml",
      "bad",
    ],
  ])("%o", (event, title, detail, tone) => {
    expect(describeEvent(event)).toEqual({ title, detail, tone });
  });

  it("names node and model where the event has them", () => {
    expect(subjectOf({ type: "unloaded", at: AT, node: "a", model: "m" })).toEqual({
      node: "a",
      model: "m",
    });
    expect(subjectOf({ type: "catalogue_reloaded", at: AT, models: 1, error: null })).toEqual({
      node: null,
      model: null,
    });
  });
});
