#!/usr/bin/env node
// `pnpm demo`: generates the tiny demo model if it is missing, starts one neuron and cortex
// (demo/neuron.yaml, demo/cortex.yaml, catalogue/), waits until cortex sees the neuron, and
// prints how to call it. Ctrl-C stops both; the neuron stops its harnesses before it exits.
//
// Overrides for tests and busy machines: NEURON_* and CORTEX_* variables (as for the apps
// themselves, e.g. CORTEX_LISTEN=127.0.0.1:4000) and DEMO_MODELS_DIR. The demo's cortex has no
// keys, so it starts only on a loopback address (or with CORTEX_ALLOW_UNAUTHENTICATED=true).
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const env = { ...process.env };
const modelsDir = resolve(root, env.DEMO_MODELS_DIR ?? env.NEURON_MODELS_DIR ?? "data/models");
env.NEURON_MODELS_DIR = modelsDir;

const model = join(modelsDir, "tiny.gguf");
if (!existsSync(model)) {
  execFileSync(
    process.execPath,
    [join(root, "packages/harness-llamacpp/dist/gguf/cli.js"), "--out", model, "--seed", "1"],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  console.log(`demo: generated the tiny model at ${model}`);
}

const children = [];
let stopping = false;

const start = (name, cli, config) => {
  const child = spawn(
    process.execPath,
    [join(root, cli), "serve", "--config", join(root, config)],
    {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let buffered = "";
  const listening = new Promise((resolveUrl, reject) => {
    child.stdout.on("data", (chunk) => {
      buffered += chunk;
      const match = /"url":"(http:\/\/[^"]+)","msg":"listening"/.exec(buffered);
      if (match) resolveUrl(match[1]);
      if (buffered.length > 65_536) buffered = buffered.slice(-4096);
    });
    child.once("exit", (code) =>
      reject(new Error(`${name} exited with code ${code} while starting`)),
    );
  });
  // Logs stay quiet unless asked for: JSON lines are for machines.
  if (env.DEMO_LOGS === "1") child.stdout.pipe(process.stdout);
  child.once("exit", (code, signal) => {
    if (stopping) return;
    // Ctrl-C in a terminal signals the whole process group: a child may have stopped cleanly
    // (code 0) on it before this process's own SIGINT handler ran.
    if (code === 0) {
      void stop(0);
      return;
    }
    console.error(
      `demo: ${name} stopped unexpectedly (${signal ?? `code ${code}`}); stopping the demo`,
    );
    void stop(1);
  });
  children.push({ name, child });
  return listening;
};

const exited = (child) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolveExit) => child.once("exit", resolveExit));

/**
 * Stops cortex first (no new requests), then the neuron, which stops its harnesses. Exits with
 * `code` when every child stopped cleanly (exit 0, or ended by SIGINT/SIGTERM), else 1: a clean
 * Ctrl-C exits 0, so `pnpm demo` ends without an error.
 */
const stop = async (code) => {
  if (stopping) return;
  stopping = true;
  let clean = true;
  for (const { name, child } of [...children].reverse()) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    let forced = false;
    const force = setTimeout(() => {
      forced = true;
      child.kill("SIGKILL");
    }, 15_000);
    await exited(child);
    clearTimeout(force);
    const ended = child.signalCode === "SIGINT" || child.signalCode === "SIGTERM";
    if (forced || !(child.exitCode === 0 || ended)) {
      clean = false;
      console.error(
        `demo: ${name} did not stop cleanly (${forced ? "killed after 15 s" : (child.signalCode ?? `code ${child.exitCode}`)})`,
      );
    }
  }
  process.exit(clean ? code : 1);
};

process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

try {
  await start("neuron", "apps/neuron/dist/cli.js", "demo/neuron.yaml");
  const cortex = await start("cortex", "apps/cortex/dist/cli.js", "demo/cortex.yaml");
  // Ready once cortex has polled the neuron and would route to it.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const fleet = await fetch(`${cortex}/api/fleet`)
      .then((res) => res.json())
      .catch(() => null);
    if (fleet?.nodes?.every((node) => node.healthy)) break;
    if (Date.now() > deadline) throw new Error("cortex did not see the neuron within 60 s");
    await new Promise((resolveWait) => setTimeout(resolveWait, 200));
  }
  console.log(`
Cortex is ready at ${cortex}  (one neuron, CPU, the built-in llama.cpp harness)

The demo model "tiny" is not loaded yet: the first request loads it (a cold load), the next
ones are warm. It is a real model with random weights, so its answers are noise.

  curl ${cortex}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model": "tiny", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 32}'

  curl ${cortex}/v1/models
  curl ${cortex}/api/fleet            # nodes, devices, models
  curl -N ${cortex}/api/events        # live events; leave it open while you send requests

The dashboard (fleet, models with Load and Unload, traffic, events; no sign-in here, as the
demo's cortex has no admin token):

  ${cortex}/ui/

The operator's command line, cortexctl, from this folder in another terminal:

  npx -y pnpm@10.34.9 cortexctl --url ${cortex} status
  npx -y pnpm@10.34.9 cortexctl --url ${cortex} events --follow

With the openai package (npm install openai):

  import OpenAI from "openai";
  const client = new OpenAI({ baseURL: "${cortex}/v1", apiKey: "unused" });
  const answer = await client.chat.completions.create({
    model: "tiny", messages: [{ role: "user", content: "Hello!" }], max_tokens: 32,
  });
  console.log(answer.choices[0].message.content);

Ctrl-C stops everything.
demo: ready`);
} catch (error) {
  console.error(`demo: ${error instanceof Error ? error.message : error}`);
  await stop(1);
}
