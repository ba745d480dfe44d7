#!/usr/bin/env node
import { runCtl } from "./program.js";

// The composition root of cortexctl: the process's environment, streams and Ctrl-C.

// Ctrl-C ends `events --follow` and the wait of `load` cleanly; anything still running a
// moment later (a connect to a host that does not answer) is cut with the usual 130.
const stop = new AbortController();
const interrupted = (): void => {
  stop.abort();
  setTimeout(() => process.exit(130), 1000).unref();
};
process.once("SIGINT", interrupted);
process.once("SIGTERM", interrupted);

const code = await runCtl(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  stop: stop.signal,
  now: Date.now,
});
// Set rather than exit: stdout piped into `head` or `jq` gets everything written first.
process.exitCode = code;
