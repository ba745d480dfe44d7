import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { client, type Target } from "./client.js";
import { costMarkdown } from "./cost-report.js";
import { runOpenStreams } from "./open-streams.js";
import { runLoad } from "./proxy-overhead.js";
import { API_KEY, harnessPort, startStack } from "./stack.js";
import {
  type BenchResult,
  cpuSeconds,
  readyLine,
  round,
  type Spread,
  spawnNode,
  spread,
  writeReport,
} from "./support.js";

// Issue 21: what cortex and the neuron cost against the floor, two chained bare node:http proxy
// hops (bare-proxy.ts) in front of the same fake harness, in the same run with the same load
// generator, in alternating blocks: CPU per request and per relayed chunk of each process, added
// latency, first streamed chunk, requests/s; then many long-lived streams held open at once.

const BARE_PROXY = fileURLToPath(new URL("./bare-proxy.js", import.meta.url));

export interface CostOptions {
  /**
   * Seconds of load per block for the CPU and requests/s figures, at `connections`, in `blocks`
   * alternating blocks per path (JSON, then 20-chunk streams). Timed, not counted: autocannon
   * ends a counted run on a whole second, which capped requests/s at the block's count.
   */
  readonly blockS: number;
  readonly blocks: number;
  readonly connections: number;
  /** Sequential requests (and streams) per path for latency, in blocks of `block`. */
  readonly sequential: number;
  readonly block: number;
  /** Streams held open at once, at most `perModel` per model (max_concurrency is ≤ 1024). */
  readonly openStreams: number;
  readonly perModel: number;
  /** Chunks of each open stream, one a second. */
  readonly openChunks: number;
}

export const COST_FULL: CostOptions = {
  // About 3,000 requests/s through cortex here: ≥ 20,000 requests per path.
  blockS: 2.5,
  blocks: 4,
  connections: 8,
  sequential: 2000,
  block: 200,
  openStreams: 9000,
  perModel: 1000,
  openChunks: 60,
};
export const COST_SMOKE: CostOptions = {
  blockS: 0.3,
  blocks: 2,
  connections: 8,
  sequential: 40,
  block: 10,
  openStreams: 50,
  perModel: 1000,
  openChunks: 3,
};

/**
 * The file-descriptor limit asked for cortex, the neuron and this process (two sockets per open
 * stream in each app). Where prlimit is not allowed (a container without CAP_SYS_RESOURCE, as on
 * the 2-core bench machine, hard limit 20,000) the full run's 9,000 streams still fit.
 */
const NOFILE = 200_000;

/** Raises a process's open-file limit with prlimit; false where that is not allowed. */
const raiseNofile = (pid: number): boolean => {
  try {
    execFileSync("prlimit", ["--pid", String(pid), `--nofile=${NOFILE}:${NOFILE}`], {
      stdio: "ignore",
    });
    return true;
  } catch {
    return false;
  }
};

/** Read and write system calls a process has made so far (/proc/<pid>/io). */
const syscallsOf = (pid: number): number => {
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  return Number(/syscr:\s+(\d+)/.exec(io)?.[1]) + Number(/syscw:\s+(\d+)/.exec(io)?.[1]);
};

/** stime of a process in seconds (/proc/<pid>/stat field 15, clock ticks of 100 Hz). */
const systemSeconds = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[12]) / 100;
};

