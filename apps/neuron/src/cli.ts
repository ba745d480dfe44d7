#!/usr/bin/env node
import { parseArgs } from "node:util";
import { ConfigError } from "./config.js";
import { main } from "./main.js";

const USAGE = `usage: neuron serve [--config neuron.yaml]

Every key of neuron.yaml can also come from the environment (NEURON_NAME, NEURON_LISTEN,
NEURON_TOKEN, …); the environment wins. NEURON_CONFIG names the file when --config is absent.`;

const { positionals, values } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } },
});

if (values.help || positionals[0] !== "serve") {
  console.error(USAGE);
  process.exit(values.help ? 0 : 2);
}

main({ configFile: values.config ?? process.env.NEURON_CONFIG, env: process.env }).catch(
  (error: unknown) => {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exit(error instanceof ConfigError ? 2 : 1);
  },
);
