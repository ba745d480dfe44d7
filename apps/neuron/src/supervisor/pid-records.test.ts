import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HARNESS_MARK_VAR, type PidRecord, PidRecords, type ProcessTable } from "./pid-records.js";

// Reaping decisions against a scripted process table: what is killed, and what never is.

interface FakeProcess {
  readonly pid: number;
  readonly pgid: number;
  readonly env?: string[] | null;
  readonly cmdline?: string;
}

let dir: string;
let file: string;
let killed: number[];

const table = (processes: FakeProcess[]): ProcessTable => ({
  processes: () => processes.map(({ pid, pgid }) => ({ pid, pgid })),
  environment: (pid) => processes.find((p) => p.pid === pid)?.env ?? null,
  commandLine: (pid) => processes.find((p) => p.pid === pid)?.cmdline ?? null,
  killGroup: (pgid) => {
    if (!processes.some((p) => p.pgid === pgid)) throw new Error("ESRCH");
    killed.push(pgid);
  },
});

const record = (pid: number, model = `m${pid}`): PidRecord => ({
  pid,
  model,
  started_at: "2026-01-01T00:00:00.000Z",
});

const recordsWith = async (records: unknown, processes: FakeProcess[]) => {
  await writeFile(file, JSON.stringify(records));
  return new PidRecords(file, "supervisor/watchdog.js", table(processes));
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-pids-"));
  file = join(dir, "harnesses.json");
  killed = [];
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("reapLeftovers", () => {
  it("marks what this neuron starts with its records file", () => {
    expect(new PidRecords(file, "w", table([])).mark).toEqual({ [HARNESS_MARK_VAR]: file });
  });

  it("ends a group whose watchdog died but whose harness carries our mark", async () => {
    const mark = `${HARNESS_MARK_VAR}=${file}`;
    const pids = await recordsWith(
      [record(500)],
      [{ pid: 501, pgid: 500, env: ["PATH=/bin", mark], cmdline: "llama-server --port 1" }],
    );
    expect(pids.reapLeftovers()).toEqual([record(500)]);
    expect(killed).toEqual([500]);
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual([]);
  });

  it("ends a group whose live leader is our watchdog, marked or from an older neuron", async () => {
    const pids = await recordsWith(
      [record(600), record(700)],
      [
        { pid: 600, pgid: 600, env: [`${HARNESS_MARK_VAR}=${file}`], cmdline: "node x" },
        { pid: 700, pgid: 700, env: null, cmdline: "node /a/dist/supervisor/watchdog.js 1 2" },
      ],
    );
    expect(pids.reapLeftovers().map((r) => r.pid)).toEqual([600, 700]);
    expect(killed).toEqual([600, 700]);
  });

  it.each<[string, FakeProcess[]]>([
    ["nothing is left", []],
    [
      "the pid now leads someone else's group",
      [{ pid: 800, pgid: 800, env: ["PATH=/bin"], cmdline: "postgres" }],
    ],
    [
      "the group id was reused and its leader is gone",
      [{ pid: 801, pgid: 800, env: ["HOME=/root"], cmdline: "sleep 100" }],
    ],
    [
      "another neuron's harness (another records file) has the group",
      [{ pid: 801, pgid: 800, env: [`${HARNESS_MARK_VAR}=/elsewhere/harnesses.json`] }],
    ],
    [
      "a member mentions the watchdog but does not lead the group",
      [{ pid: 801, pgid: 800, env: null, cmdline: "vim supervisor/watchdog.js" }],
    ],
    [
      "the environment cannot be read (another user's process)",
      [{ pid: 801, pgid: 800, env: null, cmdline: "sleep 100" }],
    ],
  ])("never kills a group when %s", async (_what, processes) => {
    const pids = await recordsWith([record(800)], processes);
    expect(pids.reapLeftovers()).toEqual([]);
    expect(killed).toEqual([]);
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual([]);
  });

  it("ignores records that could name every process (pid 0, 1, negative, not a number)", async () => {
    const everyone: FakeProcess[] = [0, 1, -1].map((pgid) => ({
      pid: 900 + pgid,
      pgid,
      env: [`${HARNESS_MARK_VAR}=${file}`],
    }));
    const pids = await recordsWith(
      [record(0), record(1), record(-1), { pid: "1", model: "x" }, { model: "y" }, null],
      everyone,
    );
    expect(pids.reapLeftovers()).toEqual([]);
    expect(killed).toEqual([]);
  });

  it("starts clean from a missing or unreadable file", async () => {
    expect(new PidRecords(join(dir, "none.json"), "w", table([])).reapLeftovers()).toEqual([]);
    await writeFile(file, "{not json");
    expect(new PidRecords(file, "w", table([])).reapLeftovers()).toEqual([]);
  });
});
