#!/usr/bin/env node
import { parseArgs } from "node:util";
import { ConfigError } from "./config.js";
import { main } from "./main.js";

const USAGE = `usage: cortex serve [--config cortex.yaml]

Every key of cortex.yaml can also come from the environment (CORTEX_LISTEN, CORTEX_ADMIN_TOKEN,
CORTEX_API_KEYS='["k1"]', …); the environment wins. CORTEX_CONFIG names the file when --config is absent.`;

const { positionals, values } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } },
});

if (values.help || positionals[0] !== "serve") {
  console.error(USAGE);
  process.exit(values.help ? 0 : 2);
}

main({ configFile: values.config ?? process.env.CORTEX_CONFIG, env: process.env }).catch(
  (error: unknown) => {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exit(error instanceof ConfigError ? 2 : 1);
  },
);
