import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { NeuronError } from "../errors.js";
import { systemTimers } from "../timers.js";
import { LAUNCH, type Scripted, scripted } from "./harness-supervisor.fixtures.js";
import {
  type HarnessJob,
  type HarnessState,
  HarnessSupervisor,
  RESTART_DELAYS_MS,
  STABLE_AFTER_MS,
  type SupervisorDeps,
  type SupervisorSettings,
} from "./harness-supervisor.js";
import type { ExitStatus, RunningProcess } from "./process-runner.js";

// The supervisor with a scripted process runner and fake timers: backoff, the stable reset, and
// stops at any moment, exact to the millisecond. No process is started and nothing sleeps.

let processes: Scripted[];
let states: HarnessState[];
/** Whether the harness started last answers its readiness probe. */
let ready: boolean;
let supervisor: HarnessSupervisor;
/** Exits the supervisor reported through onExit. */
let exits: number;

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
  probe?: SupervisorDeps["probe"];
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
      onExit: () => {
        exits += 1;
      },
      now: () => Date.now(),
      timers: systemTimers,
    },
    {
      stopGraceMs: 100,
      readyPollMs: 200,
      restartDelaysMs: RESTART_DELAYS_MS,
      stableAfterMs: STABLE_AFTER_MS,
      healthIntervalMs: 5000,
      unhealthyAfterFailures: 3,
      ...settings,
    },
  );

beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse("2025-01-01T00:00:00Z") });
  processes = [];
  states = [];
  exits = 0;
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

  it("reports every exit (a failed start, a crash, a stop) before a stop resolves", async () => {
    ready = false;
    const failing = supervisor.start().catch(() => {});
    await flush();
    latest().crash(1);
    await failing;
    expect(exits).toBe(1);
    ready = true;
    await supervisor.start();
    await crash();
    expect(exits).toBe(2);
    await vi.advanceTimersByTimeAsync(1000);
    await flush();
    const stopping = supervisor.stop().then(() => exits);
    expect(await stopping).toBe(3);
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

describe("HarnessSupervisor liveness", () => {
  /** Liveness probes (those with a timeout signal; readiness polls pass none), by URL. */
  let probes: string[];
  const watched = (settings: Partial<SupervisorSettings> = {}) =>
    supervisorWith({
      probe: async (url: string, signal?: AbortSignal) => {
        if (signal) probes.push(url);
        return ready;
      },
      settings,
    });

  beforeEach(() => {
    probes = [];
  });

  it("kills a harness that fails unhealthy_after_failures probes, then restarts it with the backoff", async () => {
    const watchedSupervisor = watched();
    await watchedSupervisor.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(probes).toEqual(["http://127.0.0.1:40000/health", "http://127.0.0.1:40000/health"]);
    ready = false;
    await vi.advanceTimersByTimeAsync(14_999);
    expect(last()).toMatchObject({ kind: "ready" });
    await vi.advanceTimersByTimeAsync(1);
    expect(await processes[0]?.child.exited).toEqual({ code: null, signal: "SIGKILL" });
    expect(last()).toMatchObject({ kind: "recovering", attempt: 1, inMs: 1000 });
    expect(last()).toHaveProperty(
      "reason",
      expect.stringMatching(
        /^harness stopped answering \/health: 3 probes in a row failed \(every 5000 ms; the last: no 2xx answer\); killed it; last output:\nharness 1000 says hello/,
      ),
    );
    expect(watchedSupervisor.url).toBeNull();
    // No probe while recovering; the restart is probed again once ready.
    const probed = probes.length;
    ready = true;
    await vi.advanceTimersByTimeAsync(1000);
    await flush();
    expect(processes).toHaveLength(2);
    expect(last()).toMatchObject({ kind: "ready", url: "http://127.0.0.1:40001" });
    expect(probes).toHaveLength(probed);
    await vi.advanceTimersByTimeAsync(5000);
    expect(probes.at(-1)).toBe("http://127.0.0.1:40001/health");
    expect(kinds()).toEqual(["starting", "ready", "recovering", "starting", "ready"]);
  });

  it("does not probe a harness that streams to a client, and kills it once the stream stops", async () => {
    const watchedSupervisor = watched({ healthIntervalMs: 1000 });
    await watchedSupervisor.start();
    ready = false;
    for (let i = 0; i < 20; i += 1) {
      watchedSupervisor.sawTraffic();
      await vi.advanceTimersByTimeAsync(500);
    }
    expect(probes).toEqual([]);
    expect(last()).toMatchObject({ kind: "ready" });
    // The last bytes flowed at 9.5 s: the tick at 10 s still counts them, then 3 probes fail.
    await vi.advanceTimersByTimeAsync(2999);
    expect(last()).toMatchObject({ kind: "ready" });
    await vi.advanceTimersByTimeAsync(1);
    expect(probes).toHaveLength(3);
    expect(last()).toMatchObject({ kind: "recovering" });
  });

  it("restarts only once the killed process has exited", async () => {
    await watched({ healthIntervalMs: 1000, unhealthyAfterFailures: 1 }).start();
    const first = latest();
    let exitFirst: () => void = () => {};
    (first.child as { killNow: () => void }).killNow = () => {
      exitFirst = () => first.crash(137);
    };
    ready = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(last()).toMatchObject({ kind: "recovering" });
    ready = true;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(processes).toHaveLength(1);
    exitFirst();
    await flush();
    expect(processes).toHaveLength(2);
    expect(last()).toMatchObject({ kind: "ready" });
  });

  it("stops probing when the harness stops, and never with an interval of 0", async () => {
    const watchedSupervisor = watched();
    await watchedSupervisor.start();
    await vi.advanceTimersByTimeAsync(5000);
    expect(probes).toHaveLength(1);
    await watchedSupervisor.stop();
    ready = false;
    await vi.advanceTimersByTimeAsync(60_000);
    ready = true;
    const off = watched({ healthIntervalMs: 0 });
    await off.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(probes).toHaveLength(1);
    expect(last()).toMatchObject({ kind: "ready" });
  });
});
