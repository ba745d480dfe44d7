import { CatalogueEntry, type EstimateAnswer } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type EstimateJob,
  EstimateScheduler,
  type EstimateSchedulerOptions,
} from "./estimate-scheduler.js";
import { memoryKey } from "./memory-key.js";

// The background estimates on fake timers, against a scripted client: how many run at once,
// retries on other nodes and after a backoff, answers kept per key, a catalogue change asking
// only for what changed, parking while no node can take a job.

const entry = (id: string, source = `${id}.gguf`): CatalogueEntry =>
  CatalogueEntry.parse({ id, harness: "llamacpp", source });

const job = (id: string, source?: string): EstimateJob => {
  const made = entry(id, source);
  return { key: memoryKey(made), entry: made };
};

const answer = (vramMb: number): EstimateAnswer => ({
  vram_mb: vramMb,
  breakdown: { weights_mb: vramMb, kv_cache_mb: 0, overhead_mb: 0 },
  basis: "scripted",
});

const failure = (code: string, message = code) => Object.assign(new Error(message), { code });

interface Call {
  readonly model: string;
  readonly node: string;
  resolve(value: EstimateAnswer): void;
  reject(error: unknown): void;
}

/** A client whose every call waits until the test settles it. */
const harness = (overrides: Partial<EstimateSchedulerOptions> = {}) => {
  const calls: Call[] = [];
  const known = new Set<string>();
  const estimated: [string, number, string][] = [];
  const refused: [string, string][] = [];
  const retries: [string, number][] = [];
  let nodes: string[] = ["a", "b"];
  const scheduler = new EstimateScheduler({
    ask: (target, node) =>
      new Promise<EstimateAnswer>((resolve, reject) => {
        calls.push({ model: target.id, node, resolve, reject });
      }),
    candidates: () => nodes,
    known: (key) => known.has(key),
    onEstimate: (done, result, node) => {
      known.add(done.key);
      estimated.push([done.entry.id, result.vram_mb, node]);
    },
    onRefused: (done, reason) => refused.push([done.entry.id, reason]),
    onRetry: (done, _reason, delayMs) => retries.push([done.entry.id, delayMs]),
    backoffMs: 1000,
    maxBackoffMs: 4000,
    ...overrides,
  });
  return {
    scheduler,
    calls,
    known,
    estimated,
    refused,
    retries,
    setNodes: (names: string[]) => {
      nodes = names;
    },
  };
};

