import type {
  ApiLoadAnswer,
  ApiUnloadAnswer,
  CatalogueReport,
  CatalogueReportModel,
  CatalogueVram,
  FleetEvent,
  FleetNode,
  FleetSnapshot,
  ModelStatus,
  NodeDrain,
} from "@cortex/protocol";

// Pure text formatting for cortexctl: plain data in, lines out. No I/O, no clock (callers
// pass `now`), so every table is unit-tested exactly.

/** Left-aligned columns two spaces apart; the header row first. Trailing spaces trimmed. */
export const formatTable = (header: readonly string[], rows: readonly (readonly string[])[]) => {
  const all = [header, ...rows];
  const widths = header.map((_, column) =>
    Math.max(...all.map((row) => (row[column] ?? "").length)),
  );
  return all
    .map((row) =>
      widths
        .map((width, column) => (row[column] ?? "").padEnd(width))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
};

/** `12s ago`, `5m ago`, `3h ago`, `2d ago`; `never` for null; `in 3s` for clock skew. */
export const formatAgo = (iso: string | null, now: number): string => {
  if (iso === null) return "never";
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const seconds = Math.round((now - at) / 1000);
  const size = Math.abs(seconds);
  const text =
    size < 60
      ? `${size}s`
      : size < 3600
        ? `${Math.floor(size / 60)}m`
        : size < 86_400
          ? `${Math.floor(size / 3600)}h`
          : `${Math.floor(size / 86_400)}d`;
  return seconds < 0 ? `in ${text}` : `${text} ago`;
};

/** Megabytes as GB with one decimal from 1 GB up (`23.4 GB`), else MB (`512 MB`). */
export const formatMb = (mb: number): string =>
  mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${Math.round(mb)} MB`;

/** Bytes in binary units with one decimal (`1.5 GiB`), for download progress. */
export const formatBytes = (bytes: number): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
};

/** Milliseconds as `850 ms`, `12.3 s`, `4m 05s`. */
export const formatDuration = (ms: number): string => {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, "0")}s`;
};

const dash = (value: string | number | null | undefined): string =>
  value === null || value === undefined || value === "" ? "-" : String(value);

/** The fleet `status` shows: `GET /api/fleet`'s nodes carry their drain (absent: none). */
export interface StatusFleet {
  readonly nodes: readonly (FleetNode & { readonly drain?: NodeDrain | null })[];
}

/** `gpu=a100,zone=eu`: a node's labels in one cell. */
const labelsCell = (labels: FleetNode["labels"]): string =>
  dash(
    Object.entries(labels ?? {})
      .map(([key, value]) => `${key}=${value}`)
      .join(","),
  );

/**
 * `status`: one table of nodes, one of GPUs, one of resident models. The DRAIN and LABELS
 * columns appear once some node is drained or has labels, so a fleet without either reads as
 * it always did.
 */
export const formatStatus = (snapshot: StatusFleet, now: number): string => {
  if (snapshot.nodes.length === 0) return "no neurons configured";
  const drains = snapshot.nodes.some((node) => (node.drain ?? null) !== null);
  const labels = snapshot.nodes.some((node) => Object.keys(node.labels ?? {}).length > 0);
  const nodes = formatTable(
    [
      "NODE",
      "HEALTH",
      ...(drains ? ["DRAIN"] : []),
      "LAST POLL",
      "HOST",
      ...(labels ? ["LABELS"] : []),
      "ERROR",
    ],
    snapshot.nodes.map((node) => [
      node.name,
      node.healthy ? "healthy" : `unhealthy (${node.consecutive_failures} failed)`,
      ...(drains ? [dash(node.drain)] : []),
      formatAgo(node.last_poll_at, now),
      dash(node.node?.hostname),
      ...(labels ? [labelsCell(node.labels)] : []),
      dash(node.error),
    ]),
  );
  const gpuRows = snapshot.nodes.flatMap((node) =>
    node.devices.map((device) => {
      const used = device.vram_total_mb - device.vram_free_mb;
      const pct = device.vram_total_mb === 0 ? 0 : Math.round((used / device.vram_total_mb) * 100);
      return [
        node.name,
        String(device.index),
        device.name,
        `${formatMb(used)} / ${formatMb(device.vram_total_mb)} (${pct}%)`,
        device.utilization_pct === null ? "-" : `${Math.round(device.utilization_pct)}%`,
        device.temperature_c === null ? "-" : `${Math.round(device.temperature_c)}°C`,
      ];
    }),
  );
  const modelRows = snapshot.nodes.flatMap((node) =>
    node.models.map((model) => [
      node.name,
      model.id,
      model.status,
      formatMb(model.vram_mb),
      model.devices.join(",") || "-",
      `${model.in_flight}/${model.max_concurrency}`,
      String(model.queued),
      dash(model.error),
    ]),
  );
  return [
    nodes,
    gpuRows.length === 0
      ? "no GPUs reported"
      : formatTable(["NODE", "GPU", "NAME", "VRAM USED", "UTIL", "TEMP"], gpuRows),
    modelRows.length === 0
      ? "no models resident"
      : formatTable(
          ["NODE", "MODEL", "STATUS", "VRAM", "GPUS", "IN-FLIGHT", "QUEUED", "ERROR"],
          modelRows,
        ),
  ].join("\n\n");
};

