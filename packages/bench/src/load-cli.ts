import autocannon from "autocannon";

// Load generation in its own process: `node load-cli.js '<json options>'` runs autocannon
// (keep-alive connections, loopback only) and prints one JSON line with the result summary.

interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  readonly durationS: number;
  readonly body: string;
  readonly headers: Record<string, string>;
  /** Total requests per second over all connections; absent: as fast as possible. */
  readonly rate?: number;
  /** Stop after this many requests instead of after the duration. */
  readonly amount?: number;
}

const options = JSON.parse(process.argv[2] ?? "{}") as LoadOptions;
if (!/^http:\/\/(127\.0\.0\.1|localhost)[:/]/.test(options.url)) {
  process.stderr.write(`load-cli: refusing a non-loopback url ${options.url}\n`);
  process.exit(2);
}

const result = await autocannon({
  url: options.url,
  method: "POST",
  connections: options.connections,
  duration: options.durationS,
  body: options.body,
  headers: { "content-type": "application/json", ...options.headers },
  ...(options.rate === undefined ? {} : { overallRate: options.rate }),
  ...(options.amount === undefined ? {} : { amount: options.amount }),
});

process.stdout.write(
  `${JSON.stringify({
    connections: options.connections,
    rate: options.rate ?? null,
    duration_s: result.duration,
    requests: result.requests.total,
    rps: result.requests.average,
    ok: result["2xx"],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    latency_ms: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      mean: result.latency.average,
      max: result.latency.max,
    },
  })}\n`,
);
