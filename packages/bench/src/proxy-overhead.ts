import { fileURLToPath } from "node:url";
import { client, type Target } from "./client.js";
import { API_KEY, harnessPort, NEURON_TOKEN, startStack } from "./stack.js";
import {
  type BenchResult,
  type Budget,
  print,
  round,
  runToLine,
  type Spread,
  spread,
  table,
  writeReport,
} from "./support.js";

const LOAD_CLI = fileURLToPath(new URL("./load-cli.js", import.meta.url));

export interface ProxyOverheadOptions {
  /** Sequential requests per target, in blocks of `block`. */
  readonly requests: number;
  readonly block: number;
  readonly connections: readonly number[];
  readonly durationS: number;
  /** Fixed request rate for the paced run (the budget's 500 requests/s). */
  readonly rate: number;
  readonly streams: number;
}

export const PROXY_FULL: ProxyOverheadOptions = {
  requests: 3000,
  block: 200,
  connections: [1, 8, 32],
  durationS: 5,
  rate: 500,
  streams: 300,
};
export const PROXY_SMOKE: ProxyOverheadOptions = {
  requests: 40,
  block: 10,
  connections: [8],
  durationS: 0.5,
  rate: 100,
  streams: 6,
};

export interface LoadResult {
  connections: number;
  rate: number | null;
  rps: number;
  requests: number;
  /** autocannon's own measure of the run's length, in seconds. */
  duration_s?: number;
  ok: number;
  non2xx: number;
  errors: number;
  latency_ms: { p50: number; p90: number; p99: number; mean: number; max: number };
}

export const runLoad = async (
  target: Target,
  body: string,
  connections: number,
  durationS: number,
  rate?: number,
  amount?: number,
): Promise<LoadResult> => {
  const options = {
    url: target.url,
    connections,
    durationS,
    body,
    headers: target.headers,
    ...(rate === undefined ? {} : { rate }),
    ...(amount === undefined ? {} : { amount }),
  };
  return runToLine<LoadResult>([LOAD_CLI, JSON.stringify(options)], "the load generator");
};

const TARGETS = ["direct", "neuron", "cortex"] as const;
type TargetName = (typeof TARGETS)[number];

const added = (a: Spread, b: Spread) => ({
  p50: round(a.p50 - b.p50),
  p90: round(a.p90 - b.p90),
  p99: round(a.p99 - b.p99),
});