export interface ModelRow {
  readonly id: string;
  /** The best status over the locations, or `available` (catalogue only, resident nowhere). */
  readonly status: ModelStatus | "available";
  readonly in_catalogue: boolean;
  readonly aliases: readonly string[];
  /** What cortex places it by (the effective figure); null while unknown or not in the catalogue. */
  readonly vram_mb: number | null;
  /** Declared, estimated, observed and effective MB; null for a model not in the catalogue. */
  readonly vram: CatalogueVram | null;
  /** `declared_off`: the declared figure is more than 20 % off the observed one. */
  readonly vram_flag: "declared_off" | null;
  readonly locations: readonly {
    readonly node: string;
    readonly status: ModelStatus;
    readonly healthy: boolean;
    readonly in_flight: number;
  }[];
}

const STATUS_RANK: Readonly<Record<ModelStatus, number>> = {
  loaded: 5,
  loading: 4,
  recovering: 3,
  unloaded: 2,
  failed: 1,
};

const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Every catalogue model and every resident one, sorted by id. Unlike `/v1/models` this keeps
 * locations on unhealthy nodes (flagged), because an operator wants to see them; only healthy
 * locations count towards the status.
 */
export const modelRows = (
  snapshot: FleetSnapshot,
  catalogue: readonly CatalogueReportModel[],
): ModelRow[] => {
  const rows = new Map<
    string,
    { profile?: CatalogueReportModel; locations: ModelRow["locations"][0][] }
  >();
  for (const profile of catalogue) rows.set(profile.id, { profile, locations: [] });
  for (const node of snapshot.nodes) {
    for (const model of node.models) {
      const location = {
        node: node.name,
        status: model.status,
        healthy: node.healthy,
        in_flight: model.in_flight,
      };
      const row = rows.get(model.id);
      if (row) row.locations.push(location);
      else rows.set(model.id, { locations: [location] });
    }
  }
  return [...rows.entries()]
    .sort(([a], [b]) => byCodeUnits(a, b))
    .map(([id, { profile, locations }]) => {
      let best: ModelStatus | undefined;
      for (const location of locations) {
        if (!location.healthy) continue;
        if (best === undefined || STATUS_RANK[location.status] > STATUS_RANK[best])
          best = location.status;
      }
      return {
        id,
        status: best ?? "available",
        in_catalogue: profile !== undefined,
        aliases: profile?.aliases ?? [],
        vram_mb: profile?.vram_mb ?? null,
        vram: profile?.vram ?? null,
        vram_flag: profile?.vram_flag ?? null,
        locations: locations.sort((a, b) => byCodeUnits(a.node, b.node)),
      };
    });
};

const mbOrDash = (mb: number | null | undefined): string =>
  mb === null || mb === undefined ? "-" : formatMb(mb);

/**
 * The DECLARED cell: the figure, and when it is more than 20 % off the observed one, by how
 * much (`9.8 GB (off -50%)`: it declares half of what runs).
 */
const declaredCell = (row: ModelRow): string => {
  const declared = row.vram?.declared_mb ?? null;
  const observed = row.vram?.observed_mb ?? null;
  if (declared === null) return "-";
  if (row.vram_flag !== "declared_off" || observed === null || observed === 0)
    return formatMb(declared);
  const off = Math.round(((declared - observed) / observed) * 100);
  return `${formatMb(declared)} (off ${off > 0 ? "+" : ""}${off}%)`;
};

/**
 * `cortexctl models`: VRAM is what cortex places the model by (the observed peak plus a
 * margin once measured, else the larger of declared and estimated); DECLARED, ESTIMATED and
 * OBSERVED are what it knows, a declared figure far off the observed one flagged.
 */
export const formatModels = (rows: readonly ModelRow[]): string => {
  if (rows.length === 0) return "no models: the catalogue is empty and nothing is resident";
  return formatTable(
    [
      "MODEL",
      "STATUS",
      "LOCATIONS",
      "VRAM",
      "DECLARED",
      "ESTIMATED",
      "OBSERVED",
      "ALIASES",
      "SOURCE",
    ],
    rows.map((row) => [
      row.id,
      row.status,
      row.locations
        .map((at) => `${at.node}:${at.status}${at.healthy ? "" : " (node unhealthy)"}`)
        .join(", ") || "-",
      row.vram === null
        ? "-"
        : row.vram.effective_mb === null
          ? "estimating"
          : formatMb(row.vram.effective_mb),
      declaredCell(row),
      mbOrDash(row.vram?.estimated_mb),
      mbOrDash(row.vram?.observed_mb),
      row.aliases.join(", ") || "-",
      row.in_catalogue ? "catalogue" : "loaded by hand",
    ]),
  );
};

