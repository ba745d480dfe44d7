#!/usr/bin/env node
import { runServeCommand } from "@cortex/config-file";
import { main } from "./main.js";

const USAGE = `usage: neuron serve [--config neuron.yaml]

Every key of neuron.yaml can also come from the environment (NEURON_NAME, NEURON_LISTEN,
NEURON_TOKEN, …); the environment wins. NEURON_CONFIG names the file when --config is absent.`;

runServeCommand({
  usage: USAGE,
  configVar: "NEURON_CONFIG",
  argv: process.argv.slice(2),
  env: process.env,
  main,
});