export const runProxyOverhead = async (options: ProxyOverheadOptions): Promise<BenchResult> => {
  const stack = await startStack([
    { id: "zero", behaviour: { stream_chunks: 20 } },
    { id: "paced", behaviour: { stream_chunks: 20, latency_ms: 2 } },
  ]);
  try {
    const clients = new Map<TargetName, ReturnType<typeof client>>();
    const targetsFor = (model: string): Record<TargetName, Target> => {
      // The first request through cortex cold-loads the model; only then does the harness run.
      return {
        direct: {
          name: "direct",
          url: `http://127.0.0.1:${harnessPort(stack, model)}/v1/chat/completions`,
          headers: {},
          model,
        },
        neuron: {
          name: "neuron",
          url: `${stack.neuron.url}/v1/chat/completions`,
          headers: { authorization: `Bearer ${NEURON_TOKEN}` },
          model,
        },
        cortex: {
          name: "cortex",
          url: `${stack.cortex.url}/v1/chat/completions`,
          headers: { authorization: `Bearer ${API_KEY}` },
          model,
        },
      };
    };
    for (const model of ["zero", "paced"]) {
      const cold = client({
        name: "warm-up",
        url: `${stack.cortex.url}/v1/chat/completions`,
        headers: { authorization: `Bearer ${API_KEY}` },
        model,
      });
      await cold.chat();
      cold.close();
    }
    const targets = targetsFor("zero");
    for (const name of TARGETS) clients.set(name, client(targets[name]));
    const get = (name: TargetName) => {
      const c = clients.get(name);
      if (!c) throw new Error(name);
      return c;
    };

    // (a) Sequential latency, alternating blocks so drift hits every target alike.
    const samples: Record<TargetName, number[]> = { direct: [], neuron: [], cortex: [] };
    const warmUp = Math.min(50, options.requests);
    for (const name of TARGETS) for (let i = 0; i < warmUp; i += 1) await get(name).chat();
    for (let done = 0; done < options.requests; done += options.block) {
      for (const name of TARGETS) {
        const c = get(name);
        for (let i = 0; i < options.block; i += 1) samples[name].push(await c.chat());
      }
    }
    const sequential = Object.fromEntries(TARGETS.map((n) => [n, spread(samples[n])])) as Record<
      TargetName,
      Spread
    >;
    const sequentialAdded = {
      neuron_over_direct: added(sequential.neuron, sequential.direct),
      cortex_over_neuron: added(sequential.cortex, sequential.neuron),
      cortex_path_over_direct: added(sequential.cortex, sequential.direct),
    };

    // (c) Streams of 20 chunks: time to first and to last chunk, zero-latency and paced (2 ms
    // between chunks, so a proxy that buffered would show first ≈ last).
    const streams: Record<string, Record<TargetName, { first: Spread; last: Spread }>> = {};
    for (const model of ["zero", "paced"]) {
      const t = targetsFor(model);
      const per = {} as Record<TargetName, { first: number[]; last: number[] }>;
      const cs = TARGETS.map((name) => client(t[name]));
      for (const name of TARGETS) per[name] = { first: [], last: [] };
      // Paced streams take ≥ 40 ms each: a third as many give the same picture.
      const count = model === "paced" ? Math.ceil(options.streams / 3) : options.streams;
      const block = Math.max(1, Math.min(50, Math.floor(count / 2)));
      for (let done = 0; done < count; done += block) {
        for (const [index, name] of TARGETS.entries()) {
          const c = cs[index];
          if (!c) continue;
          for (let i = 0; i < block; i += 1) {
            const { first, last } = await c.stream();
            per[name].first.push(first);
            per[name].last.push(last);
          }
        }
      }
      for (const c of cs) c.close();
      streams[model] = Object.fromEntries(
        TARGETS.map((n) => [n, { first: spread(per[n].first), last: spread(per[n].last) }]),
      ) as Record<TargetName, { first: Spread; last: Spread }>;
    }

    // (b) Throughput and latency with N keep-alive connections, from a separate process.
    const body = get("direct").body;
    const load: { connections: number; rate: number | null; target: TargetName; r: LoadResult }[] =
      [];
    for (const connections of options.connections)
      for (const name of TARGETS)
        load.push({
          connections,
          rate: null,
          target: name,
          r: await runLoad(targets[name], body, connections, options.durationS),
        });
    for (const name of TARGETS)
      load.push({
        connections: 8,
        rate: options.rate,
        target: name,
        r: await runLoad(targets[name], body, 8, options.durationS, options.rate),
      });
    for (const c of clients.values()) c.close();

    const rpsOf = (connections: number, target: TargetName, rate: number | null = null) =>
      load.find((l) => l.connections === connections && l.target === target && l.rate === rate)?.r;
    const report = {
      benchmark: "proxy-overhead",
      date: new Date().toISOString(),
      options,
      sequential_ms: sequential,
      sequential_added_ms: sequentialAdded,
      sequential_ratio_p50: {
        neuron_over_direct: round(sequential.neuron.p50 / sequential.direct.p50),
        cortex_over_direct: round(sequential.cortex.p50 / sequential.direct.p50),
      },
      streams_ms: streams,
      load: load.map((l) => ({ target: l.target, ...l.r })),
    };
    writeReport("proxy-overhead", report);

    const seqTable = table(
      ["target", "p50 ms", "p90 ms", "p99 ms", "added p50", "added p99", "p50 ratio vs direct"],
      TARGETS.map((n) => [
        n,
        sequential[n].p50,
        sequential[n].p90,
        sequential[n].p99,
        round(sequential[n].p50 - sequential.direct.p50),
        round(sequential[n].p99 - sequential.direct.p99),
        round(sequential[n].p50 / sequential.direct.p50, 2),
      ]),
    );
    const loadTable = table(
      [
        "connections",
        "rate",
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors+non2xx",
        "rps vs direct",
      ],
      load.map((l) => [
        l.connections,
        l.rate ?? "max",
        l.target,
        round(l.r.rps, 0),
        l.r.latency_ms.p50,
        l.r.latency_ms.p99,
        l.r.errors + l.r.non2xx,
        round(l.r.rps / (rpsOf(l.connections, "direct", l.rate)?.rps ?? Number.NaN), 2),
      ]),
    );
    const streamTable = table(
      ["model", "target", "first p50 ms", "first p99 ms", "last p50 ms", "last p99 ms"],
      Object.entries(streams).flatMap(([model, per]) =>
        TARGETS.map((n) => [
          model,
          n,
          per[n].first.p50,
          per[n].first.p99,
          per[n].last.p50,
          per[n].last.p99,
        ]),
      ),
    );
    print("Proxy overhead: sequential non-streaming chat", seqTable.text);
    print("Proxy overhead: keep-alive load (autocannon, own process)", loadTable.text);
    print("Proxy overhead: 20-chunk streams", streamTable.text);

    const rps8 = rpsOf(8, "cortex")?.rps ?? Number.NaN;
    const pacedStreams = streams.paced;
    const unbuffered =
      pacedStreams !== undefined &&
      pacedStreams.cortex.first.p50 < pacedStreams.cortex.last.p50 / 2;
    // The absolute added-latency budgets (≤ 1 ms p50, ≤ 3 ms p99, ≤ 1 ms to the first chunk, and
    // the same at 500 requests/s) moved to the cost benchmark as ratios to two bare node:http
    // hops measured in the same run (issue 21): this machine's floor already misses 3 ms at p99.
    // The tables above still show the absolute figures.
    const budgets: Budget[] = [
      {
        budget: "≥ 2,200 requests/s through cortex at 8 connections",
        measured: `${round(rps8, 0)} req/s (direct ${round(rpsOf(8, "direct")?.rps ?? Number.NaN, 0)})`,
        pass: rps8 >= 2200,
      },
      {
        budget: "streams are never buffered (paced 20-chunk stream: first chunk < half of last)",
        measured: `first ${pacedStreams?.cortex.first.p50} ms, last ${pacedStreams?.cortex.last.p50} ms`,
        pass: unbuffered,
      },
    ];
    return {
      name: "proxy-overhead",
      title: "Proxy overhead",
      markdown: [
        "Sequential non-streaming chat (ms):",
        "",
        seqTable.markdown,
        "",
        "Keep-alive load from a separate autocannon process:",
        "",
        loadTable.markdown,
        "",
        "20-chunk streams (ms; `paced` sends a chunk every 2 ms):",
        "",
        streamTable.markdown,
      ].join("\n"),
      budgets,
    };
  } finally {
    await stack.stop();
  }
};
