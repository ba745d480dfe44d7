import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Launch } from "../harnesses/definitions.js";
import { RingBuffer } from "./ring-buffer.js";

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** One harness process (with its watchdog), in a process group of its own. */
export interface RunningProcess {
  /** Also the process group id. */
  readonly pid: number;
  readonly output: RingBuffer;
  /** Resolves once, when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  readonly hasExited: () => boolean;
  /** SIGTERM to the group, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs: number): Promise<ExitStatus>;
  /** SIGKILL to the group at once, synchronously (safe in an exit handler). */
  killNow(): void;
}

/** Starts processes; tests substitute their own to script crashes and hangs. */
export interface ProcessRunner {
  /** `env` is the harness's whole environment: nothing of the neuron's own is added. */
  start(launch: Launch, env: Readonly<Record<string, string>>): RunningProcess;
}

/** Each harness's working directory is a fresh `harness-XXXXXX` folder under the runner's. */
const WORK_PREFIX = "harness-";

const WATCHDOG = fileURLToPath(new URL("../../dist/supervisor/watchdog.js", import.meta.url));

const signalGroup = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone: nothing to stop.
  }
};

export interface RunnerOptions {
  readonly parentPid: number;
  readonly watchdogGraceMs: number;
  /**
   * Where each harness gets an empty working directory of its own (`harness-XXXXXX`, mode 0700,
   * removed when it exits); leftovers of an earlier run are removed when the runner is made.
   * Default: the system's temporary directory, with no clean-up of leftovers.
   */
  readonly workDir?: string;
  /** Added to every harness's environment and its watchdog's (the pid records' marker). */
  readonly mark?: Readonly<Record<string, string>>;
}

/**
 * Spawns each harness under the watchdog (which ends it if the neuron dies without cleaning
 * up), detached into its own process group so one signal reaches the harness and anything it
 * started. Never through a shell: command and args go to execve as they are.
 *
 * The environment is exactly the one given (see harnesses/environment.ts), never the neuron's.
 * The working directory is empty and the harness's own: a repository id such as `owner/repo`
 * (an `hf:owner/repo` source, which vLLM reads as a local folder whenever one by that name
 * exists) can then only mean the repository, never a folder the neuron's working directory
 * happens to hold. A relative program path (`./bin/server`) is resolved against the neuron's
 * working directory first, as it always was.
 *
 * When the watchdog exits, for any reason (a SIGKILL included), the whole group is SIGKILLed:
 * the harness must not outlive its watchdog. kill(-pgid) reaches the members while any lives,
 * even once the leader is gone, and Linux never reuses a pid that is still a group's id.
 */
export const spawnRunner = (options: RunnerOptions): ProcessRunner => {
  const workRoot = options.workDir ?? tmpdir();
  if (options.workDir !== undefined) {
    mkdirSync(workRoot, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(workRoot)) {
      if (name.startsWith(WORK_PREFIX))
        rmSync(join(workRoot, name), { recursive: true, force: true });
    }
  }
  return { start: (launch, env) => start(options, workRoot, launch, env) };
};

const start = (
  options: RunnerOptions,
  workRoot: string,
  launch: Launch,
  env: Readonly<Record<string, string>>,
): RunningProcess => {
  const cwd = mkdtempSync(join(workRoot, WORK_PREFIX));
  const removeCwd = () => void rm(cwd, { recursive: true, force: true }).catch(() => {});
  const command =
    launch.command.includes("/") && !isAbsolute(launch.command)
      ? resolve(launch.command)
      : launch.command;
  const child = spawn(
    process.execPath,
    [WATCHDOG, String(options.parentPid), String(options.watchdogGraceMs), command, ...launch.args],
    { detached: true, cwd, env: { ...env, ...options.mark }, stdio: ["ignore", "pipe", "pipe"] },
  );
  // Spawn failures (EAGAIN, EMFILE) are emitted as 'error' on the next tick: without a
  // listener they would crash the neuron.
  child.on("error", () => {});
  const pid = child.pid;
  if (pid === undefined) {
    removeCwd();
    throw new Error(`could not start ${launch.command}`);
  }
  const output = new RingBuffer();
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => output.write(chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => output.write(chunk));
  let done = false;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      // A watchdog that died (SIGKILL, the OOM killer) left its harness running: end the group
      // before anyone hears of the exit, so a restart never runs beside a leftover.
      signalGroup(pid, "SIGKILL");
      removeCwd();
      resolve({ code, signal });
    });
  });
  const stop = async (graceMs: number): Promise<ExitStatus> => {
    if (done) return exited;
    signalGroup(pid, "SIGTERM");
    const timer = setTimeout(() => signalGroup(pid, "SIGKILL"), graceMs);
    const status = await exited;
    clearTimeout(timer);
    return status;
  };
  return {
    pid,
    output,
    exited,
    hasExited: () => done,
    stop,
    killNow: () => signalGroup(pid, "SIGKILL"),
  };
};
