import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";

/** The built neuron program, as an operator runs it. */
export const NEURON_CLI = fileURLToPath(
  new URL("../../../apps/neuron/dist/cli.js", import.meta.url),
);

export interface NeuronProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly token: string;
  /** Everything it printed so far (pino JSON lines and stderr). */
  readonly output: () => string;
  /** Calls its HTTP API with the token; `body` is sent as JSON. */
  readonly api: (path: string, init?: { method?: string; body?: unknown }) => Promise<Response>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `neuron serve` with a neuron.yaml written into `dir`, listening on a free loopback port
 * (port 0), and resolves once it logs the URL it listens on.
 */
export const startNeuron = async (
  dir: string,
  config: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<NeuronProcess> => {
  const token = typeof config.token === "string" ? config.token : "";
  const file = join(dir, `neuron-${String(config.name)}.yaml`);
  await writeFile(file, stringify({ listen: "127.0.0.1:0", ...config }));
  const child = spawn(process.execPath, [NEURON_CLI, "serve", "--config", file], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NEURON_LOG_LEVEL: "info", ...env },
  });
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"url":"(http:\/\/[^"]+)","msg":"listening"/.exec(output);
      if (match?.[1]) resolve(match[1]);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    void exited.then(({ code }) => reject(new Error(`neuron exited with ${code}:\n${output}`)));
  });
  return {
    child,
    url,
    token,
    output: () => output,
    exited,
    api: (path, init = {}) =>
      fetch(`${url}${path}`, {
        method: init.method ?? (init.body === undefined ? "GET" : "POST"),
        headers: {
          authorization: `Bearer ${token}`,
          ...(init.body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      }),
  };
};
