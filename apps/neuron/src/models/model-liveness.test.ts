import type { NeuronModel } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { type Scripted, scripted } from "../supervisor/harness-supervisor.fixtures.js";
import { testManager, testSettings } from "./model-manager.fixtures.js";
import type { ModelManager } from "./model-manager.js";

// What liveness means for a model: a loaded harness that stops answering its ready path goes
// `recovering` (killed, restarted with the backoff) and `loaded` again, while one that streams
// to a client is left alone. Scripted processes and fake timers: nothing runs, nothing sleeps.

const fake = defineHarness(
  "fake",
  { command: ["fake-harness", "--model", "{model_path}", "--port", "{port}"] },
  { node: process.execPath, entry: "unused" },
) as Harness;

let processes: Scripted[];
/** Whether the harness answers its liveness probes (readiness always answers). */
let answering: boolean;
let statuses: string[];
let manager: ModelManager;

beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse("2025-01-01T00:00:00Z") });
  processes = [];
  answering = true;
  statuses = [];
  manager = testManager(
    {
      harnesses: new Map([["fake", fake]]),
      runner: {
        start: () => {
          const process = scripted(5000 + processes.length);
          processes.push(process);
          return process.child;
        },
      },
      sources: { check: () => {}, prepare: async (source) => `/models/${source}` },
      freePort: async () => 40_000 + processes.length,
      probe: async (_url, signal) => (signal ? answering : true),
      onChange: (change) => {
        if ("status" in change) statuses.push((change as NeuronModel).status);
      },
    },
    testSettings({ healthIntervalMs: 1000, unhealthyAfterFailures: 3, restartDelaysMs: [500] }),
  );
});

afterEach(async () => {
  const stopping = manager.shutdown();
  await vi.runAllTimersAsync();
  await stopping;
  vi.useRealTimers();
});

const statusOf = () => manager.list()[0]?.status;

describe("a loaded model's liveness", () => {
  it("goes recovering after 3 failed probes, its harness killed, then loaded again", async () => {
    await manager.load({ model_id: "m", harness: "fake", source: "m.gguf" });
    answering = false;
    await vi.advanceTimersByTimeAsync(2999);
    expect(statusOf()).toBe("loaded");
    await vi.advanceTimersByTimeAsync(1);
    expect(statusOf()).toBe("recovering");
    expect(processes[0]?.child.hasExited()).toBe(true);
    expect(manager.list()[0]?.error).toMatch(
      /^harness stopped answering \/health: 3 probes in a row failed .*restarting in 500 ms \(attempt 1\)$/,
    );
    answering = true;
    await vi.advanceTimersByTimeAsync(500);
    expect(statusOf()).toBe("loaded");
    expect(processes).toHaveLength(2);
    expect(statuses).toEqual(["loading", "loaded", "recovering", "loaded"]);
  });

  it("a request waiting while it recovers is served by the restarted harness", async () => {
    await manager.load({ model_id: "m", harness: "fake", source: "m.gguf" });
    answering = false;
    await vi.advanceTimersByTimeAsync(3000);
    answering = true;
    const served = manager.run("m", undefined, async (base) => base);
    await vi.advanceTimersByTimeAsync(500);
    expect(await served).toBe("http://127.0.0.1:40001");
  });

  it("leaves a harness alone while its answer streams to a client, however its probes fare", async () => {
    await manager.load({ model_id: "m", harness: "fake", source: "m.gguf" });
    answering = false;
    let streaming = true;
    const request = manager.run("m", undefined, async (_base, sawBytes) => {
      while (streaming) {
        sawBytes();
        await new Promise((resolve) => setTimeout(resolve, 400));
      }
    });
    await vi.advanceTimersByTimeAsync(20_000);
    expect(statusOf()).toBe("loaded");
    expect(processes).toHaveLength(1);
    streaming = false;
    await vi.advanceTimersByTimeAsync(400);
    await request;
    // The last bytes flowed at 20 s: the tick at 21 s probes, and the third failure is at 23 s.
    await vi.advanceTimersByTimeAsync(2599);
    expect(statusOf()).toBe("loaded");
    await vi.advanceTimersByTimeAsync(1);
    expect(statusOf()).toBe("recovering");
  });
});
