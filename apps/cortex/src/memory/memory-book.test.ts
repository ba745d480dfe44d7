import { CatalogueEntry, type CatalogueEntryInput, type EstimateAnswer } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import {
  effectiveMb,
  MemoryBook,
  type MemoryRecord,
  OOM_RAISE_FACTOR,
  raisedMb,
  VRAM_MARGIN,
  withMargin,
} from "./memory-book.js";
import { memoryKey } from "./memory-key.js";

// The rules that turn what cortex knows of a model's memory into the figure it places by, and
// the book that keeps what it knows.

const entry = (fields: Partial<CatalogueEntryInput> = {}): CatalogueEntry =>
  CatalogueEntry.parse({ id: "m", harness: "llamacpp", source: "m.gguf", ...fields });

const estimate = (vramMb: number): EstimateAnswer => ({
  vram_mb: vramMb,
  breakdown: { weights_mb: vramMb * 0.8, kv_cache_mb: vramMb * 0.1, overhead_mb: vramMb * 0.1 },
  basis: "gguf header (local file, 0.6 MiB)",
});

const record = (fields: Partial<MemoryRecord>): MemoryRecord => ({
  key: "m llamacpp 0",
  model: "m",
  harness: "llamacpp",
  estimate: null,
  observedMb: null,
  raisedMb: null,
  updatedAt: 0,
  ...fields,
});

describe("effectiveMb", () => {
  it.each([
    ["nothing known: not placed", {}, undefined, null],
    ["declared only", { vram_mb: 10_000 }, undefined, 10_000],
    ["estimated only", {}, record({ estimate: estimate(8000) }), 8000],
    [
      "the larger of declared and estimated (declared)",
      { vram_mb: 10_000 },
      record({ estimate: estimate(8000) }),
      10_000,
    ],
    [
      "the larger of declared and estimated (estimated)",
      { vram_mb: 6000 },
      record({ estimate: estimate(8000) }),
      8000,
    ],
    [
      "observed wins over both, with its margin",
      { vram_mb: 10_000 },
      record({ estimate: estimate(12_000), observedMb: 20_000 }),
      21_000,
    ],
    [
      "observed below the declared figure still wins",
      { vram_mb: 10_000 },
      record({ observedMb: 5000 }),
      5250,
    ],
    [
      "a raised floor over the declared figure",
      { vram_mb: 10_000 },
      record({ raisedMb: 15_000 }),
      15_000,
    ],
    [
      "a raised floor under the observed one",
      { vram_mb: 10_000 },
      record({ observedMb: 20_000, raisedMb: 15_000 }),
      21_000,
    ],
    [
      "a cpu model without a figure needs none",
      { runs_on: "cpu" },
      record({ observedMb: 3000 }),
      0,
    ],
    ["a cpu model keeps what it declares", { runs_on: "cpu", vram_mb: 500 }, undefined, 500],
  ] as const)("%s", (_case, fields, known, expected) => {
    expect(effectiveMb(entry(fields as Partial<CatalogueEntryInput>), known)).toBe(expected);
  });

  it("adds the margin to a measured peak and rounds up", () => {
    expect(VRAM_MARGIN).toBe(0.05);
    expect(withMargin(1000)).toBe(1050);
    expect(withMargin(1001)).toBe(1052);
  });
});

describe("raisedMb", () => {
  it("adds what the engine tried to allocate to the room it was given", () => {
    expect(raisedMb(10_000, 20_480)).toBe(30_480);
  });

  it("raises by half when the engine's line names no size", () => {
    expect(OOM_RAISE_FACTOR).toBe(1.5);
    expect(raisedMb(10_000, null)).toBe(15_000);
  });

  it("always raises, even for a tiny or empty figure", () => {
    expect(raisedMb(0, null)).toBe(1);
    expect(raisedMb(10_000, 0)).toBe(10_001);
  });
});

describe("MemoryBook", () => {
  const subject = { key: "m llamacpp abc", model: "m", harness: "llamacpp" };
  const book = (changes: MemoryRecord[] = []) =>
    new MemoryBook({ onChange: (changed) => changes.push(changed), now: () => 42 });

  it("files an estimate once, and reports each change", () => {
    const changes: MemoryRecord[] = [];
    const memory = book(changes);
    expect(memory.setEstimate(subject, estimate(8000))).toBe(true);
    const version = memory.version;
    expect(memory.setEstimate(subject, estimate(8000))).toBe(false);
    expect(memory.version).toBe(version);
    expect(changes).toEqual([
      { ...subject, estimate: estimate(8000), observedMb: null, raisedMb: null, updatedAt: 42 },
    ]);
  });

  it("keeps the peak of the measurements, not the last one", () => {
    const memory = book();
    expect(memory.observe(subject, 18_000)).toBe(true);
    expect(memory.observe(subject, 20_000)).toBe(true);
    expect(memory.observe(subject, 19_000)).toBe(false);
    expect(memory.observe(subject, 20_000)).toBe(false);
    expect(memory.get(subject.key)?.observedMb).toBe(20_000);
  });

  it("raises a floor after an out-of-memory failure, and a new peak clears it", () => {
    const memory = book();
    memory.observe(subject, 10_000);
    expect(memory.raise(subject, 10_500, 4000)).toBe(14_500);
    // A second failure at a lower figure never lowers the floor.
    expect(memory.raise(subject, 5000, null)).toBe(14_500);
    expect(effectiveMb(entry({ vram_mb: 10_000 }), memory.get(subject.key))).toBe(14_500);
    // A lower reading says nothing new; a larger one is the truth, and the floor goes.
    memory.observe(subject, 9000);
    expect(memory.get(subject.key)?.raisedMb).toBe(14_500);
    memory.observe(subject, 13_000);
    expect(memory.get(subject.key)?.raisedMb).toBeNull();
    expect(effectiveMb(entry({ vram_mb: 10_000 }), memory.get(subject.key))).toBe(13_650);
  });

  it("takes records read at start without reporting them as changes", () => {
    const changes: MemoryRecord[] = [];
    const memory = book(changes);
    memory.load([record({ key: subject.key, observedMb: 7000 })]);
    expect(changes).toEqual([]);
    expect(memory.get(subject.key)?.observedMb).toBe(7000);
    expect(memory.version).toBeGreaterThan(0);
  });
});

describe("memoryKey", () => {
  it("is the same for the same footprint, whatever the order of args", () => {
    const a = entry({ args: { n_gpu_layers: 99, flash_attn: true } });
    const b = entry({ args: { flash_attn: true, n_gpu_layers: 99 }, aliases: ["other"] });
    expect(memoryKey(a)).toBe(memoryKey(b));
    expect(memoryKey(a)).toMatch(/^m llamacpp [0-9a-f]{16}$/);
  });

  it.each([
    ["source", { source: "other.gguf" }],
    ["context length", { context_length: 8192 }],
    ["slots", { max_concurrency: 8 }],
    ["args", { args: { n_gpu_layers: 20 } }],
    ["quant", { quant: "Q8_0" }],
    ["devices", { min_devices: 2 }],
    ["harness", { harness: "vllm" }],
  ] as const)("changes with the %s", (_what, fields) => {
    expect(memoryKey(entry(fields as Partial<CatalogueEntryInput>))).not.toBe(memoryKey(entry()));
  });
});
