import type { LoadProgress, LoadRequest, NeuronModel } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MAX_MESSAGE_CHARS } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import type { ExitStatus, RunningProcess } from "../supervisor/process-runner.js";
import { RingBuffer } from "../supervisor/ring-buffer.js";
import { testManager, testSettings } from "./model-manager.fixtures.js";
import {
  FAILED_TTL_MS,
  MAX_FAILED_ENTRIES,
  type ModelManager,
  type SourcePreparer,
} from "./model-manager.js";

// The manager's bookkeeping of failures with no processes at all: sources that fail, a fake
// process runner, and an injected clock. Nothing here sleeps.

const MEGABYTE = "x".repeat(1 << 20);

/** A process whose exit the test decides, with whatever output it printed. */
const fakeProcess = (output = "") => {
  const buffer = new RingBuffer();
  buffer.write(output);
  let exit: (status: ExitStatus) => void = () => {};
  let done = false;
  const exited = new Promise<ExitStatus>((resolve) => {
    exit = (status) => {
      done = true;
      resolve(status);
    };
  });
  const child: RunningProcess = {
    pid: 4242,
    output: buffer,
    exited,
    hasExited: () => done,
    stop: async () => {
      exit({ code: null, signal: "SIGTERM" });
      return exited;
    },
    killNow: () => exit({ code: null, signal: "SIGKILL" }),
  };
  return { child, exit: () => exit({ code: 1, signal: null }) };
};

let now: number;
let changes: (NeuronModel | { id: string; removed: true })[];
/** What each load's source does; the default fails the way a missing local file does. */
let prepare: SourcePreparer["prepare"];
let check: SourcePreparer["check"];
let nextProcess: () => RunningProcess;
let ready: boolean;

const fake = defineHarness(
  "fake",
  { command: ["fake-harness", "--model", "{model_path}", "--port", "{port}"] },
  { node: process.execPath, entry: "unused" },
) as Harness;

const managerWith = (restartDelaysMs: readonly number[] = []) =>
  testManager(
    {
      harnesses: new Map([["fake", fake]]),
      runner: { start: () => nextProcess() },
      sources: {
        check: (source) => check(source),
        prepare: (source, onProgress, signal) => prepare(source, onProgress, signal),
      },
      freePort: async () => 40_000,
      probe: async () => ready,
      now: () => now,
      onChange: (change) => changes.push(change),
    },
    testSettings({ stopGraceMs: 10, readyTimeoutMs: () => 60_000, restartDelaysMs }),
  );

const request = (id: string, source = "missing.gguf"): LoadRequest => ({
  model_id: id,
  harness: "fake",
  source,
});

const failedIds = (manager: ModelManager) =>
  manager
    .list()
    .filter((model) => model.status === "failed")
    .map((model) => model.id);

const failLoad = (manager: ModelManager, id: string, source?: string) =>
  manager.load(request(id, source)).then(
    () => expect.unreachable(`${id} loaded`),
    (error: unknown) => error as NeuronError,
  );

beforeEach(() => {
  now = Date.parse("2025-01-01T00:00:00Z");
  changes = [];
  check = () => {};
  prepare = async (source) => {
    throw new NeuronError(
      "load_failed",
      `model file /srv/models/${source} does not exist; put the model there or fix the catalogue source "${source}"`,
      { param: "source" },
    );
  };
  nextProcess = () => fakeProcess().child;
  ready = true;
});

afterEach(() => {
  vi.useRealTimers();
});

