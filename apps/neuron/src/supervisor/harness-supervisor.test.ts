import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { NeuronError } from "../errors.js";
import type { Launch } from "../harnesses/definitions.js";
import { systemTimers } from "../timers.js";
import {
  type HarnessJob,
  type HarnessState,
  HarnessSupervisor,
  RESTART_DELAYS_MS,
  STABLE_AFTER_MS,
  type SupervisorSettings,
} from "./harness-supervisor.js";
import type { ExitStatus, RunningProcess } from "./process-runner.js";
import { RingBuffer } from "./ring-buffer.js";

// The supervisor with a scripted process runner and fake timers: backoff, the stable reset, and
// stops at any moment, exact to the millisecond. No process is started and nothing sleeps.

const LAUNCH: Launch = {
  command: "fake-harness",
  args: [],
  env: {},
  inherited: {},
  readyPath: "/health",
};

interface Scripted {
  readonly child: RunningProcess;
  /** The process exits by itself (a crash). */
  crash(code?: number): void;
  stops: number;
}

/** A process whose exit the test decides. */
const scripted = (pid: number): Scripted => {
  const output = new RingBuffer();
  output.write(`harness ${pid} says hello\n`);
  let done = false;
  let resolveExit: (status: ExitStatus) => void = () => {};
  const exited = new Promise<ExitStatus>((resolve) => {
    resolveExit = resolve;
  });
  const exit = (status: ExitStatus) => {
    if (done) return;
    done = true;
    resolveExit(status);
  };
  const process: Scripted = {
    child: {
      pid,
      output,
      exited,
      hasExited: () => done,
      stop: async () => {
        process.stops += 1;
        exit({ code: null, signal: "SIGTERM" });
        return exited;
      },
      killNow: () => exit({ code: null, signal: "SIGKILL" }),
    },
    crash: (code = 1) => exit({ code, signal: null }),
    stops: 0,
  };
  return process;
};

let processes: Scripted[];
let states: HarnessState[];
/** Whether the harness started last answers its readiness probe. */
let ready: boolean;
let supervisor: HarnessSupervisor;

const kinds = () => states.map((state) => state.kind);
const last = (): HarnessState | undefined => states.at(-1);
const latest = (): Scripted => {
  const process = processes.at(-1);
  if (!process) throw new Error("nothing was started");
  return process;
};

/** Lets the promise chains of a start run (they await no timer while the probe answers). */
const flush = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

/** Crashes the running harness, then lets the supervisor react. */
const crash = async () => {
  latest().crash();
  await flush();
};

/** A supervisor over scripted processes; `job` and `settings` replace the defaults they name. */
const supervisorWith = ({
  job,
  pidBase = 1000,
  port = async () => 40_000 + processes.length,
  probe = async () => ready,
  settings,
}: {
  job?: Partial<HarnessJob>;
  pidBase?: number;
  port?: () => Promise<number>;
  probe?: () => Promise<boolean>;
  settings?: Partial<SupervisorSettings>;
}): HarnessSupervisor =>
  new HarnessSupervisor(
    {
      id: "m",
      prepare: async () => () => ({ launch: LAUNCH, env: {} }),
      readyTimeoutMs: () => 60_000,
      onState: (state) => states.push(state),
      ...job,
    },
    {
      runner: {
        start: () => {
          const process = scripted(pidBase + processes.length);
          processes.push(process);
          return process.child;
        },
      },
      freePort: port,
      probe,
      onRecordError: () => {},
      now: () => Date.now(),
      timers: systemTimers,
    },
    {
      stopGraceMs: 100,
      readyPollMs: 200,
      restartDelaysMs: RESTART_DELAYS_MS,
      stableAfterMs: STABLE_AFTER_MS,
      ...settings,
    },
  );

beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse("2025-01-01T00:00:00Z") });
  processes = [];
  states = [];
  ready = true;
  supervisor = supervisorWith({});
});

afterEach(() => {
  vi.useRealTimers();
});

