import { Agent, request } from "node:http";
import { type HealthSummary, healthOf, pollHealth } from "./process-watch.js";
import { cpuSeconds, round, rssMiB, sleep } from "./support.js";

// Issue 21's open streams: many long-lived streams held open at once through cortex → neuron →
// a fake harness that sends one chunk a second, with the RSS of cortex and the neuron and their
// /health latency (which stands in for event-loop delay: neither exposes a histogram) read while
// every stream is open.

const OPEN_WAVE = 500;
const OPEN_EVERY_MS = 100;

export interface OpenStreamsRun {
  readonly streams: number;
  readonly chunks_expected: number;
  readonly completed: number;
  readonly complete_with_every_chunk: number;
  readonly errors: number;
  readonly error_kinds: Record<string, number>;
  /** Up to 5 streams that ended without error but short of their chunks: events, last text. */
  readonly short: readonly { readonly events: number; readonly end: string }[];
  readonly open_ms: number;
  readonly wall_ms: number;
  readonly rss_idle_mib: { cortex: number; neuron: number };
  readonly rss_open_mib: { cortex: number; neuron: number };
  readonly mib_per_1000_streams: { cortex: number; neuron: number };
  readonly cpu_s: { cortex: number; neuron: number };
  readonly health_open_ms: { cortex: HealthSummary; neuron: HealthSummary };
}

export interface OpenStreamsTarget {
  readonly cortexUrl: string;
  readonly neuronUrl: string;
  readonly cortexPid: number;
  readonly neuronPid: number;
  readonly apiKey: string;
  /** The models to spread the streams over (each at most `perModel` streams). */
  readonly models: readonly string[];
  readonly perModel: number;
  /** Data chunks each stream carries (the harness sends one a second). */
  readonly chunks: number;
}

/** One streamed chat request: how many SSE data events came, or the error that ended it. */
const openStream = (agent: Agent, url: URL, apiKey: string, model: string, onFirst: () => void) =>
  new Promise<{ events: number; error: string | null; end: string }>((resolve) => {
    const body = JSON.stringify({
      model,
      messages: [{ role: "user", content: "stay a while" }],
      max_tokens: 64,
      stream: true,
    });
    let events = 0;
    let tail = "";
    // The answer's last characters, to show how a short stream ended.
    let end = "";
    let first = true;
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: "/v1/chat/completions",
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          authorization: `Bearer ${apiKey}`,
        },
      },
      (res) => {
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          // "data: " occurrences; the 5 characters kept are too few to hold a whole one, so one
          // split across two chunks counts once.
          const text = tail + chunk;
          events += text.split("data: ").length - 1;
          tail = text.slice(-5);
          end = (end + chunk).slice(-300);
          // Open once its first event came: keep-alive comments of a stream still waiting for
          // its turn do not count.
          if (first && events > 0) {
            first = false;
            onFirst();
          }
        });
        res.on("end", () =>
          resolve({
            events,
            error: res.statusCode === 200 ? null : `status ${res.statusCode}`,
            end,
          }),
        );
        res.on("error", (error) => resolve({ events, error: error.message, end }));
      },
    );
    req.on("error", (error: NodeJS.ErrnoException) =>
      resolve({ events, error: error.code ?? error.message, end }),
    );
    req.end(body);
  });

export const runOpenStreams = async (
  target: OpenStreamsTarget,
  streams: number,
): Promise<OpenStreamsRun> => {
  const url = new URL(target.cortexUrl);
  const agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const idle = { cortex: rssMiB(target.cortexPid), neuron: rssMiB(target.neuronPid) };
  const cpu0 = { cortex: cpuSeconds(target.cortexPid), neuron: cpuSeconds(target.neuronPid) };
  const started = Date.now();
  let firsts = 0;
  let allOpen: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    allOpen = resolve;
  });
  // Opened in waves of OPEN_WAVE every OPEN_EVERY_MS (9,000 in under 2 s), as clients arrive:
  // all at once, the fake harnesses' listen queues (Node's 511) dropped connections.
  const runs = Array.from({ length: streams }, async (_, i) => {
    const model = target.models[Math.floor(i / target.perModel)] ?? target.models[0] ?? "";
    await sleep(Math.floor(i / OPEN_WAVE) * OPEN_EVERY_MS);
    return openStream(agent, url, target.apiKey, model, () => {
      firsts += 1;
      if (firsts === streams) allOpen();
    });
  });
  const settled = Promise.all(runs);
  // Every stream has its first chunk (or the run ended early); then watch while they stay open.
  await Promise.race([opened, settled]);
  const openMs = Date.now() - started;
  const health = {
    cortex: pollHealth(target.cortexUrl, 100),
    neuron: pollHealth(target.neuronUrl, 100),
  };
  let peak = { ...idle };
  const watch = setInterval(() => {
    try {
      peak = {
        cortex: Math.max(peak.cortex, rssMiB(target.cortexPid)),
        neuron: Math.max(peak.neuron, rssMiB(target.neuronPid)),
      };
    } catch {
      // A process gone shows in the streams' errors.
    }
  }, 250);
  // Watch until the streams are about to end (their last chunk is due), then let them finish.
  const openFor = Math.max(500, target.chunks * 1000 - openMs - 1500);
  await Promise.race([sleep(openFor), settled]);
  await Promise.all([health.cortex.stop(), health.neuron.stop()]);
  clearInterval(watch);
  const results = await settled;
  agent.destroy();
  const errorKinds: Record<string, number> = {};
  for (const r of results) if (r.error) errorKinds[r.error] = (errorKinds[r.error] ?? 0) + 1;
  const per1000 = (mib: number, base: number) => round(((mib - base) / streams) * 1000, 2);
  return {
    streams,
    chunks_expected: target.chunks,
    completed: results.filter((r) => r.error === null).length,
    // The harness's data events plus the closing [DONE].
    complete_with_every_chunk: results.filter(
      (r) => r.error === null && r.events >= target.chunks + 1,
    ).length,
    errors: results.filter((r) => r.error !== null).length,
    short: results
      .filter((r) => r.error === null && r.events < target.chunks + 1)
      .slice(0, 5)
      .map((r) => ({ events: r.events, end: r.end })),
    error_kinds: errorKinds,
    open_ms: openMs,
    wall_ms: Date.now() - started,
    rss_idle_mib: idle,
    rss_open_mib: peak,
    mib_per_1000_streams: {
      cortex: per1000(peak.cortex, idle.cortex),
      neuron: per1000(peak.neuron, idle.neuron),
    },
    cpu_s: {
      cortex: round(cpuSeconds(target.cortexPid) - cpu0.cortex, 2),
      neuron: round(cpuSeconds(target.neuronPid) - cpu0.neuron, 2),
    },
    health_open_ms: {
      cortex: healthOf(health.cortex.polls),
      neuron: healthOf(health.neuron.polls),
    },
  };
};
