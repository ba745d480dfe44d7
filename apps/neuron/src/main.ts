import { processLogOutput, stopOnSignals } from "@cortex/http-kit";
import { neuronExposure } from "@cortex/protocol";
import { pino } from "pino";
import { ConfigError, loadConfig, redactConfig } from "./config.js";
import { startNeuron } from "./neuron.js";

/** What the stop may take beyond the requests' grace and the harnesses' stop_grace_ms. */
const STOP_MARGIN_MS = 5000;

export interface MainOptions {
  readonly configFile: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Runs the neuron for the `serve` command: config from file and environment, stop on signals. */
export const main = async ({ configFile, env }: MainOptions): Promise<void> => {
  const config = loadConfig(configFile, env);
  // Open to the network without authentication only when the operator said so.
  const exposure = neuronExposure(config);
  if (exposure.kind === "refuse")
    throw new ConfigError("neuron", configFile ?? "environment", exposure.problems);

  // Logs never stall or stop the neuron: a log reader that has gone only ends the logging.
  const output = processLogOutput("neuron", (lines) =>
    log.warn({ dropped: lines }, "the log output fell behind; lines dropped"),
  );
  const log = pino(
    { name: `neuron:${config.name}`, level: env.NEURON_LOG_LEVEL ?? "info" },
    output,
  );
  log.info({ config: redactConfig(config) }, "starting");
  if (exposure.kind === "warn")
    log.warn({ listen: config.listen, open: exposure.open.map((s) => s.key) }, exposure.message);

  // The handlers go in before the start: a signal while starting waits for the start, then stops.
  const starting = startNeuron(config, log, env);
  stopOnSignals({
    // Requests in flight get shutdown_grace_ms (then are cut); then every harness stops, each
    // with stop_grace_ms between SIGTERM and SIGKILL.
    stop: async () => (await starting).stop(config.shutdown_grace_ms),
    cut: () => void starting.then((neuron) => neuron.stop(0)),
    deadlineMs: config.shutdown_grace_ms + config.stop_grace_ms + STOP_MARGIN_MS,
    flush: () => output.flushed(),
    log,
  });
  const neuron = await starting;
  // Whatever ends this process, no harness may outlive it.
  process.on("exit", () => neuron.killNow());
};
