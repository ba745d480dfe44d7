import type { Device, FleetAnswer, FleetAnswerNode, FleetNode } from "@cortex/protocol";
import type { AdminClient } from "../api/client.js";
import { textOn } from "../lib/colors.js";
import { formatAgo, formatMb, formatPercent } from "../lib/format.js";
import { gpuUsage, segmentWidths } from "../lib/gpu-segments.js";
import { type LoadsInFlight, percentDone } from "../lib/load-progress.js";
import type { EventEntry } from "../use-fleet.js";
import { EventItem } from "./events-view.js";
import { useModelColor } from "./model-colors.js";
import { DrainBadge, DrainButton, NodeLabels } from "./node-drain.js";

/** Labels inside a segment only where they fit; the legend and tooltip always have them. */
const LABEL_MIN_PCT = 14;

/** The latest events under the nodes, without the many progress steps of a load. */
const RECENT_EVENTS = 8;

export const FleetView = ({
  fleet,
  loads,
  events,
  now,
  client,
  refresh,
}: {
  fleet: FleetAnswer | null;
  loads: LoadsInFlight;
  events: readonly EventEntry[];
  now: number;
  /** For the node cards' Drain and Resume buttons. */
  client: AdminClient;
  /** Fetches the fleet again after a card's action. */
  refresh: () => void;
}) => {
  if (fleet === null) return <p class="muted">Reading the fleet…</p>;
  if (fleet.nodes.length === 0)
    return <p class="muted">No neurons configured: add them under neurons: in cortex.yaml.</p>;
  const recent = events
    .filter(({ event }) => event.type !== "load_progress")
    .slice(0, RECENT_EVENTS);
  return (
    <>
      <FleetTotals fleet={fleet} loads={loads} />
      <section class="fleet" aria-label="Fleet">
        {fleet.nodes.map((node) => (
          <NodeCard
            key={node.name}
            node={node}
            loads={loads}
            now={now}
            client={client}
            refresh={refresh}
          />
        ))}
      </section>
      {recent.length > 0 && (
        <section class="recent" aria-labelledby="recent-title">
          <h2 id="recent-title">Recent events</h2>
          <ol class="events card">
            {recent.map((entry) => (
              <EventItem key={entry.key} entry={entry} />
            ))}
          </ol>
        </section>
      )}
    </>
  );
};

const FleetTotals = ({ fleet, loads }: { fleet: FleetAnswer; loads: LoadsInFlight }) => {
  let used = 0;
  let total = 0;
  let gpus = 0;
  for (const node of fleet.nodes) {
    for (const device of node.devices) {
      const usage = gpuUsage(device, node.models);
      used += usage.usedMb;
      total += usage.totalMb;
      gpus += 1;
    }
  }
  const resident = fleet.nodes.flatMap((node) =>
    node.models.filter((m) => m.status === "loaded" || m.status === "loading"),
  );
  const busy = resident.reduce((sum, m) => sum + m.in_flight + m.queued, 0);
  const healthy = fleet.nodes.filter((node) => node.healthy).length;
  const running = [...loads.values()].filter((load) => load.error === null).length;
  return (
    <dl class="tiles tiles-fleet" data-testid="fleet-totals">
      <div>
        <dt>Nodes healthy</dt>
        <dd class={healthy < fleet.nodes.length ? "bad" : ""}>
          {healthy} / {fleet.nodes.length}
        </dd>
      </div>
      <div>
        <dt>GPU memory in use ({formatPercent(used, total)})</dt>
        <dd>
          {formatMb(used)} / {formatMb(total)}
        </dd>
      </div>
      <div>
        <dt>GPUs</dt>
        <dd>{gpus}</dd>
      </div>
      <div>
        <dt>Resident models</dt>
        <dd>{resident.length}</dd>
      </div>
      <div>
        <dt>Requests in flight</dt>
        <dd>{busy}</dd>
      </div>
      <div>
        <dt>Loads running</dt>
        <dd>{running}</dd>
      </div>
    </dl>
  );
};

