import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { processesMentioning } from "@cortex/testkit";
import { stringify } from "yaml";

/** The repository root (from src/ and dist/ alike). */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const NEURON_CLI = join(ROOT, "apps/neuron/dist/cli.js");
export const CORTEX_CLI = join(ROOT, "apps/cortex/dist/cli.js");
/** Where JSON reports go: `.bench/` at the root, or BENCH_OUT_DIR (the smoke test uses a temp dir). */
export const benchDir = (): string => process.env.BENCH_OUT_DIR ?? join(ROOT, ".bench");

export interface AppProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly output: () => string;
  readonly exited: Promise<unknown>;
}

/** Every process a benchmark started, so a failure anywhere still stops them all. */
const started = new Set<ChildProcess>();

/**
 * Starts `<cli> serve --config <dir>/<file>` listening on a free loopback port and resolves
 * once it logs `{"url": …, "msg": "listening"}`.
 */
export const startApp = async (options: {
  readonly cli: string;
  readonly dir: string;
  readonly file: string;
  readonly config: Record<string, unknown>;
  readonly env?: Record<string, string>;
}): Promise<AppProcess> => {
  const file = join(options.dir, options.file);
  await writeFile(file, stringify({ listen: "127.0.0.1:0", ...options.config }));
  // BENCH_APP_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles cortex and neuron.
  const nodeArgs = (process.env.BENCH_APP_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, options.cli, "serve", "--config", file], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
  });
  started.add(child);
  const exited = once(child, "exit").finally(() => started.delete(child));
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.length > 2_000_000) output = output.slice(-1_000_000);
      const match = /"url":"(http:\/\/[^"]+)","msg":"listening"/.exec(output);
      if (match?.[1]) resolve(match[1]);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    void exited.then(() => reject(new Error(`${options.cli} exited:\n${output}`)));
  });
  return { child, pid: child.pid ?? 0, url, output: () => output, exited };
};

/** Spawns a plain node program and tracks it for stopAll. */
export const spawnNode = (args: readonly string[], env: Record<string, string> = {}) => {
  const child = spawn(process.execPath, [...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  started.add(child);
  const exited = once(child, "exit").finally(() => started.delete(child));
  return { child, exited };
};

/** Everything `child` writes to stdout and stderr, as it comes; `onStdout` sees it grow. */
const collectOutput = (child: ChildProcess, onStdout: (out: string) => void = () => {}) => {
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
    onStdout(out);
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  return () => out;
};

/** The first line of a program's output that holds a JSON object: what it reports. */
const jsonLine = (out: string): string | undefined =>
  out.split("\n").find((line) => line.startsWith("{"));

/**
 * The JSON line that a program started by spawnNode prints once it is ready and then keeps
 * running (a fake fleet, an attacker); rejects with its output if it exits first.
 */
export const readyLine = <T>(
  program: { readonly child: ChildProcess; readonly exited: Promise<unknown> },
  what: string,
): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const output = collectOutput(program.child, (out) => {
      const line = jsonLine(out);
      if (line && out.includes("\n")) resolve(JSON.parse(line) as T);
    });
    void program.exited.then(() => reject(new Error(`${what} exited:\n${output()}`)));
  });

/** Runs a node program that prints one JSON line and exits, and resolves with that line. */
export const runToLine = async <T = Record<string, unknown>>(
  args: readonly string[],
  what = args.join(" "),
): Promise<T> => {
  const { child, exited } = spawnNode(args);
  const output = collectOutput(child);
  await exited;
  const line = jsonLine(output());
  if (!line) throw new Error(`${what} printed no result:\n${output()}`);
  return JSON.parse(line) as T;
};

export const stopChild = async (child: ChildProcess, graceMs = 10_000): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
};

/** Stops every process started here (cortex first: it is the client of the others). */
export const stopAll = async (): Promise<void> => {
  for (const child of [...started].reverse()) await stopChild(child);
};

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;

export interface Spread {
  readonly n: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
}

export const spread = (samples: readonly number[]): Spread => {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    p50: round(percentile(sorted, 0.5)),
    p90: round(percentile(sorted, 0.9)),
    p99: round(percentile(sorted, 0.99)),
    min: round(sorted[0] ?? Number.NaN),
    max: round(sorted.at(-1) ?? Number.NaN),
    mean: round(sorted.length > 0 ? sum / sorted.length : Number.NaN),
  };
};

export const MiB = 2 ** 20;

export const round = (value: number, digits = 3): number => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};

/** Resident set size in MiB from /proc/<pid>/status. */
export const rssMiB = (pid: number): number => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  return round(kb / 1024, 1);
};

/** utime + stime of a process in seconds (/proc/<pid>/stat, clock ticks of 100 Hz). */
export const cpuSeconds = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the command: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

/** Bytes a process has read from its sockets and files so far (/proc/<pid>/io rchar). */
export const readBytes = (pid: number): number =>
  Number(/rchar:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/io`, "utf8"))?.[1] ?? Number.NaN);

/** The samples of metric `name` in Prometheus text: each one's labels (`{…}`) and value. */
export const metricSamples = (
  text: string,
  name: string,
): { readonly labels: string; readonly value: number }[] =>
  text
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`))
    .map((line) => ({
      labels: line.slice(name.length, line.lastIndexOf(" ")),
      value: Number(line.split(" ").at(-1)),
    }));

export const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Writes `.bench/<name>.json` at the repository root. */
export const writeReport = (name: string, report: unknown): string => {
  const dir = benchDir();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
};

/** A plain-text table for the terminal and a Markdown one for BENCHMARKS.md. */
export const table = (headers: readonly string[], rows: readonly (readonly unknown[])[]) => {
  const cells = [headers, ...rows.map((row) => row.map((cell) => String(cell)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => String(row[i]).length)));
  const line = (row: readonly unknown[]) =>
    row.map((cell, i) => String(cell).padEnd(widths[i] ?? 0)).join("  ");
  const text = [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)];
  const md = [
    `| ${headers.join(" | ")} |`,
    `| ${headers.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.map((cell) => String(cell)).join(" | ")} |`),
  ];
  return { text: text.join("\n"), markdown: md.join("\n") };
};

export const print = (title: string, text: string): void => {
  process.stdout.write(`\n## ${title}\n${text}\n`);
};

export interface Budget {
  readonly budget: string;
  readonly measured: string;
  readonly pass: boolean;
}

export interface BenchResult {
  readonly name: string;
  readonly title: string;
  readonly markdown: string;
  readonly budgets: readonly Budget[];
}

/** A benchmark's temporary directory, its `models` folder, and the processes started in it. */
export interface Workspace {
  readonly dir: string;
  readonly modelsDir: string;
  /** Started processes, stopped last first by `stop`. */
  readonly children: AppProcess[];
  /** Stops the children, SIGKILLs whatever still mentions the directory, removes it. */
  readonly stop: () => Promise<void>;
}

export const benchWorkspace = async (prefix: string): Promise<Workspace> => {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const children: AppProcess[] = [];
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child.child);
    for (const { pid } of processesMentioning(dir)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await rm(dir, { recursive: true, force: true });
  };
  const modelsDir = join(dir, "models");
  await mkdir(modelsDir, { recursive: true });
  return { dir, modelsDir, children, stop };
};
