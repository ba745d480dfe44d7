import { pino } from "pino";
import { loadConfig, redactConfig } from "./config.js";
import { startCortex } from "./cortex.js";

export interface MainOptions {
  readonly configFile: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Runs cortex for the `serve` command: config from file and environment, stop on signals. */
export const main = async ({ configFile, env }: MainOptions): Promise<void> => {
  const config = loadConfig(configFile, env);
  const log = pino({ name: "cortex", level: env.CORTEX_LOG_LEVEL ?? "info" });
  log.info({ config: redactConfig(config) }, "starting");
  const cortex = await startCortex(config, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    void cortex.stop().finally(() => {
      log.info({}, "stopped");
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
};
