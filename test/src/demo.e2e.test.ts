import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, processesMentioning, waitFor } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The README's first command ends in `node scripts/demo.mjs` (after install and build): run it
// as a person would, on free ports and a scratch data directory, and stop it with Ctrl-C.
// It runs the way `pnpm demo` does, through `sh -c` and the root script (the build left out),
// in a process group of its own, and Ctrl-C signals that whole group as a terminal does: the
// shell must not die of it, or pnpm reports a failure after a clean stop.

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BUILD = "turbo run build && ";
const rootScripts = (
  JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  }
).scripts;

let dir: string;
let demo: ChildProcess;
let output = "";
let url = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "demo-e2e-"));
  const [neuronPort, cortexPort] = [await freePort(), await freePort()];
  const script = rootScripts.demo ?? "";
  expect(script.startsWith(BUILD)).toBe(true);
  demo = spawn("/bin/sh", ["-c", script.slice(BUILD.length)], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      DEMO_MODELS_DIR: join(dir, "models"),
      NEURON_LISTEN: `127.0.0.1:${neuronPort}`,
      NEURON_STATE_DIR: join(dir, "state"),
      CORTEX_LISTEN: `127.0.0.1:${cortexPort}`,
      CORTEX_DATA_DIR: join(dir, "cortex"),
      CORTEX_NEURONS: JSON.stringify([
        { name: "local", url: `http://127.0.0.1:${neuronPort}`, token: "demo-neuron-token" },
      ]),
    },
  });
  demo.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  demo.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  await waitFor("the demo to be ready", () => output.includes("demo: ready"), 90_000);
  url = /Cortex is ready at (http:\/\/\S+)/.exec(output)?.[1] ?? "";
});

afterAll(async () => {
  if (demo && demo.exitCode === null) demo.kill("SIGKILL");
  for (const { pid } of processesMentioning(dir)) process.kill(pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("the demo", () => {
  it("generates the model, prints the URL with examples, and has loaded nothing yet", async () => {
    expect(existsSync(join(dir, "models", "tiny.gguf"))).toBe(true);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(output).toContain(`curl ${url}/v1/chat/completions`);
    expect(output).toContain(`baseURL: "${url}/v1"`);
    expect(output).toContain(`${url}/ui/`);
    expect(output).toContain(`cortexctl --url ${url} status`);
    const fleet = (await (await fetch(`${url}/api/fleet`)).json()) as {
      nodes: { name: string; healthy: boolean; models: unknown[] }[];
    };
    expect(fleet.nodes).toMatchObject([{ name: "local", healthy: true, models: [] }]);
  });

  it("answers the printed openai example, cold-loading the demo model on first use", async () => {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 });
    const answer = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Hello!" }],
      max_tokens: 32,
    });
    expect(openAIProblems("CreateChatCompletionResponse", answer)).toEqual([]);
    const alias = await client.chat.completions.create({
      model: "demo",
      messages: [{ role: "user", content: "Again" }],
      max_tokens: 4,
    });
    expect(alias.model).toBe("tiny");
  });

  it("prints a cortexctl line that works through the root script", async () => {
    expect(rootScripts.cortexctl).toBeDefined();
    const ctl = spawn("/bin/sh", ["-c", `${rootScripts.cortexctl} --url ${url} status`], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let text = "";
    ctl.stdout?.on("data", (chunk) => {
      text += chunk;
    });
    const [code] = (await once(ctl, "exit")) as [number | null];
    expect(code).toBe(0);
    expect(text).toContain("local");
  });

  it("stops everything on Ctrl-C and exits 0 after a clean stop", async () => {
    expect(processesMentioning(join(dir, "models", "tiny.gguf")).length).toBeGreaterThan(0);
    // The whole group, as a terminal's Ctrl-C: the shell, the demo, cortex and the neuron.
    process.kill(-(demo.pid ?? 0), "SIGINT");
    const [code, signal] = (await once(demo, "exit")) as [number | null, string | null];
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(output).not.toContain("did not stop cleanly");
    expect(processesMentioning(dir)).toEqual([]);
    expect(processesMentioning(join(ROOT, "demo", "neuron.yaml"))).toEqual([]);
    expect(processesMentioning(join(ROOT, "demo", "cortex.yaml"))).toEqual([]);
  });
});