describe("error text is capped", () => {
  it("a load whose source is a megabyte fails with a short message, and lists a short error", async () => {
    const manager = managerWith();
    const error = await failLoad(manager, "big", MEGABYTE);
    expect(error).toMatchObject({ name: "NeuronError", code: "load_failed", param: "source" });
    expect(error.message.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
    // Both ends survive: what failed, and the end of the sentence.
    expect(error.message).toMatch(/^model file \/srv\/models\/x+ \[…\d+ characters cut…\] x+"$/);
    const [model] = manager.list();
    expect(model).toMatchObject({ id: "big", status: "failed" });
    expect(model?.error?.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
    expect(JSON.stringify(manager.list()).length).toBeLessThan(3 * 1024);
  });

  it("caps an unexpected error's message in the load_failed it becomes", async () => {
    prepare = async () => {
      throw new Error(`ENAMETOOLONG: name too long, realpath '${MEGABYTE}'`);
    };
    const manager = managerWith();
    const error = await failLoad(manager, "odd");
    expect(error).toMatchObject({ code: "load_failed" });
    expect(error.message).toMatch(/^loading model "odd" failed: ENAMETOOLONG/);
    expect(error.message.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS + 100);
    expect(manager.list()[0]?.error?.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
  });

  it("caps the harness output quoted when a harness exits before it is ready", async () => {
    prepare = async () => "/srv/models/m.gguf";
    const { child, exit } = fakeProcess(`starting\n${"E".repeat(300_000)}\nfatal: out of memory\n`);
    exit();
    nextProcess = () => child;
    const manager = managerWith();
    const error = await failLoad(manager, "dies");
    expect(error.message).toMatch(/^harness exited with code 1 before it was ready/);
    expect(error.message).toMatch(/fatal: out of memory$/);
    expect(error.message.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
    expect(manager.list()[0]?.error?.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
  });

  it("caps the error of a crashing harness, while it recovers and once it gives up", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    prepare = async () => "/srv/models/m.gguf";
    const first = fakeProcess(`${"E".repeat(300_000)}\nsegfault\n`);
    nextProcess = () => first.child;
    const recovering = managerWith([60_000]);
    await recovering.load(request("m"));
    first.exit();
    await vi.waitFor(() => expect(recovering.list()[0]?.status).toBe("recovering"));
    expect(recovering.list()[0]?.error?.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
    await recovering.shutdown();

    const second = fakeProcess(`${"E".repeat(300_000)}\nsegfault\n`);
    nextProcess = () => second.child;
    const giving = managerWith([]);
    await giving.load(request("m"));
    second.exit();
    await vi.waitFor(() => expect(giving.list()[0]?.status).toBe("failed"));
    const error = giving.list()[0]?.error ?? "";
    expect(error).toMatch(/^gave up after 1 crashes: harness exited with code 1/);
    expect(error).toMatch(/segfault$/);
    expect(error.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
  });

  it("caps a refused source's message before anything happens", async () => {
    check = (source) => {
      throw new NeuronError("invalid_request_error", `source "${source}" is outside models_dir`, {
        param: "source",
      });
    };
    const manager = managerWith();
    const error = await failLoad(manager, "refused", `/etc/${MEGABYTE}`);
    expect(error).toMatchObject({ code: "invalid_request_error", param: "source" });
    expect(error.message.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
    expect(manager.list()).toEqual([]);
  });

  it("caps progress messages that name the source", async () => {
    prepare = async (source, onProgress) => {
      onProgress({ phase: "downloading", bytes: 0, total: null, message: `downloading ${source}` });
      throw new NeuronError("load_failed", "cut off");
    };
    const events: LoadProgress[] = [];
    const manager = managerWith();
    await manager.load(request("p", MEGABYTE), (event) => events.push(event)).catch(() => {});
    expect(events).toHaveLength(1);
    expect(events[0]?.message?.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
    expect(events[0]?.message).toMatch(/^downloading x+ \[…/);
  });

  it("caps the model name an inference request echoes back", async () => {
    const manager = managerWith();
    const error = await manager.run(MEGABYTE, undefined, async () => 0).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "model_not_found" });
    expect((error as Error).message.length).toBeLessThan(400);
  });
});

describe("failed entries are forgotten", () => {
  it(`keeps the newest ${MAX_FAILED_ENTRIES} failures and forgets older ones`, async () => {
    const manager = managerWith();
    const ids = Array.from({ length: MAX_FAILED_ENTRIES + 8 }, (_, i) => `m${i}`);
    for (const id of ids) {
      now += 1000;
      await failLoad(manager, id);
    }
    expect(failedIds(manager)).toEqual(ids.slice(8));
    expect(changes.filter((change) => "removed" in change).map((change) => change.id)).toEqual(
      ids.slice(0, 8),
    );
    // A forgotten model is simply unknown now.
    await expect(manager.run("m0", undefined, async () => 0)).rejects.toMatchObject({
      code: "model_not_found",
    });
  });

  it("forgets a failure once it is an hour old", async () => {
    const manager = managerWith();
    await failLoad(manager, "early");
    now += FAILED_TTL_MS / 2;
    await failLoad(manager, "later");
    now += FAILED_TTL_MS / 2 - 1;
    expect(failedIds(manager)).toEqual(["early", "later"]);
    now += 1;
    expect(failedIds(manager)).toEqual(["later"]);
    now += FAILED_TTL_MS / 2;
    expect(manager.list()).toEqual([]);
  });

  it("counts a failure from its latest attempt", async () => {
    const manager = managerWith();
    await failLoad(manager, "again");
    now += FAILED_TTL_MS - 1;
    await failLoad(manager, "again");
    now += FAILED_TTL_MS - 1;
    expect(failedIds(manager)).toEqual(["again"]);
  });

  it("a failed model loaded again is not failed any more, and never forgotten as one", async () => {
    const manager = managerWith();
    for (let i = 0; i < MAX_FAILED_ENTRIES; i++) await failLoad(manager, `m${i}`);
    prepare = async () => "/srv/models/m.gguf";
    await manager.load(request("m0"));
    expect(manager.list().find((model) => model.id === "m0")).toMatchObject({
      status: "loaded",
      error: null,
    });
    prepare = async () => {
      throw new NeuronError("load_failed", "still missing");
    };
    // 32 failed again (m1…m31 and the new one): nothing is forgotten, m0 least of all.
    await failLoad(manager, "new");
    expect(failedIds(manager)).toHaveLength(MAX_FAILED_ENTRIES);
    expect(changes.some((change) => "removed" in change)).toBe(false);
    now += FAILED_TTL_MS;
    expect(manager.list().map((model) => [model.id, model.status])).toEqual([["m0", "loaded"]]);
    await manager.shutdown();
  });
});

describe("every status change is announced", () => {
  it("a load, a crash, its restart, and giving up", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    prepare = async () => "/srv/models/m.gguf";
    const crashes: (() => void)[] = [];
    nextProcess = () => {
      const { child, exit } = fakeProcess();
      crashes.push(exit);
      return child;
    };
    const manager = managerWith([1000]);
    await manager.load(request("m"));
    crashes[0]?.();
    await vi.waitFor(() => expect(manager.list()[0]?.status).toBe("recovering"));
    await vi.advanceTimersByTimeAsync(1000);
    await vi.waitFor(() => expect(manager.list()[0]?.status).toBe("loaded"));
    crashes[1]?.();
    await vi.waitFor(() => expect(manager.list()[0]?.status).toBe("failed"));
    const statuses = changes.map((change) => ("status" in change ? change.status : "removed"));
    expect(statuses).toEqual(["loading", "loaded", "recovering", "loaded", "failed"]);
    expect(manager.list()[0]?.error).toMatch(/^gave up after 2 crashes/);
  });
});
