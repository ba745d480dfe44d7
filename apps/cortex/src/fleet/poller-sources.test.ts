import type { HeldSources } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { settle, setup, stopPollers } from "./poller.fixtures.js";

// The weights each neuron holds on disk, as the poller keeps them from discovery for placement.

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 1_000_000 });
});

afterEach(async () => {
  await stopPollers();
  vi.useRealTimers();
});

const held = (...paths: string[]): HeldSources => ({
  models_dir: "/srv/models",
  files: paths.map((path) => ({ path, size_bytes: 1 << 30 })),
  complete: true,
});

describe("Poller held sources", () => {
  it("keeps each node's held sources from its discovery, and none for an older neuron", async () => {
    const { poller, client, node } = setup();
    client("a").discoveryAnswer.sources = held("q.gguf");
    poller.start();
    await settle();
    expect(node("a").sources).toEqual(held("q.gguf"));
    expect(node("b").sources).toBeUndefined();
  });

  it("keeps the same object while the list is unchanged, and takes a changed one", async () => {
    const { poller, client, node } = setup(["a"], { discoveryIntervalMs: 1000 });
    client("a").discoveryAnswer.sources = held("q.gguf");
    poller.start();
    await settle();
    const first = node("a").sources;
    await vi.advanceTimersByTimeAsync(1000);
    await settle();
    expect(client("a").discoveryCalls).toBe(2);
    expect(node("a").sources).toBe(first);
    client("a").discoveryAnswer.sources = held("q.gguf", "hf/o/r/main/f.gguf");
    await vi.advanceTimersByTimeAsync(1000);
    await settle();
    expect(node("a").sources?.files.map((file) => file.path)).toEqual([
      "q.gguf",
      "hf/o/r/main/f.gguf",
    ]);
  });

  it.each([
    [10_000, 1, "on ticks that do not ask discovery"],
    [1000, 2, "when discovery fails"],
  ])("keeps the last list (discovery every %i ms, %i calls) %s", async (every, calls) => {
    const { poller, client, node } = setup(["a"], { discoveryIntervalMs: every });
    client("a").discoveryAnswer.sources = held("q.gguf");
    poller.start();
    await settle();
    client("a").discoveryFailure = new Error("ECONNRESET");
    await vi.advanceTimersByTimeAsync(1000);
    await settle();
    expect(client("a").discoveryCalls).toBe(calls);
    expect(node("a").sources).toEqual(held("q.gguf"));
  });

  it("forgets the list when the neuron is replaced by one that does not report it", async () => {
    const { poller, client, node } = setup(["a"], { discoveryIntervalMs: 1000 });
    client("a").discoveryAnswer.sources = held("q.gguf");
    poller.start();
    await settle();
    delete client("a").discoveryAnswer.sources;
    await vi.advanceTimersByTimeAsync(1000);
    await settle();
    expect(node("a").sources).toBeUndefined();
  });
});
