import type { Launch } from "../harnesses/definitions.js";
import type { ExitStatus, RunningProcess } from "./process-runner.js";
import { RingBuffer } from "./ring-buffer.js";

// Scripted harness processes for supervisor tests: nothing is started, the test decides when
// each one exits.

export const LAUNCH: Launch = {
  command: "fake-harness",
  args: [],
  env: {},
  inherited: {},
  readyPath: "/health",
};

export interface Scripted {
  readonly child: RunningProcess;
  /** The process exits by itself (a crash). */
  crash(code?: number): void;
  stops: number;
}

/** A process whose exit the test decides. */
export const scripted = (pid: number): Scripted => {
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
