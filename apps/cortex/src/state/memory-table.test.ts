import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type CortexState, openState } from "./database.js";
import { MemoryLog, type MemoryRow, readMemory } from "./memory-table.js";

// model_memory: what cortex learnt of each model's GPU memory, written behind and read back
// at start, so a restart places models by what it knew before.

const row = (fields: Partial<MemoryRow> = {}): MemoryRow => ({
  key: "qwen llamacpp 0123456789abcdef",
  model: "qwen",
  harness: "llamacpp",
  estimatedMb: 6000,
  estimate: {
    basis: "gguf header (local file, 0.6 MiB)",
    breakdown: { weights_mb: 4700.5, kv_cache_mb: 1024, overhead_mb: 275.5 },
  },
  observedMb: null,
  raisedMb: null,
  updatedAt: 1_700_000_000_000,
  ...fields,
});

describe("MemoryLog", () => {
  const open: { state: CortexState; log: MemoryLog }[] = [];
  let dir: string | undefined;

  afterEach(async () => {
    for (const { state, log } of open.splice(0)) {
      log.close();
      state.close();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  const start = (dataDir: string | ":memory:") => {
    const state = openState(dataDir);
    const log = new MemoryLog(state.db, { flushIntervalMs: 60_000 });
    open.push({ state, log });
    return { state, log };
  };

  it("writes nothing until a flush, then upserts: the last save of a key wins", () => {
    const { state, log } = start(":memory:");
    log.save(row());
    expect(readMemory(state.db)).toEqual([]);
    log.save(row({ observedMb: 7000, updatedAt: 1_700_000_000_500 }));
    log.save(row({ key: "other llamacpp 0", model: "other", estimatedMb: null, estimate: null }));
    log.flush();
    expect(readMemory(state.db)).toEqual([
      row({ observedMb: 7000, updatedAt: 1_700_000_000_500 }),
      row({ key: "other llamacpp 0", model: "other", estimatedMb: null, estimate: null }),
    ]);
    log.save(row({ observedMb: 7000, raisedMb: 9000, updatedAt: 1_700_000_001_000 }));
    log.flush();
    expect(readMemory(state.db)[0]).toMatchObject({ observedMb: 7000, raisedMb: 9000 });
  });

  it("survives closing and reopening the same data_dir", async () => {
    dir = await mkdtemp(join(tmpdir(), "cortex-memory-table-"));
    const first = start(dir);
    first.log.save(row({ observedMb: 6400 }));
    // Closing flushes what is pending.
    first.log.close();
    first.state.close();
    open.splice(0);
    const second = start(dir);
    expect(readMemory(second.state.db)).toEqual([row({ observedMb: 6400 })]);
  });
});
