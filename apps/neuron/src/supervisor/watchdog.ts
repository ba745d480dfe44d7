import { spawn } from "node:child_process";

// Runs a harness command and ends it when the neuron that started it is gone, even after a
// SIGKILL that gave the neuron no chance to clean up. Usage (argv after the script):
//   <parent pid> <grace ms> <command> [args...]
// The watchdog and the harness share one process group, which the neuron signals as a whole;
// the watchdog itself waits for the harness to exit and then exits with its status.

const [parentArg, graceArg, command, ...args] = process.argv.slice(2);
const parentPid = Number(parentArg);
const graceMs = Number(graceArg);
if (!command || !Number.isInteger(parentPid) || !Number.isInteger(graceMs)) {
  process.stderr.write("usage: watchdog <parent pid> <grace ms> <command> [args...]\n");
  process.exit(2);
}

const child = spawn(command, args, { stdio: "inherit" });
child.on("error", (error) => {
  process.stderr.write(`cannot start ${command}: ${error.message}\n`);
  process.exit(127);
});
child.on("exit", (code, signal) => {
  process.exit(code ?? (signal ? 128 + (signal === "SIGKILL" ? 9 : 15) : 1));
});

// The neuron signals the whole group; the harness handles the signal, the watchdog waits.
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => {});

const parentGone = (): boolean => {
  if (process.ppid !== parentPid) return true;
  try {
    process.kill(parentPid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "EPERM";
  }
};

const signalGroup = (signal: NodeJS.Signals): void => {
  try {
    process.kill(-process.pid, signal);
  } catch {
    child.kill(signal);
  }
};

let ending = false;
setInterval(() => {
  if (ending || !parentGone()) return;
  ending = true;
  // The whole group (this watchdog leads it): the harness and anything it started, such as
  // vLLM's tensor-parallel workers. The watchdog itself ignores SIGTERM and waits.
  signalGroup("SIGTERM");
  setTimeout(() => signalGroup("SIGKILL"), graceMs).unref();
}, 500);