const NodeCard = ({
  node,
  loads,
  now,
  client,
  refresh,
}: {
  node: FleetAnswerNode;
  loads: LoadsInFlight;
  now: number;
  client: AdminClient;
  refresh: () => void;
}) => {
  const cpuModels = node.models.filter((model) => model.devices.length === 0);
  const loading = [...loads.values()].filter((l) => l.node === node.name && l.error === null);
  const facts = node.node;
  return (
    <article
      class={node.healthy ? "card node" : "card node node-down"}
      aria-label={`node ${node.name}`}
      data-testid="node-card"
      data-node={node.name}
      data-drain={node.drain ?? undefined}
    >
      <header class="node-head">
        <h2>{node.name}</h2>
        <span class={node.healthy ? "pill pill-good" : "pill pill-bad"} data-testid="node-health">
          {node.healthy ? "healthy" : "unhealthy"}
        </span>
        <DrainBadge drain={node.drain} />
        <span
          class="muted small"
          data-testid="node-origin"
          title={
            node.origin === "joined"
              ? "joined by itself (cortexctl nodes rm forgets it)"
              : "configured in cortex.yaml"
          }
        >
          {node.origin}
        </span>
        <span class="muted small node-poll" title={node.last_poll_at ?? ""}>
          polled {formatAgo(node.last_poll_at, now)}
          {!node.healthy &&
            node.last_ok_at !== null &&
            `, last ok ${formatAgo(node.last_ok_at, now)}`}
        </span>
        <DrainButton node={node} client={client} refresh={refresh} />
      </header>
      {node.error !== null && <p class="node-error small">{node.error}</p>}
      <p class="facts small muted">
        {facts === null ? (
          <span>no discovery yet · {node.url}</span>
        ) : (
          <>
            <span title="hostname">host {facts.hostname}</span>
            <span>
              {facts.os} {facts.kernel}
            </span>
            <span>{facts.cpu}</span>
            <span>{formatMb(facts.memory_mb)} RAM</span>
            {node.harnesses.length > 0 && (
              <span>harnesses: {node.harnesses.map((h) => h.name).join(", ")}</span>
            )}
            <NodeLabels labels={node.labels} />
          </>
        )}
      </p>
      {node.devices.length === 0 ? (
        <p class="small muted">No GPUs</p>
      ) : (
        <ul class="gpus">
          {node.devices.map((device) => (
            <GpuRow key={device.index} node={node} device={device} />
          ))}
        </ul>
      )}
      {cpuModels.length > 0 && (
        <p class="small cpu-models">
          <span class="muted">On the CPU: </span>
          {cpuModels.map((model) => (
            <span key={model.id} class={`chip state-${model.status}`}>
              {model.id} · {model.status}
            </span>
          ))}
        </p>
      )}
      {loading.map((load) => {
        const pct = percentDone(load);
        return (
          <div key={load.model} class="small load-line" role="status">
            Loading <strong>{load.model}</strong>: {load.phase}
            {pct !== null && ` ${pct} %`}
            <progress max={100} value={pct ?? undefined} aria-label={`loading ${load.model}`} />
          </div>
        );
      })}
    </article>
  );
};

const GpuRow = ({ node, device }: { node: FleetNode; device: Device }) => {
  const modelColor = useModelColor();
  const usage = gpuUsage(device, node.models);
  const widths = segmentWidths(usage);
  const described = usage.segments
    .map((s) => `${s.kind === "model" ? s.model : s.kind} ${formatMb(s.mb)}`)
    .join(", ");
  const util = device.utilization_pct;
  const temp = device.temperature_c;
  return (
    <li class="gpu" data-testid="gpu" data-node={node.name} data-device={device.index}>
      <div class="gpu-head small">
        <span class="gpu-name">
          <strong>GPU {device.index}</strong> {device.name}
        </span>
        <span class="gpu-mem">
          {formatMb(usage.usedMb)} / {formatMb(usage.totalMb)}
          {usage.overcommitted && <span class="bad"> overcommitted</span>}
        </span>
        {util !== null && (
          <span class="gpu-util" title="utilization">
            <span class="meter" aria-hidden="true">
              <span style={{ width: `${util}%` }} />
            </span>
            {Math.round(util)} %
          </span>
        )}
        {temp !== null && (
          <span class={temp >= 85 ? "gpu-temp bad" : "gpu-temp"} title="temperature">
            {Math.round(temp)} °C
          </span>
        )}
      </div>
      <div
        class="bar"
        role="img"
        aria-label={`GPU ${device.index} on ${node.name}: ${described}`}
        data-testid="gpu-bar"
      >
        {usage.segments.map((segment, i) => {
          const width = widths[i] ?? 0;
          if (width <= 0) return null;
          if (segment.kind === "model") {
            const color = modelColor(segment.model);
            return (
              <div
                key={segment.model}
                class={`seg seg-model seg-${segment.status}`}
                style={{ width: `${width}%`, backgroundColor: color, color: textOn(color) }}
                title={`${segment.model} (${segment.status}): ${formatMb(segment.mb)}`}
                data-testid="gpu-segment"
                data-model={segment.model}
              >
                {width >= LABEL_MIN_PCT && <span>{segment.model}</span>}
              </div>
            );
          }
          return (
            <div
              key={segment.kind}
              class={`seg seg-${segment.kind}`}
              style={{ width: `${width}%` }}
              title={`${segment.kind === "other" ? "other use" : "free"}: ${formatMb(segment.mb)}`}
            >
              {segment.kind === "free" && width >= LABEL_MIN_PCT && (
                <span>{formatMb(segment.mb)} free</span>
              )}
            </div>
          );
        })}
      </div>
      <div class="legend small">
        {usage.segments.map((segment) => (
          <span key={segment.kind === "model" ? segment.model : segment.kind}>
            <i
              class={`swatch swatch-${segment.kind}`}
              style={segment.kind === "model" ? { background: modelColor(segment.model) } : {}}
            />
            {segment.kind === "model"
              ? `${segment.model}${segment.status === "loaded" ? "" : ` (${segment.status})`}`
              : segment.kind === "other"
                ? "other"
                : "free"}{" "}
            {formatMb(segment.mb)}
          </span>
        ))}
      </div>
    </li>
  );
};
