import { useEffect, useState } from "preact/hooks";
import { type AdminClient, describeFailure } from "../api/client.js";
import { formatMs, formatPercent, formatRate } from "../lib/format.js";
import {
  type TrafficAnswer,
  type TrafficSummary,
  trafficModelLabel,
  trafficSeries,
  trafficSummaries,
} from "../lib/traffic.js";
import { Chart, type Line } from "./chart.js";
import { useModelColor } from "./model-colors.js";

const WINDOWS = [
  { label: "15 min", window: 900, bucket: 15 },
  { label: "1 hour", window: 3600, bucket: 60 },
  { label: "6 hours", window: 21_600, bucket: 300 },
  { label: "24 hours", window: 86_400, bucket: 900 },
] as const;
/**
 * The summary ranks every request of the window (cortex computes it off its event loop, but it
 * is still work): buckets are a minute wide at the least, so a refresh every 15 s is plenty, and
 * none while the tab is hidden.
 */
const REFRESH_MS = 15_000;

const ALL = "";

/** The same colour and stroke for a percentile in every chart. */
const PERCENTILES: readonly (Omit<Line, "label" | "values"> & { name: string })[] = [
  { name: "p50", color: "#4e79a7", width: 2 },
  { name: "p95", color: "#f28e2b" },
  { name: "p99", color: "#e15759", dash: [4, 3] },
];

/** p50, p95 and p99 of one quantity, in that order, labelled "p50 latency" and so on. */
const percentileLines = (quantity: string, values: readonly (number | null)[][]): Line[] =>
  PERCENTILES.map(({ name, ...style }, i) => ({
    ...style,
    label: `${name} ${quantity}`,
    values: values[i] ?? [],
    points: true,
  }));

