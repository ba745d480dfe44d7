import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { environOf, waitFor } from "@cortex/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Launch } from "../harnesses/definitions.js";
import { HARNESS_MARK_VAR, PidRecords, procTable } from "./pid-records.js";
import { type RunningProcess, spawnRunner } from "./process-runner.js";

// The supervisor against real processes: a harness never outlives its watchdog, it sees only
// the environment it was given and an empty working directory of its own, and a restarted
// neuron reaps what a dead neuron and a dead watchdog left behind, and nothing else.

let dir: string;
const started: RunningProcess[] = [];
const strays: ChildProcess[] = [];

/** Live (not zombie) processes of a group. */
const membersOf = (pgid: number): number[] =>
  procTable
    .processes()
    .filter((p) => p.pgid === pgid)
    .map((p) => p.pid);

/** A harness that starts a child of its own and waits: `sh`, then `sleep`, in one group. */
const SHELL_HARNESS: Launch = {
  command: "/bin/sh",
  args: ["-c", "sleep 300 & wait"],
  env: {},
  inherited: {},
  readyPath: "/health",
};

const harnessOf = (child: RunningProcess): number => {
  const pid = membersOf(child.pid).find((member) => member !== child.pid);
  if (pid === undefined) throw new Error("the harness has not started");
  return pid;
};

beforeEach(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "neuron-supervisor-")));
});

afterEach(async () => {
  for (const child of started.splice(0)) child.killNow();
  for (const stray of strays.splice(0)) {
    try {
      if (stray.pid) process.kill(-stray.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  await rm(dir, { recursive: true, force: true });
});

describe("spawnRunner", () => {
  it("ends the harness and everything it started when its watchdog is SIGKILLed", async () => {
    const runner = spawnRunner({ parentPid: process.pid, watchdogGraceMs: 500 });
    const child = runner.start(SHELL_HARNESS, { PATH: "/usr/bin:/bin" });
    started.push(child);
    await waitFor("the harness and its child", () => membersOf(child.pid).length === 3, 10_000);
    const harness = harnessOf(child);

    process.kill(child.pid, "SIGKILL");
    expect(await child.exited).toEqual({ code: null, signal: "SIGKILL" });
    await waitFor("the orphaned group to end", () => membersOf(child.pid).length === 0, 5000);
    expect(procTable.processes().some((p) => p.pid === harness)).toBe(false);
  });

  it("gives the harness and its watchdog exactly the environment it is told, never the neuron's", async () => {
    process.env.NEURON_TOKEN_FOR_TEST = "neuron-secret";
    try {
      const runner = spawnRunner({
        parentPid: process.pid,
        watchdogGraceMs: 500,
        mark: { [HARNESS_MARK_VAR]: "/state/harnesses.json" },
      });
      const child = runner.start(SHELL_HARNESS, { PATH: "/usr/bin:/bin", WANTED: "yes" });
      started.push(child);
      await waitFor("the harness", () => membersOf(child.pid).length === 3, 10_000);
      const expected = {
        PATH: "/usr/bin:/bin",
        WANTED: "yes",
        [HARNESS_MARK_VAR]: "/state/harnesses.json",
      };
      expect(environOf(harnessOf(child))).toEqual(expected);
      expect(environOf(child.pid)).toEqual(expected);
    } finally {
      delete process.env.NEURON_TOKEN_FOR_TEST;
    }
  });

  it("runs each harness in an empty directory of its own, removed when it exits", async () => {
    const work = join(dir, "run");
    mkdirSync(join(work, "harness-leftover", "Qwen", "Qwen3-8B"), { recursive: true });
    writeFileSync(join(dir, "keep"), "");
    const runner = spawnRunner({ parentPid: process.pid, watchdogGraceMs: 500, workDir: work });
    // Left by a run that crashed: its harnesses were reaped before the runner was made.
    expect(readdirSync(work)).toEqual([]);

    const a = runner.start(SHELL_HARNESS, { PATH: "/usr/bin:/bin" });
    const b = runner.start(SHELL_HARNESS, { PATH: "/usr/bin:/bin" });
    started.push(a, b);
    await waitFor("both harnesses", () => membersOf(a.pid).length + membersOf(b.pid).length === 6);
    const cwdA = readlinkSync(`/proc/${harnessOf(a)}/cwd`);
    const cwdB = readlinkSync(`/proc/${harnessOf(b)}/cwd`);
    expect(relative(work, cwdA)).toMatch(/^harness-\w+$/);
    expect(cwdB).not.toBe(cwdA);
    expect(readdirSync(cwdA)).toEqual([]);

    await a.stop(500);
    await waitFor("its directory to go", () => !existsSync(cwdA), 5000);
    expect(existsSync(cwdB)).toBe(true);
    expect(existsSync(join(dir, "keep"))).toBe(true);
  });

  it("finds a relative program path from the neuron's working directory, as before", async () => {
    const script = join(dir, "serve.sh");
    writeFileSync(script, "#!/bin/sh\nexec sleep 300\n", { mode: 0o755 });
    const runner = spawnRunner({
      parentPid: process.pid,
      watchdogGraceMs: 500,
      workDir: join(dir, "run"),
    });
    const child = runner.start(
      { ...SHELL_HARNESS, command: `./${relative(process.cwd(), script)}`, args: [] },
      { PATH: "/usr/bin:/bin" },
    );
    started.push(child);
    await waitFor("the harness", () => membersOf(child.pid).length === 2, 10_000);
    expect(child.hasExited()).toBe(false);
  });
});

describe("reaping after the neuron and the watchdog both died", () => {
  /** A detached group whose leader exits at once, leaving a `sleep` in the group. */
  const orphanGroup = async (env: Record<string, string>): Promise<number> => {
    const leader = spawn("/bin/sh", ["-c", "sleep 300 & exit 0"], {
      detached: true,
      stdio: "ignore",
      env: { PATH: "/usr/bin:/bin", ...env },
    });
    strays.push(leader);
    await once(leader, "exit");
    const pgid = leader.pid as number;
    await waitFor("the orphan", () => membersOf(pgid).length === 1, 5000);
    return pgid;
  };

  it("kills the orphans of our groups and leaves a reused group alone", async () => {
    const file = join(dir, "harnesses.json");
    const ours = await orphanGroup({ [HARNESS_MARK_VAR]: file });
    const theirs = await orphanGroup({ [HARNESS_MARK_VAR]: join(dir, "other.json") });
    const unmarked = await orphanGroup({});
    writeFileSync(
      file,
      JSON.stringify(
        [ours, theirs, unmarked].map((pid) => ({ pid, model: `m${pid}`, started_at: "" })),
      ),
    );

    const reaped = new PidRecords(file, "supervisor/watchdog.js").reapLeftovers();
    expect(reaped.map((record) => record.pid)).toEqual([ours]);
    await waitFor("our orphan to end", () => membersOf(ours).length === 0, 5000);
    expect(membersOf(theirs)).toHaveLength(1);
    expect(membersOf(unmarked)).toHaveLength(1);
  });
});
