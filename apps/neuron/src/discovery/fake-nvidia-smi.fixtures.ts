import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { FakeGpu } from "./gpu-hosts.fixtures.js";

// A fake `nvidia-smi` executable for integration tests, answering --query-gpu and
// --query-compute-apps from a JSON file the test rewrites whenever the GPUs should change.

/** One per-process row; `pid` is printed as given, so a test can write a hostile one. */
export interface FakeApp {
  readonly pid: number | string;
  /** MiB, or `[N/A]` / `[Insufficient Permissions]`. */
  readonly used_memory: string;
  readonly gpu_bus_id: string;
}

/**
 * What the fake reports. An app row is listed only while its pid lives (a number that
 * `kill(pid, 0)` finds), as the real one lists only running processes, and what live rows hold
 * is taken from their GPU's `memory.free`: a harness that exits gives its memory back.
 */
export interface FakeSmiState {
  readonly gpus: readonly FakeGpu[];
  readonly apps?: readonly FakeApp[];
}

export type FakeSmi = FakeSmiState | "driver-failure" | "hang";

const executable = async (file: string, text: string): Promise<string> => {
  await writeFile(file, text);
  await chmod(file, 0o755);
  return file;
};

/** A node script behind a /bin/sh shim, so the fake needs nothing on PATH. */
const nodeExecutable = async (bin: string, name: string, script: string): Promise<string> => {
  const file = join(bin, `${name}.mjs`);
  await writeFile(file, script);
  return executable(join(bin, name), `#!/bin/sh\nexec '${process.execPath}' '${file}' "$@"\n`);
};

const SCRIPT = (stateFile: string) => `import { readFileSync } from "node:fs";
const { gpus, apps = [] } = JSON.parse(readFileSync(${JSON.stringify(stateFile)}, "utf8"));
const alive = (pid) => {
  if (typeof pid !== "number") return true;
  try { process.kill(pid, 0); return true; } catch (error) { return error.code === "EPERM"; }
};
const live = apps.filter((app) => alive(app.pid));
const bus = (id) => String(id).toUpperCase().replace(/^([0-9A-F]{4}):/, "0000$1:");
const held = (gpu) => live
  .filter((app) => bus(app.gpu_bus_id) === bus(gpu["pci.bus_id"]) && /^\\d+$/.test(app.used_memory))
  .reduce((sum, app) => sum + Number(app.used_memory), 0);
const format = process.argv.includes("--format=csv,noheader,nounits");
const gpuQuery = process.argv.find((arg) => arg.startsWith("--query-gpu="));
const appQuery = process.argv.find((arg) => arg.startsWith("--query-compute-apps="));
if (!format || (!gpuQuery && !appQuery)) {
  process.stderr.write("fake nvidia-smi only answers --query-gpu or --query-compute-apps with --format=csv,noheader,nounits\\n");
  process.exit(2);
}
const fields = (gpuQuery ?? appQuery).replace(/^[^=]*=/, "").split(",");
const known = new Set(gpuQuery ? gpus.flatMap((gpu) => Object.keys(gpu)) : ["pid", "used_memory", "gpu_bus_id"]);
for (const field of fields) {
  if ((appQuery || gpus.length > 0) && !known.has(field)) {
    process.stdout.write(\`Field "\${field}" is not a valid field to query.\\n\\n\`);
    process.exit(2);
  }
}
if (gpus.length === 0) {
  process.stdout.write("No devices were found\\n");
  process.exit(6);
}
if (appQuery) {
  for (const app of live) process.stdout.write(\`\${fields.map((field) => app[field]).join(", ")}\\n\`);
} else {
  for (const gpu of gpus) {
    const free = /^\\d+$/.test(gpu["memory.free"] ?? "")
      ? String(Math.max(0, Number(gpu["memory.free"]) - held(gpu)))
      : gpu["memory.free"];
    const shown = { ...gpu, "memory.free": free };
    process.stdout.write(\`\${fields.map((field) => shown[field] ?? "[N/A]").join(", ")}\\n\`);
  }
}
`;

/**
 * Writes `nvidia-smi` into `bin` (again: the state changes, the script stays) and answers its
 * path. The state file is read at each call, so the next read sees what the test wrote last.
 */
export const writeFakeNvidiaSmi = async (bin: string, behaviour: FakeSmi): Promise<string> => {
  if (behaviour === "hang")
    return nodeExecutable(bin, "nvidia-smi", "setInterval(() => {}, 1000);\n");
  if (behaviour === "driver-failure") {
    return nodeExecutable(
      bin,
      "nvidia-smi",
      `process.stdout.write("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\\n\\n");
process.exitCode = 9;
`,
    );
  }
  const stateFile = join(bin, "nvidia-smi-state.json");
  await writeFile(stateFile, JSON.stringify(behaviour));
  return nodeExecutable(bin, "nvidia-smi", SCRIPT(stateFile));
};
