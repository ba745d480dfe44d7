import { spawn } from "node:child_process";
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
  start(launch: Launch, env: Readonly<Record<string, string>>): RunningProcess;
}

const WATCHDOG = fileURLToPath(new URL("../../dist/supervisor/watchdog.js", import.meta.url));

const signalGroup = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone: nothing to stop.
  }
};

/**
 * Spawns each harness under the watchdog (which ends it if the neuron dies without cleaning
 * up), detached into its own process group so one signal reaches the harness and anything it
 * started. Never through a shell: command and args go to execve as they are.
 */
export const spawnRunner = (options: {
  parentPid: number;
  watchdogGraceMs: number;
}): ProcessRunner => ({
  start: (launch, env) => {
    const child = spawn(
      process.execPath,
      [
        WATCHDOG,
        String(options.parentPid),
        String(options.watchdogGraceMs),
        launch.command,
        ...launch.args,
      ],
      { detached: true, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    // Spawn failures (EAGAIN, EMFILE) are emitted as 'error' on the next tick: without a
    // listener they would crash the neuron.
    child.on("error", () => {});
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start ${launch.command}`);
    const output = new RingBuffer();
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => output.write(chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => output.write(chunk));
    let done = false;
    const exited = new Promise<ExitStatus>((resolve) => {
      child.once("exit", (code, signal) => {
        done = true;
        resolve({ code, signal });
      });
    });
    const stop = async (graceMs: number): Promise<ExitStatus> => {
      if (done) return exited;
      signalGroup(pid, "SIGTERM");
      const timer = setTimeout(() => signalGroup(pid, "SIGKILL"), graceMs);
      const status = await exited;
      clearTimeout(timer);
      // The harness may have left children of its own in the group.
      signalGroup(pid, "SIGKILL");
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
  },
});
