import type { Server } from "node:http";
import { parseWorkerArgs, USAGE, type WorkerArgs } from "./args.js";
import { InFlight } from "./connection.js";
import { type Engine, loadEngine } from "./engine.js";
import { createWorkerApp, type WorkerPhase } from "./server.js";

// The harness worker: one process per loaded model, started by the neuron. It listens at once
// (health answers 503 while the model loads), serves the OpenAI API on loopback, and ends with
// its parent: a neuron that dies, even by SIGKILL, leaves no model holding memory.

const log = (message: string): void => {
  process.stderr.write(`[harness-llamacpp ${process.pid}] ${message}\n`);
};

/** How often the parent is checked; the worker exits within about this long of its death. */
const PARENT_CHECK_MS = 500;

const parentAlive = (pid: number): boolean => {
  if (pid <= 1) return true; // started by init or a test with no parent to watch
  if (process.ppid !== pid) return false; // re-parented: the original parent is gone
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
};

const run = async (args: WorkerArgs): Promise<void> => {
  let phase: WorkerPhase = "loading";
  let engine: Engine | undefined;
  const inflight = new InFlight();
  const app = createWorkerApp(
    {
      model: args.alias,
      created: Math.floor(Date.now() / 1000),
      phase: () => phase,
      engine: () => engine,
    },
    inflight,
  );

  const server: Server = await new Promise((resolve, reject) => {
    const listening = app.listen(args.port, args.host, () => resolve(listening));
    listening.once("error", reject);
  });
  server.keepAliveTimeout = 65_000;
  const address = server.address();
  log(
    `listening on ${args.host}:${typeof address === "object" && address ? address.port : args.port}, loading ${args.model}`,
  );

  let stopping: Promise<void> | undefined;
  const stop = (reason: string, graceMs: number): Promise<void> => {
    stopping ??= (async () => {
      log(`stopping (${reason}); ${inflight.size} request(s) in flight`);
      phase = "stopping";
      server.close();
      server.closeIdleConnections();
      const grace = new Promise<"timeout">((resolve) =>
        setTimeout(() => resolve("timeout"), graceMs).unref(),
      );
      if ((await Promise.race([inflight.idle(), grace])) === "timeout") {
        inflight.abortAll("the model is shutting down");
        await inflight.idle();
      }
      server.closeAllConnections();
      await engine?.dispose();
      log("stopped");
      process.exit(0);
    })();
    return stopping;
  };

  // A second signal does not cut the grace period short: the first shutdown is already running.
  process.on("SIGTERM", () => void stop("SIGTERM", args.graceMs));
  process.on("SIGINT", () => void stop("SIGINT", args.graceMs));
  setInterval(() => {
    if (!parentAlive(args.parentPid)) void stop(`parent ${args.parentPid} is gone`, 0);
  }, PARENT_CHECK_MS).unref();

  const started = Date.now();
  try {
    engine = await loadEngine({
      modelPath: args.model,
      gpu: args.gpu,
      parallel: args.parallel,
      contextSize: args.ctxSize,
      threads: args.threads,
      batchSize: args.batchSize,
      gpuLayers: args.gpuLayers,
      flashAttention: args.flashAttention,
      prefixCache: args.prefixCache,
    });
  } catch (error) {
    log(`failed to load ${args.model}: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
  if (stopping) return;
  phase = "ready";
  log(
    `ready in ${Date.now() - started} ms: ${args.parallel} slot(s) × ${engine.contextSize} tokens, ${engine.gpu === false ? "CPU" : `GPU (${engine.gpu})`}, ${engine.threads} thread(s)${args.prefixCache ? "" : ", prefix cache off"}`,
  );
};

let args: WorkerArgs;
try {
  args = parseWorkerArgs(process.argv.slice(2), process.ppid);
} catch (error) {
  log(error instanceof Error ? error.message : String(error));
  log(USAGE);
  process.exit(2);
}
run(args).catch((error: unknown) => {
  log(`fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