/** Problems cortex found with catalogue entries (one that cannot be estimated), or "". */
export const formatCatalogueProblems = (problems: CatalogueReport["problems"]): string =>
  problems.length === 0
    ? ""
    : [
        "catalogue problems:",
        ...problems.map(({ file, path, message }) =>
          path === "" ? `  ${file}: ${message}` : `  ${file}: ${path}: ${message}`,
        ),
      ].join("\n");

/** One line per event: time, type, then what happened. */
export const formatEvent = (event: FleetEvent): string => {
  const what = ((): string => {
    switch (event.type) {
      case "node_health":
        return `${event.node} ${event.healthy ? "healthy" : "unhealthy"}${event.error ? `: ${event.error}` : ""}`;
      case "model_state":
        return `${event.model} on ${event.node}: ${event.from ?? "absent"} -> ${event.to ?? "gone"}`;
      case "load_started":
        return `${event.model} on ${event.node}${
          event.evicting.length === 0
            ? ""
            : ` (evicting ${event.evicting.map((e) => `${e.model} on ${e.node}`).join(", ")})`
        }`;
      case "load_progress":
        return `${event.model} on ${event.node}: ${progressText(event)}`;
      case "load_finished":
        return `${event.model} on ${event.node} in ${formatDuration(event.load_ms)}`;
      case "load_failed":
        return `${event.model} on ${event.node}: ${event.error}`;
      case "evicted":
      case "unloaded":
        return `${event.model} from ${event.node}`;
      case "scaled_out":
        return `${event.model} on ${event.node} (${event.reason === "demand" ? "requests waiting" : "min_replicas"}; ${event.replicas} replica(s))`;
      case "scaled_in":
        return `${event.model} from ${event.node} (idle; ${event.replicas} replica(s) left)`;
      case "swap_queued":
        return `${event.model} on ${event.node} waits for ${event.blockers.join(", ") || "room"}`;
      case "swap_started":
        return `${event.model} on ${event.node}${
          event.evicting.length === 0 ? "" : ` (evicting ${event.evicting.join(", ")})`
        }: ${event.waiting} request(s) waited ${formatDuration(event.waited_ms)}`;
      case "catalogue_reloaded":
        return event.error === null
          ? `${event.models} models`
          : `kept the last good catalogue: ${event.error}`;
      case "catalogue_problem":
        return `${event.model} cannot be placed: ${event.error}`;
      case "node_draining":
        return `${event.node}: no new requests; its models unload once idle`;
      case "node_drained":
        return `${event.node}: nothing resident`;
      case "node_resumed":
        return `${event.node}: back in service`;
      case "node_joined":
        return `${event.node} joined at ${event.url}`;
      case "node_removed":
        return `${event.node} left the fleet`;
    }
  })();
  return `${event.at}  ${event.type.padEnd(18)}  ${what}`;
};

type Progress = Extract<FleetEvent, { type: "load_progress" }>;

/** `downloading 1.2 GiB / 4.0 GiB (30%)`, or just the phase while sizes are unknown. */
export const progressText = (progress: Pick<Progress, "phase" | "bytes" | "total">): string => {
  const { phase, bytes, total } = progress;
  if (bytes === null) return phase;
  if (total === null || total === 0) return `${phase} ${formatBytes(bytes)}`;
  const pct = Math.min(100, Math.floor((bytes / total) * 100));
  return `${phase} ${formatBytes(bytes)} / ${formatBytes(total)} (${pct}%)`;
};

export const formatLoadAnswer = (answer: ApiLoadAnswer): string => {
  if (answer.already_loaded)
    return `${answer.model} is already loaded on ${answer.node} (${answer.url})`;
  const evicted =
    answer.evicted.length === 0
      ? ""
      : `; evicted ${answer.evicted.map((e) => `${e.model} from ${e.node}`).join(", ")}`;
  return `loaded ${answer.model} on ${answer.node} in ${formatDuration(answer.load_ms)} (${answer.url})${evicted}`;
};

export const formatUnloadAnswer = (answer: ApiUnloadAnswer): string =>
  answer.nodes.length === 0
    ? `${answer.model} was not loaded anywhere`
    : `unloaded ${answer.model} from ${answer.nodes.join(", ")}`;

/**
 * `--since` as cortex wants it (ISO time): an ISO time passes through, `90s`, `15m`, `2h`,
 * `1d` count back from `now`. Undefined for anything else.
 */
export const parseSince = (value: string, now: number): string | undefined => {
  const relative = /^(\d+)(s|m|h|d)$/.exec(value.trim());
  if (relative) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as "s"];
    return new Date(now - Number(relative[1]) * unit).toISOString();
  }
  return /^\d{4}-\d{2}-\d{2}T/.test(value) && !Number.isNaN(Date.parse(value)) ? value : undefined;
};
