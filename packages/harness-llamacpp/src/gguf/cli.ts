#!/usr/bin/env node
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { type TinyModelVariant, writeTinyModel } from "./tiny-model.js";

const USAGE =
  "usage: node cli.js --out <file.gguf> [--seed N] [--variant chat|embedding]\n" +
  "Writes a tiny llama-architecture GGUF model with random weights: real, loadable, and its output is noise.";

const main = async (): Promise<number> => {
  let values: { out?: string; seed?: string; variant?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        out: { type: "string" },
        seed: { type: "string", default: "1" },
        variant: { type: "string", default: "chat" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const seed = Number(values.seed);
  if (!values.out || !Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    process.stderr.write(
      `${values.out ? "--seed must be an integer from 0 to 4294967295" : "--out is required"}\n${USAGE}\n`,
    );
    return 2;
  }
  if (values.variant !== "chat" && values.variant !== "embedding") {
    process.stderr.write(
      `--variant must be "chat" or "embedding", got "${values.variant}"\n${USAGE}\n`,
    );
    return 2;
  }
  const out = resolve(values.out);
  await writeTinyModel(out, { seed, variant: values.variant as TinyModelVariant });
  process.stdout.write(`${out}\n`);
  return 0;
};

process.exitCode = await main();