export const TrafficView = ({
  client,
  now,
  known,
}: {
  client: AdminClient;
  now: number;
  /** Catalogue and resident model ids: a model really named "unknown" keeps its name. */
  known: ReadonlySet<string>;
}) => {
  const modelColor = useModelColor();
  const name = (model: string) => trafficModelLabel(model, known);
  const [windowIndex, setWindowIndex] = useState(1);
  const [scope, setScope] = useState(ALL);
  const [answer, setAnswer] = useState<TrafficAnswer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const span = WINDOWS[windowIndex] ?? WINDOWS[1];

  useEffect(() => {
    const stop = new AbortController();
    const read = () =>
      client
        .get<TrafficAnswer>(`/api/traffic?window=${span.window}&bucket=${span.bucket}`, stop.signal)
        .then((next) => {
          setAnswer(next);
          setError(null);
        })
        .catch((failure: unknown) => {
          if (!stop.signal.aborted) setError(describeFailure(failure));
        });
    void read();
    const timer = setInterval(() => {
      if (document.visibilityState !== "hidden") void read();
    }, REFRESH_MS);
    return () => {
      stop.abort();
      clearInterval(timer);
    };
  }, [client, span.window, span.bucket]);

  const summaries = answer === null ? [] : trafficSummaries(answer, now);
  const series = answer === null ? null : trafficSeries(answer, scope === ALL ? null : scope, now);
  const total = summaries.find((s) => s.model === null);
  const shown = summaries.find((s) => s.model === (scope === ALL ? null : scope)) ?? total;
  const scopeLabel = scope === ALL ? "" : ` · ${name(scope)}`;

  return (
    <section class="traffic" aria-label="Traffic" data-testid="traffic">
      <div class="toolbar">
        <label>
          Window{" "}
          <select
            value={windowIndex}
            onChange={(event) => setWindowIndex(Number(event.currentTarget.value))}
          >
            {WINDOWS.map((entry, i) => (
              <option key={entry.label} value={i}>
                last {entry.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Model{" "}
          <select
            value={scope}
            aria-label="Model"
            onChange={(event) => setScope(event.currentTarget.value)}
          >
            <option value={ALL}>all models</option>
            {(series?.models ?? []).map((model) => (
              <option key={model} value={model}>
                {name(model)}
              </option>
            ))}
          </select>
        </label>
        <span class="small muted">
          from the request log, {span.bucket} s buckets; charts show each bucket's p50, p95 and p99,
          the figures below averages and maxima over the window
        </span>
      </div>
      {error !== null && (
        <p class="banner banner-bad" role="alert">
          {error}
        </p>
      )}
      {shown && <Tiles summary={shown} />}
      {series !== null && (
        <div class="charts">
          <Chart
            title="Requests per second"
            x={series.x}
            format={(v) => formatRate(v)}
            lines={[
              ...series.models.map((model) => ({
                label: name(model),
                values: series.perSecond.get(model) ?? [],
                color: modelColor(model),
              })),
              ...(series.models.length > 1
                ? [{ label: "all", values: series.total, color: "#888888", dash: [4, 4] }]
                : []),
            ]}
          />
          <Chart
            title={`Latency p50 / p95 / p99${scopeLabel}`}
            x={series.x}
            format={(v) => formatMs(v)}
            lines={percentileLines("latency", [
              series.p50LatencyMs,
              series.p95LatencyMs,
              series.p99LatencyMs,
            ])}
          />
          <Chart
            title={`Time to first token p50 / p95 / p99${scopeLabel}`}
            x={series.x}
            format={(v) => formatMs(v)}
            lines={percentileLines("TTFT", [series.p50TtftMs, series.p95TtftMs, series.p99TtftMs])}
          />
          <Chart
            title={`Errors and cold starts${scopeLabel}`}
            x={series.x}
            format={(v) => `${Math.round(v)} %`}
            format2={(v) => String(Math.round(v))}
            lines={[
              {
                label: "error rate",
                values: series.errorPct,
                color: "#e15759",
                width: 2,
                points: true,
              },
              {
                label: "cold starts",
                values: series.coldStarts,
                color: "#f28e2b",
                scale: "y2",
                bars: true,
              },
            ]}
          />
        </div>
      )}
      {summaries.length > 0 && <SummaryTable summaries={summaries} name={name} />}
      {answer !== null && answer.buckets.length === 0 && (
        <p class="muted">No requests in this window yet.</p>
      )}
    </section>
  );
};

const Tiles = ({ summary }: { summary: TrafficSummary }) => (
  <dl class="tiles">
    <div>
      <dt>Requests</dt>
      <dd data-testid="traffic-requests">{summary.requests}</dd>
    </div>
    <div>
      <dt>Per second</dt>
      <dd>{formatRate(summary.perSecond)}</dd>
    </div>
    <div>
      <dt>Error rate</dt>
      <dd class={summary.errors > 0 ? "bad" : ""}>
        {formatPercent(summary.errors, summary.requests)}
      </dd>
    </div>
    <div>
      <dt>Avg latency</dt>
      <dd>{formatMs(summary.avgLatencyMs)}</dd>
    </div>
    <div>
      <dt>Max latency</dt>
      <dd>{formatMs(summary.maxLatencyMs)}</dd>
    </div>
    <div>
      <dt>Avg TTFT</dt>
      <dd>{formatMs(summary.avgTtftMs)}</dd>
    </div>
    <div>
      <dt>Cold starts</dt>
      <dd>{summary.coldStarts}</dd>
    </div>
  </dl>
);

const SummaryTable = ({
  summaries,
  name,
}: {
  summaries: readonly TrafficSummary[];
  name: (model: string) => string;
}) => (
  <table class="table" aria-label="Traffic per model">
    <thead>
      <tr>
        <th scope="col">Model</th>
        <th scope="col" class="num">
          Requests
        </th>
        <th scope="col" class="num">
          Per second
        </th>
        <th scope="col" class="num">
          Errors
        </th>
        <th scope="col" class="num">
          Avg latency
        </th>
        <th scope="col" class="num">
          Max latency
        </th>
        <th scope="col" class="num">
          Avg TTFT
        </th>
        <th scope="col" class="num">
          Cold starts
        </th>
        <th scope="col" class="num">
          Tokens in / out
        </th>
      </tr>
    </thead>
    <tbody>
      {summaries.map((s) => (
        <tr key={s.model ?? "*"} class={s.model === null ? "total" : ""}>
          <th scope="row">{s.model === null ? "all models" : name(s.model)}</th>
          <td class="num">{s.requests}</td>
          <td class="num">{formatRate(s.perSecond)}</td>
          <td class="num">{formatPercent(s.errors, s.requests)}</td>
          <td class="num">{formatMs(s.avgLatencyMs)}</td>
          <td class="num">{formatMs(s.maxLatencyMs)}</td>
          <td class="num">{formatMs(s.avgTtftMs)}</td>
          <td class="num">{s.coldStarts}</td>
          <td class="num">
            {s.promptTokens} / {s.completionTokens}
          </td>
        </tr>
      ))}
    </tbody>
  </table>
);