const startBare = async (upstreamPort: number) => {
  // Profiled like the apps when BENCH_APP_NODE_ARGS asks (e.g. --cpu-prof), to compare them.
  const nodeArgs = (process.env.BENCH_APP_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const program = spawnNode([...nodeArgs, BARE_PROXY, String(upstreamPort)]);
  const { url } = await readyLine<{ url: string }>(program, "the bare proxy");
  return { url, pid: program.child.pid ?? 0 };
};

const PATHS = ["cortex", "bare"] as const;
type PathName = (typeof PATHS)[number];

const chatBody = (model: string, stream: boolean) =>
  JSON.stringify({
    model,
    messages: [{ role: "user", content: "Hello, how are you today?" }],
    max_tokens: 16,
    ...(stream ? { stream: true } : {}),
  });

export const runCost = async (options: CostOptions): Promise<BenchResult> => {
  const openModels = Array.from(
    { length: Math.ceil(options.openStreams / options.perModel) },
    (_, i) => `open-${i}`,
  );
  const stack = await startStack([
    { id: "zero", behaviour: { stream_chunks: 20 } },
    ...openModels.map((id) => ({
      id,
      behaviour: { stream_chunks: options.openChunks, latency_ms: 1000 },
      maxConcurrency: Math.min(1024, options.perModel),
    })),
  ]);
  try {
    const raised = [process.pid, stack.cortex.pid, stack.neuron.pid].map(raiseNofile);
    for (const model of ["zero", ...openModels]) {
      const cold = client({
        name: "warm-up",
        url: `${stack.cortex.url}/v1/chat/completions`,
        headers: { authorization: `Bearer ${API_KEY}` },
        model,
      });
      await cold.chat();
      cold.close();
    }
    const harness = `http://127.0.0.1:${harnessPort(stack, "zero")}`;
    const bare2 = await startBare(Number(new URL(harness).port));
    const bare1 = await startBare(Number(new URL(bare2.url).port));
    const pids: Record<string, number> = {
      cortex: stack.cortex.pid,
      neuron: stack.neuron.pid,
      bare_1: bare1.pid,
      bare_2: bare2.pid,
    };
    const targets: Record<PathName | "direct", Target> = {
      direct: { name: "direct", url: `${harness}/v1/chat/completions`, headers: {}, model: "zero" },
      bare: { name: "bare", url: `${bare1.url}/v1/chat/completions`, headers: {}, model: "zero" },
      cortex: {
        name: "cortex",
        url: `${stack.cortex.url}/v1/chat/completions`,
        headers: { authorization: `Bearer ${API_KEY}` },
        model: "zero",
      },
    };

    // Latency: sequential requests and streams on one keep-alive connection per path,
    // alternating blocks; added = path − direct.
    const names = ["direct", "bare", "cortex"] as const;
    const clients = names.map((name) => client(targets[name]));
    const chat: number[][] = names.map(() => []);
    const first: number[][] = names.map(() => []);
    for (const c of clients)
      for (let i = 0; i < Math.min(100, options.sequential); i += 1) await c.chat();
    for (let done = 0; done < options.sequential; done += options.block)
      for (const [i, c] of clients.entries()) {
        for (let k = 0; k < options.block; k += 1) chat[i]?.push(await c.chat());
        for (let k = 0; k < options.block; k += 1) first[i]?.push((await c.stream()).first);
      }
    for (const c of clients) c.close();
    const latency = Object.fromEntries(
      names.map((name, i) => [
        name,
        { chat: spread(chat[i] ?? []), first_chunk: spread(first[i] ?? []) },
      ]),
    ) as Record<(typeof names)[number], { chat: Spread; first_chunk: Spread }>;
    const addedOf = (name: PathName) => ({
      p50: round(latency[name].chat.p50 - latency.direct.chat.p50),
      p99: round(latency[name].chat.p99 - latency.direct.chat.p99),
      first_chunk_p50: round(latency[name].first_chunk.p50 - latency.direct.first_chunk.p50),
    });

    // CPU: the same autocannon load (own process, `connections` keep-alive connections) through
    // each path in alternating blocks; utime+stime of each process over its path's blocks.
    const cpuRun = async (stream: boolean) => {
      const cpu: Record<string, number> = {};
      const requests: Record<PathName, number> = { cortex: 0, bare: 0 };
      const seconds: Record<PathName, number> = { cortex: 0, bare: 0 };
      const failed: Record<PathName, number> = { cortex: 0, bare: 0 };
      const mine: Record<PathName, string[]> = {
        cortex: ["cortex", "neuron"],
        bare: ["bare_1", "bare_2"],
      };
      const syscalls: Record<string, number> = {};
      const system: Record<string, number> = {};
      for (let b = 0; b < options.blocks; b += 1)
        for (const path of PATHS) {
          const before = Object.fromEntries(mine[path].map((p) => [p, cpuSeconds(pids[p] ?? 0)]));
          const systemBefore = Object.fromEntries(
            mine[path].map((p) => [p, systemSeconds(pids[p] ?? 0)]),
          );
          const callsBefore = Object.fromEntries(
            mine[path].map((p) => [p, syscallsOf(pids[p] ?? 0)]),
          );
          const r = await runLoad(
            targets[path],
            chatBody("zero", stream),
            options.connections,
            options.blockS,
          );
          for (const p of mine[path]) {
            cpu[p] = (cpu[p] ?? 0) + cpuSeconds(pids[p] ?? 0) - (before[p] ?? 0);
            system[p] = (system[p] ?? 0) + systemSeconds(pids[p] ?? 0) - (systemBefore[p] ?? 0);
            syscalls[p] = (syscalls[p] ?? 0) + syscallsOf(pids[p] ?? 0) - (callsBefore[p] ?? 0);
          }
          requests[path] += r.ok;
          failed[path] += r.errors + r.non2xx;
          seconds[path] += r.duration_s ?? Number.NaN;
        }
      const perRequestUs = Object.fromEntries(
        Object.entries(cpu).map(([p, s]) => {
          const n = p.startsWith("bare") ? requests.bare : requests.cortex;
          return [p, round((s * 1e6) / Math.max(1, n), 1)];
        }),
      );
      const perRequest = (figures: Record<string, number>, digits: number) =>
        Object.fromEntries(
          Object.entries(figures).map(([p, x]) => {
            const n = p.startsWith("bare") ? requests.bare : requests.cortex;
            return [p, round(x / Math.max(1, n), digits)];
          }),
        );
      return {
        requests,
        failed,
        // Answers over autocannon's own clock (its per-second average counts a block's last,
        // partial second as a whole one).
        rps: {
          cortex: round(requests.cortex / seconds.cortex, 0),
          bare: round(requests.bare / seconds.bare, 0),
        },
        cpu_s: Object.fromEntries(Object.entries(cpu).map(([p, s]) => [p, round(s, 2)])),
        per_request_us: perRequestUs,
        // Read and write system calls (/proc/<pid>/io syscr + syscw): on loopback a write also
        // runs the receiver's TCP path, so they are most of a hop's CPU.
        syscalls_per_request: perRequest(syscalls, 2),
        // The kernel's share (stime) of per_request_us.
        system_per_request_us: perRequest(
          Object.fromEntries(Object.entries(system).map(([p, x]) => [p, x * 1e6])),
          1,
        ),
        per_chunk_us: Object.fromEntries(
          Object.entries(perRequestUs).map(([p, us]) => [p, round(us / 20, 2)]),
        ),
      };
    };
    const json = await cpuRun(false);
    const streamed = await cpuRun(true);

    const open = await runOpenStreams(
      {
        cortexUrl: stack.cortex.url,
        neuronUrl: stack.neuron.url,
        cortexPid: stack.cortex.pid,
        neuronPid: stack.neuron.pid,
        apiKey: API_KEY,
        models: openModels,
        perModel: options.perModel,
        chunks: options.openChunks,
      },
      options.openStreams,
    );

    const report = {
      benchmark: "cost",
      date: new Date().toISOString(),
      options,
      nofile_raised: raised.every(Boolean),
      latency_ms: latency,
      added_ms: { cortex: addedOf("cortex"), bare: addedOf("bare") },
      cpu_json: json,
      cpu_stream: streamed,
      open_streams: open,
    };
    writeReport("cost", report);
    return costMarkdown(report);
  } finally {
    await stack.stop();
  }
};

export type CostReport = {
  readonly options: CostOptions;
  readonly nofile_raised: boolean;
  readonly latency_ms: Record<"direct" | "bare" | "cortex", { chat: Spread; first_chunk: Spread }>;
  readonly added_ms: Record<PathName, { p50: number; p99: number; first_chunk_p50: number }>;
  readonly cpu_json: CpuRun;
  readonly cpu_stream: CpuRun;
  readonly open_streams: Awaited<ReturnType<typeof runOpenStreams>>;
};

export interface CpuRun {
  readonly requests: Record<PathName, number>;
  readonly failed: Record<PathName, number>;
  readonly rps: Record<PathName, number>;
  readonly cpu_s: Record<string, number>;
  readonly per_request_us: Record<string, number>;
  readonly per_chunk_us: Record<string, number>;
  readonly syscalls_per_request: Record<string, number>;
  readonly system_per_request_us: Record<string, number>;
}