describe("HarnessSupervisor", () => {
  it("starts a harness and answers its URL once it is ready", async () => {
    expect(await supervisor.start()).toBe("http://127.0.0.1:40000");
    expect(kinds()).toEqual(["starting", "ready"]);
    expect(supervisor.url).toBe("http://127.0.0.1:40000");
    expect(supervisor.output?.text()).toContain("harness 1000 says hello");
  });

  it("polls readiness on its timer, and fails a start whose harness exits first", async () => {
    ready = false;
    const starting = supervisor.start().catch((error: unknown) => error);
    await flush();
    await vi.advanceTimersByTimeAsync(1000);
    expect(processes).toHaveLength(1);
    latest().crash(3);
    const error = await starting;
    expect(error).toBeInstanceOf(NeuronError);
    expect((error as Error).message).toMatch(/^harness exited with code 3 before it was ready/);
    expect(kinds()).toEqual(["starting", "stopped"]);
    expect(supervisor.url).toBeNull();
  });

  it("restarts after 1 s, 5 s and 15 s, then gives up", async () => {
    await supervisor.start();
    for (const [index, delay] of RESTART_DELAYS_MS.entries()) {
      await crash();
      expect(last()).toMatchObject({ kind: "recovering", attempt: index + 1, inMs: delay });
      expect(supervisor.url).toBeNull();
      await vi.advanceTimersByTimeAsync(delay - 1);
      expect(processes).toHaveLength(index + 1);
      await vi.advanceTimersByTimeAsync(1);
      await flush();
      expect(processes).toHaveLength(index + 2);
      expect(last()).toMatchObject({ kind: "ready" });
    }
    await crash();
    expect(last()).toMatchObject({ kind: "failed", crashes: 4 });
    expect(last()).toHaveProperty(
      "reason",
      expect.stringMatching(/^gave up after 4 crashes: harness exited with code 1; last output:/),
    );
    await vi.advanceTimersByTimeAsync(60_000);
    expect(processes).toHaveLength(4);
  });

  it("counts a restart that fails as one more crash", async () => {
    await supervisor.start();
    await crash();
    ready = false;
    await vi.advanceTimersByTimeAsync(1000);
    await flush();
    expect(processes).toHaveLength(2);
    latest().crash();
    await flush();
    expect(last()).toMatchObject({ kind: "recovering", attempt: 2, inMs: 5000 });
    expect(last()).toHaveProperty("reason", expect.stringMatching(/before it was ready/));
  });

  it("starts its crash count afresh after 5 stable minutes, not before", async () => {
    await supervisor.start();
    await crash();
    await vi.advanceTimersByTimeAsync(1000);
    await flush();
    // Ran exactly 5 minutes: not yet stable.
    await vi.advanceTimersByTimeAsync(STABLE_AFTER_MS);
    await crash();
    expect(last()).toMatchObject({ kind: "recovering", attempt: 2, inMs: 5000 });
    await vi.advanceTimersByTimeAsync(5000);
    await flush();
    await vi.advanceTimersByTimeAsync(STABLE_AFTER_MS + 1);
    await crash();
    expect(last()).toMatchObject({ kind: "recovering", attempt: 1, inMs: 1000 });
  });

  it("a new load starts counting afresh", async () => {
    await supervisor.start();
    await crash();
    await supervisor.stop();
    supervisor.resetCrashes();
    await supervisor.start();
    await crash();
    expect(last()).toMatchObject({ kind: "recovering", attempt: 1 });
  });

  it("a stop while recovering cancels the restart", async () => {
    await supervisor.start();
    await crash();
    expect(last()).toMatchObject({ kind: "recovering" });
    await supervisor.stop();
    expect(last()).toEqual({ kind: "stopped" });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(processes).toHaveLength(1);
    expect(kinds()).toEqual(["starting", "ready", "recovering", "stopped"]);
  });

  it("a stop during a restart stops the process being started, and nothing restarts", async () => {
    await supervisor.start();
    await crash();
    ready = false;
    await vi.advanceTimersByTimeAsync(1000);
    await flush();
    expect(processes).toHaveLength(2);
    expect(last()).toEqual({ kind: "starting" });
    const stopping = supervisor.stop();
    await vi.advanceTimersByTimeAsync(200);
    await stopping;
    expect(latest().stops).toBeGreaterThanOrEqual(1);
    expect(last()).toEqual({ kind: "stopped" });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(processes).toHaveLength(2);
    expect(kinds()).toEqual(["starting", "ready", "recovering", "starting", "stopped"]);
  });

  it("a stop before the restart's process starts means it never starts", async () => {
    let release: () => void = () => {};
    const supervisorSlowPrepare = supervisorWith({
      job: {
        id: "slow",
        prepare: async () => {
          if (processes.length > 0) await new Promise<void>((resolve) => (release = resolve));
          return () => ({ launch: LAUNCH, env: {} });
        },
      },
      pidBase: 2000,
      port: async () => 41_000,
      probe: async () => true,
      settings: { restartDelaysMs: [1000], stableAfterMs: 1000 },
    });
    await supervisorSlowPrepare.start();
    latest().crash();
    await flush();
    await vi.advanceTimersByTimeAsync(1000);
    await supervisorSlowPrepare.stop();
    release();
    await flush();
    expect(processes).toHaveLength(1);
    expect(last()).toEqual({ kind: "stopped" });
  });

  it("does not take its own stop for a crash", async () => {
    await supervisor.start();
    await supervisor.stop();
    await flush();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(kinds()).toEqual(["starting", "ready", "stopped"]);
    expect(latest().stops).toBe(1);
  });

  it("a start waits for the stop under way", async () => {
    await supervisor.start();
    let exitFirst: (status: ExitStatus) => void = () => {};
    const first = latest();
    const slowStop = new Promise<ExitStatus>((resolve) => (exitFirst = resolve));
    (first.child as { stop: RunningProcess["stop"] }).stop = () => slowStop;
    const stopping = supervisor.stop();
    const restarting = supervisor.start();
    await flush();
    expect(processes).toHaveLength(1);
    exitFirst({ code: null, signal: "SIGTERM" });
    await stopping;
    await restarting;
    expect(processes).toHaveLength(2);
  });
});
