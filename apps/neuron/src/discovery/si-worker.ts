import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** The systeminformation functions this module calls. */
export type SiCall = "graphics" | "osInfo" | "cpu" | "mem";

export interface SiRun {
  /** The results, in the order of the calls. */
  readonly answer: Promise<unknown[]>;
  /** Resolves when the worker thread is gone (which can be well after a timeout). */
  readonly exited: Promise<void>;
}

// Inside the worker: plain CommonJS, because the worker cannot load this TypeScript file.
const workerScript = (modulePath: string, calls: readonly SiCall[]): string => `
const { parentPort } = require("node:worker_threads");
const si = require(${JSON.stringify(modulePath)});
Promise.all(${JSON.stringify(calls)}.map((name) => si[name]())).then(
  (results) => parentPort.postMessage({ ok: true, results }),
  (error) => parentPort.postMessage({ ok: false, message: String((error && error.message) || error) }),
);
`;

/**
 * Calls systeminformation in a worker thread of its own. On Linux `graphics()` runs nvidia-smi
 * and dmidecode, and `osInfo()` runs `hostname -f`, all with execSync and no timeout: in this
 * thread a slow driver or DNS would freeze the whole neuron. A fresh worker also means a fresh
 * systeminformation, which snapshots process.env (PATH included) when it is first loaded.
 * The worker inherits process.env as it is at this call.
 */
export const runSystemInformation = (calls: readonly SiCall[], timeoutMs: number): SiRun => {
  let worker: Worker;
  try {
    const modulePath = createRequire(import.meta.url).resolve("systeminformation");
    worker = new Worker(workerScript(modulePath, calls), { eval: true });
  } catch (error) {
    return { answer: Promise.reject(error), exited: Promise.resolve() };
  }
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  const answer = new Promise<unknown[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`systeminformation did not answer within ${timeoutMs} ms`));
      void worker.terminate();
    }, timeoutMs);
    const settle = () => clearTimeout(timer);
    worker.once("message", (message: { ok: boolean; results?: unknown[]; message?: string }) => {
      settle();
      if (message.ok) resolve(message.results ?? []);
      else reject(new Error(`systeminformation failed: ${message.message ?? "unknown error"}`));
    });
    worker.once("error", (error) => {
      settle();
      reject(new Error(`systeminformation failed: ${error.message}`));
    });
    worker.once("exit", (code) => {
      settle();
      reject(new Error(`systeminformation stopped (exit code ${code}) without an answer`));
    });
  });
  return { answer, exited };
};