/** Lets promise callbacks run. */
const settle = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe("EstimateScheduler", () => {
  it("asks at most `concurrency` at once and starts the next as one finishes", async () => {
    const h = harness({ concurrency: 2 });
    h.scheduler.sync([job("m1"), job("m2"), job("m3")]);
    expect(h.calls.map((call) => call.model)).toEqual(["m1", "m2"]);
    h.calls[0]?.resolve(answer(1000));
    await settle();
    expect(h.calls.map((call) => call.model)).toEqual(["m1", "m2", "m3"]);
    h.calls[1]?.resolve(answer(2000));
    h.calls[2]?.resolve(answer(3000));
    await settle();
    expect(h.estimated).toEqual([
      ["m1", 1000, "a"],
      ["m2", 2000, "a"],
      ["m3", 3000, "a"],
    ]);
    expect(h.scheduler.pending(job("m1").key)).toBe(false);
  });

  it("tries the next node at once, then backs off, doubling up to the bound", async () => {
    const h = harness({ concurrency: 1 });
    h.scheduler.sync([job("m1")]);
    h.calls[0]?.reject(failure("upstream_error", "connection refused"));
    await settle();
    expect(h.calls.map((call) => call.node)).toEqual(["a", "b"]);
    h.calls[1]?.reject(failure("upstream_timeout"));
    await settle();
    expect(h.retries).toEqual([["m1", 1000]]);
    expect(h.scheduler.lastError(job("m1").key)).toBe("upstream_timeout");
    await vi.advanceTimersByTimeAsync(999);
    expect(h.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.calls.map((call) => call.node)).toEqual(["a", "b", "a"]);
    for (const expected of [2000, 4000, 4000]) {
      h.calls.at(-1)?.reject(failure("service_unavailable"));
      await settle();
      h.calls.at(-1)?.reject(failure("not_found", "no such file here"));
      await settle();
      expect(h.retries.at(-1)).toEqual(["m1", expected]);
      await vi.advanceTimersByTimeAsync(expected);
    }
    h.calls.at(-1)?.resolve(answer(5000));
    await settle();
    expect(h.estimated).toEqual([["m1", 5000, "a"]]);
  });

  it("takes a not_estimable answer as final for its key, and asks no other node", async () => {
    const h = harness();
    h.scheduler.sync([job("m1", "weights.safetensors")]);
    h.calls[0]?.reject(failure("not_estimable", "not a GGUF file"));
    await settle();
    expect(h.refused).toEqual([["m1", "not a GGUF file"]]);
    expect(h.scheduler.refusal(job("m1", "weights.safetensors").key)).toBe("not a GGUF file");
    h.scheduler.sync([job("m1", "weights.safetensors")]);
    expect(h.calls).toHaveLength(1);
    // The entry now names another source: a new key, asked again.
    h.scheduler.sync([job("m1", "weights.gguf")]);
    expect(h.calls).toHaveLength(2);
    expect(h.scheduler.refusal(job("m1", "weights.safetensors").key)).toBeUndefined();
  });

  it("does not ask again for a key it knows, and re-asks only what a catalogue change changed", async () => {
    const h = harness({ concurrency: 4 });
    h.scheduler.sync([job("m1"), job("m2")]);
    for (const call of h.calls) call.resolve(answer(1000));
    await settle();
    expect(h.calls).toHaveLength(2);
    h.scheduler.sync([job("m1"), job("m2", "m2-bigger.gguf"), job("m3")]);
    expect(h.calls.map((call) => call.model)).toEqual(["m1", "m2", "m2", "m3"]);
    // Keys already known (the database's, at start) are never asked.
    h.known.add(job("m4").key);
    h.scheduler.sync([job("m4")]);
    expect(h.calls).toHaveLength(4);
  });

  it("drops waiting jobs the catalogue no longer has", async () => {
    const h = harness({ concurrency: 1 });
    h.scheduler.sync([job("m1"), job("m2")]);
    h.scheduler.sync([job("m1")]);
    h.calls[0]?.resolve(answer(1000));
    await settle();
    expect(h.calls.map((call) => call.model)).toEqual(["m1"]);
    expect(h.scheduler.pending(job("m2").key)).toBe(false);
  });

  it("lets an answer for a dropped key still be filed, but not a refusal", async () => {
    const h = harness({ concurrency: 2 });
    h.scheduler.sync([job("m1"), job("m2")]);
    h.scheduler.sync([]);
    h.calls[0]?.resolve(answer(1000));
    h.calls[1]?.reject(failure("not_estimable"));
    await settle();
    expect(h.estimated).toEqual([["m1", 1000, "a"]]);
    expect(h.refused).toEqual([]);
  });

  it("parks jobs while no node can take them, and starts them when one comes up", async () => {
    const h = harness();
    h.setNodes([]);
    h.scheduler.sync([job("m1")]);
    expect(h.calls).toHaveLength(0);
    expect(h.scheduler.pending(job("m1").key)).toBe(true);
    expect(h.scheduler.lastError(job("m1").key)).toMatch(/no healthy node/);
    h.scheduler.fleetChanged();
    expect(h.calls).toHaveLength(0);
    h.setNodes(["b"]);
    h.scheduler.fleetChanged();
    expect(h.calls.map((call) => call.node)).toEqual(["b"]);
  });

  it("stops every timer on close and ignores answers after it", async () => {
    const h = harness({ concurrency: 1 });
    h.scheduler.sync([job("m1"), job("m2")]);
    h.scheduler.close();
    h.calls[0]?.resolve(answer(1000));
    await settle();
    expect(h.estimated).toEqual([]);
    expect(h.calls).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});
