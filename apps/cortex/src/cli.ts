#!/usr/bin/env node
import { runServeCommand } from "@cortex/config-file";
import { main } from "./main.js";

const USAGE = `usage: cortex serve [--config cortex.yaml]

Every key of cortex.yaml can also come from the environment (CORTEX_LISTEN, CORTEX_ADMIN_TOKEN,
CORTEX_API_KEYS='["k1"]', …); the environment wins. CORTEX_CONFIG names the file when --config is absent.`;

runServeCommand({
  usage: USAGE,
  configVar: "CORTEX_CONFIG",
  argv: process.argv.slice(2),
  env: process.env,
  main,
});
