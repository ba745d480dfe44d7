import { processLogOutput, stopOnSignals } from "@cortex/http-kit";
import { cortexExposure } from "@cortex/protocol";
import { pino } from "pino";
import { ConfigError, loadConfig, redactConfig } from "./config.js";
import { startCortex } from "./cortex.js";

/** What the stop may take beyond `shutdown_grace_ms` (polls, the state's last flush) before exiting anyway. */
const STOP_MARGIN_MS = 5000;

export interface MainOptions {
  readonly configFile: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Runs cortex for the `serve` command: config from file and environment, stop on signals. */
export const main = async ({ configFile, env }: MainOptions): Promise<void> => {
  const config = loadConfig(configFile, env);
  // Open to the network without authentication only when the operator said so.
  const exposure = cortexExposure(config);
  if (exposure.kind === "refuse")
    throw new ConfigError("cortex", configFile ?? "environment", exposure.problems);

  // Logs never stall or stop cortex: a log reader that has gone only ends the logging.
  const output = processLogOutput("cortex", (lines) =>
    log.warn({ dropped: lines }, "the log output fell behind; lines dropped"),
  );
  const log = pino({ name: "cortex", level: env.CORTEX_LOG_LEVEL ?? "info" }, output);
  log.info({ config: redactConfig(config) }, "starting");
  if (exposure.kind === "warn")
    log.warn({ listen: config.listen, open: exposure.open.map((s) => s.key) }, exposure.message);

  // The handlers go in before the start: a signal while starting waits for the start, then stops.
  const starting = startCortex(config, log, { file: configFile, env });
  stopOnSignals({
    stop: async () => (await starting).stop(config.shutdown_grace_ms),
    cut: () => void starting.then((cortex) => cortex.stop(0)),
    deadlineMs: config.shutdown_grace_ms + STOP_MARGIN_MS,
    flush: () => output.flushed(),
    log,
  });
  // SIGHUP reloads cortex.yaml's `neurons:` list (the file is watched too); it never stops cortex.
  process.on("SIGHUP", () => {
    void starting.then((cortex) => {
      log.info({ file: configFile ?? null }, "SIGHUP: reloading the config");
      if (configFile === undefined)
        log.warn({}, "no config file to reload (config from environment)");
      else cortex.reloadConfig();
    });
  });
  await starting;
};
