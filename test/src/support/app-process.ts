import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";

/** The built programs, as an operator runs them. */
export const NEURON_CLI = fileURLToPath(
  new URL("../../../apps/neuron/dist/cli.js", import.meta.url),
);
export const CORTEX_CLI = fileURLToPath(
  new URL("../../../apps/cortex/dist/cli.js", import.meta.url),
);

export interface AppProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything it printed so far (pino JSON lines and stderr). */
  readonly output: () => string;
  /** Calls its HTTP API with `token`; `body` is sent as JSON. */
  readonly api: (path: string, init?: { method?: string; body?: unknown }) => Promise<Response>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `<cli> serve` with a YAML config written into `dir`, listening on a free loopback port
 * (port 0), and resolves once it logs the URL it listens on.
 */
export const startApp = async (options: {
  readonly cli: string;
  readonly dir: string;
  readonly file: string;
  readonly config: Record<string, unknown>;
  readonly token: string;
  readonly env?: Record<string, string>;
}): Promise<AppProcess> => {
  const file = join(options.dir, options.file);
  await writeFile(file, stringify({ listen: "127.0.0.1:0", ...options.config }));
  const child = spawn(process.execPath, [options.cli, "serve", "--config", file], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
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
    void exited.then(({ code }) =>
      reject(new Error(`${options.cli} exited with ${code}:\n${output}`)),
    );
  });
  return {
    child,
    url,
    output: () => output,
    exited,
    api: (path, init = {}) =>
      fetch(`${url}${path}`, {
        method: init.method ?? (init.body === undefined ? "GET" : "POST"),
        headers: {
          authorization: `Bearer ${options.token}`,
          ...(init.body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      }),
  };
};

/**
 * Starts the built cortex with its catalogue in `dir/catalogue`, its state in `dir/cortex-data`,
 * one client key and the admin token, in front of `neurons`; `config` adds or overrides keys.
 */
export const startCortexProcess = (options: {
  readonly dir: string;
  readonly apiKey: string;
  readonly adminToken: string;
  readonly neurons: readonly { name: string | undefined; url: string; token: string }[];
  readonly config?: Record<string, unknown>;
}): Promise<AppProcess> =>
  startApp({
    cli: CORTEX_CLI,
    dir: options.dir,
    file: "cortex.yaml",
    token: options.adminToken,
    config: {
      catalogue: join(options.dir, "catalogue"),
      data_dir: join(options.dir, "cortex-data"),
      api_keys: [options.apiKey],
      admin_token: options.adminToken,
      neurons: options.neurons,
      ...options.config,
    },
  });

/** Stops a process with SIGTERM and waits for it (SIGKILL after `graceMs`). */
export const stopApp = async (app: AppProcess, graceMs = 10_000): Promise<void> => {
  if (app.child.exitCode !== null || app.child.signalCode !== null) return;
  app.child.kill("SIGTERM");
  const timer = setTimeout(() => app.child.kill("SIGKILL"), graceMs);
  await app.exited;
  clearTimeout(timer);
};
