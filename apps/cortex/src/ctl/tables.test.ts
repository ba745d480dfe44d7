import {
  type CatalogueReportModel,
  type CatalogueVram,
  type Device,
  type FleetNode,
  type FleetSnapshot,
  type NeuronModel,
  vramFlag,
} from "@cortex/protocol";
import { gpuDevice, neuronModel } from "@cortex/testkit";
import { describe, expect, it } from "vitest";
import { errorMessageOf, unauthorizedMessage } from "./client.js";
import {
  formatAgo,
  formatBytes,
  formatCatalogueProblems,
  formatDuration,
  formatEvent,
  formatLoadAnswer,
  formatMb,
  formatModels,
  formatStatus,
  formatTable,
  formatUnloadAnswer,
  modelRows,
  parseSince,
  progressText,
} from "./tables.js";

const NOW = Date.parse("2026-01-01T12:00:00Z");

const device = (index: number, total: number, free: number): Device =>
  gpuDevice(index, total, free, { name: "RTX 4090", utilization_pct: 37.4, temperature_c: 61 });

const model = (id: string, fields: Partial<NeuronModel> = {}): NeuronModel =>
  neuronModel(id, { devices: [0], vram_mb: 6144, in_flight: 1, ...fields });

const node = (name: string, fields: Partial<FleetNode> = {}): FleetNode => ({
  name,
  url: `http://${name}:13131`,
  healthy: true,
  consecutive_failures: 0,
  last_poll_at: "2026-01-01T11:59:58Z",
  last_ok_at: "2026-01-01T11:59:58Z",
  error: null,
  node: null,
  devices: [],
  harnesses: [],
  models: [],
  ...fields,
});

const snapshot = (nodes: FleetNode[]): FleetSnapshot => ({
  taken_at: "2026-01-01T12:00:00Z",
  nodes,
});

const profile = (
  id: string,
  aliases: string[] = [],
  vram: Partial<CatalogueVram> = {},
): CatalogueReportModel =>
  ({
    id,
    aliases,
    vram_mb: vram.effective_mb === undefined ? 6000 : vram.effective_mb,
    vram: {
      declared_mb: 6000,
      estimated_mb: null,
      observed_mb: null,
      effective_mb: 6000,
      ...vram,
    },
    vram_flag: vramFlag(vram.declared_mb ?? 6000, vram.observed_mb ?? null),
  }) as unknown as CatalogueReportModel;

describe("formatTable", () => {
  it("aligns columns and trims trailing spaces", () => {
    expect(
      formatTable(
        ["A", "LONGER"],
        [
          ["wide value", "x"],
          ["b", ""],
        ],
      ),
    ).toBe(["A           LONGER", "wide value  x", "b"].join("\n"));
  });
});

describe("small formatters", () => {
  it.each([
    [null, "never"],
    ["2026-01-01T11:59:48Z", "12s ago"],
    ["2026-01-01T11:55:00Z", "5m ago"],
    ["2026-01-01T09:00:00Z", "3h ago"],
    ["2025-12-30T12:00:00Z", "2d ago"],
    ["2026-01-01T12:00:03Z", "in 3s"],
  ])("formatAgo(%s) = %s", (iso, text) => expect(formatAgo(iso, NOW)).toBe(text));

  it.each([
    [512, "512 MB"],
    [24_576, "24.0 GB"],
  ])("formatMb(%d) = %s", (mb, text) => expect(formatMb(mb)).toBe(text));

  it.each([
    [0, "0 B"],
    [1536, "1.5 KiB"],
    [3 * 1024 ** 3, "3.0 GiB"],
  ])("formatBytes(%d) = %s", (bytes, text) => expect(formatBytes(bytes)).toBe(text));

  it.each([
    [850, "850 ms"],
    [12_340, "12.3 s"],
    [245_000, "4m 05s"],
  ])("formatDuration(%d) = %s", (ms, text) => expect(formatDuration(ms)).toBe(text));

  it.each([
    [{ phase: "queued", bytes: null, total: null }, "queued"],
    [{ phase: "downloading", bytes: 2048, total: null }, "downloading 2.0 KiB"],
    [{ phase: "downloading", bytes: 512, total: 2048 }, "downloading 512 B / 2.0 KiB (25%)"],
  ])("progressText(%o) = %s", (progress, text) => expect(progressText(progress)).toBe(text));

  it.each([
    ["30s", "2026-01-01T11:59:30.000Z"],
    ["15m", "2026-01-01T11:45:00.000Z"],
    ["2h", "2026-01-01T10:00:00.000Z"],
    ["1d", "2025-12-31T12:00:00.000Z"],
    ["2025-06-15T12:00:00Z", "2025-06-15T12:00:00Z"],
    ["yesterday", undefined],
    ["2025-13-45T99:00:00Z", undefined],
  ])("parseSince(%s) = %s", (value, iso) => expect(parseSince(value, NOW)).toBe(iso));
});

describe("formatStatus", () => {
  it("shows nodes, GPUs with used/total VRAM and resident models", () => {
    const text = formatStatus(
      snapshot([
        node("gpu-a", {
          devices: [device(0, 24_576, 16_384)],
          models: [model("qwen3-8b", { in_flight: 2 })],
        }),
        node("gpu-b", {
          healthy: false,
          consecutive_failures: 3,
          last_poll_at: null,
          error: "connect ECONNREFUSED",
        }),
      ]),
      NOW,
    );
    expect(text).toBe(
      [
        "NODE   HEALTH                LAST POLL  HOST  ERROR",
        "gpu-a  healthy               2s ago     -     -",
        "gpu-b  unhealthy (3 failed)  never      -     connect ECONNREFUSED",
        "",
        "NODE   GPU  NAME      VRAM USED               UTIL  TEMP",
        "gpu-a  0    RTX 4090  8.0 GB / 24.0 GB (33%)  37%   61°C",
        "",
        "NODE   MODEL     STATUS  VRAM    GPUS  IN-FLIGHT  QUEUED  ERROR",
        "gpu-a  qwen3-8b  loaded  6.0 GB  0     2/4        0       -",
      ].join("\n"),
    );
  });

  it("adds DRAIN and LABELS once some node is drained or labelled", () => {
    const text = formatStatus(
      {
        nodes: [
          { ...node("gpu-a", { labels: { gpu: "a100", zone: "eu" } }), drain: "draining" },
          { ...node("gpu-b"), drain: null },
        ],
      },
      NOW,
    );
    expect(text.split("\n").slice(0, 3)).toEqual([
      "NODE   HEALTH   DRAIN     LAST POLL  HOST  LABELS            ERROR",
      "gpu-a  healthy  draining  2s ago     -     gpu=a100,zone=eu  -",
      "gpu-b  healthy  -         2s ago     -     -                 -",
    ]);
  });

  it("says so when there are no neurons", () => {
    expect(formatStatus(snapshot([]), NOW)).toBe("no neurons configured");
  });
});

describe("modelRows and formatModels", () => {
  const fleet = snapshot([
    node("a", { models: [model("chat", { status: "loading" }), model("manual")] }),
    node("b", { models: [model("chat")] }),
    node("c", { healthy: false, models: [model("chat", { status: "failed" })] }),
  ]);
  const rows = modelRows(fleet, [profile("chat", ["small"]), profile("idle")]);

  it("merges catalogue and residents; the best healthy status wins", () => {
    expect(rows.map((row) => [row.id, row.status, row.in_catalogue])).toEqual([
      ["chat", "loaded", true],
      ["idle", "available", true],
      ["manual", "loaded", false],
    ]);
    expect(rows[0]?.locations.map((at) => `${at.node}:${at.status}`)).toEqual([
      "a:loading",
      "b:loaded",
      "c:failed",
    ]);
  });

  it("formats locations and flags unhealthy nodes", () => {
    const text = formatModels(rows);
    expect(text.split("\n")[0]).toMatch(
      /^MODEL\s+STATUS\s+LOCATIONS\s+VRAM\s+DECLARED\s+ESTIMATED\s+OBSERVED\s+ALIASES\s+SOURCE$/,
    );
    expect(text).toContain("a:loading, b:loaded, c:failed (node unhealthy)");
    expect(text).toMatch(/idle\s+available\s+-\s+5\.9 GB\s+5\.9 GB\s+-\s+-\s+-\s+catalogue/);
    expect(text).toMatch(/manual\s+loaded\s+a:loaded\s+-\s+-\s+-\s+-\s+-\s+loaded by hand/);
  });

  it("shows declared, estimated and observed memory, flagging a declared figure far off", () => {
    const memory = modelRows(snapshot([]), [
      profile("off", [], { declared_mb: 10_240, observed_mb: 20_480, effective_mb: 21_504 }),
      profile("estimated", [], { declared_mb: null, estimated_mb: 5120, effective_mb: 5120 }),
      profile("waiting", [], { declared_mb: null, effective_mb: null }),
    ]);
    expect(memory[0]).toMatchObject({
      id: "estimated",
      vram: { declared_mb: null, estimated_mb: 5120, observed_mb: null, effective_mb: 5120 },
      vram_flag: null,
    });
    const lines = formatModels(memory).split("\n");
    expect(lines[1]).toMatch(/^estimated\s+available\s+-\s+5\.0 GB\s+-\s+5\.0 GB\s+-\s+-/);
    expect(lines[2]).toMatch(
      /^off\s+available\s+-\s+21\.0 GB\s+10\.0 GB \(off -50%\)\s+-\s+20\.0 GB/,
    );
    expect(lines[3]).toMatch(/^waiting\s+available\s+-\s+estimating\s+-\s+-\s+-/);
  });

  it("lists the catalogue's problems after the table, and nothing when there are none", () => {
    expect(formatCatalogueProblems([])).toBe("");
    expect(
      formatCatalogueProblems([
        { file: "catalogue/models.yaml", path: "models[1].vram_mb", message: "required: …" },
      ]),
    ).toBe("catalogue problems:\n  catalogue/models.yaml: models[1].vram_mb: required: …");
  });
});

describe("answers and events", () => {
  it("formats load and unload answers", () => {
    const answer = {
      model: "m",
      node: "a",
      status: "loaded" as const,
      url: "http://a:1",
      load_ms: 5120,
      already_loaded: false,
      evicted: [{ node: "a", model: "old" }],
    };
    expect(formatLoadAnswer(answer)).toBe(
      "loaded m on a in 5.1 s (http://a:1); evicted old from a",
    );
    expect(formatLoadAnswer({ ...answer, already_loaded: true })).toBe(
      "m is already loaded on a (http://a:1)",
    );
    expect(formatUnloadAnswer({ model: "m", status: "unloaded", nodes: ["a", "b"] })).toBe(
      "unloaded m from a, b",
    );
    expect(formatUnloadAnswer({ model: "m", status: "unloaded", nodes: [] })).toBe(
      "m was not loaded anywhere",
    );
  });

  it.each([
    [{ type: "node_health", node: "a", healthy: false, error: "timeout" }, "a unhealthy: timeout"],
    [
      { type: "model_state", node: "a", model: "m", from: null, to: "loading" },
      "m on a: absent -> loading",
    ],
    [
      { type: "load_started", node: "a", model: "m", evicting: [{ node: "a", model: "o" }] },
      "m on a (evicting o on a)",
    ],
    [
      { type: "load_progress", node: "a", model: "m", phase: "starting", bytes: null, total: null },
      "m on a: starting",
    ],
    [{ type: "load_finished", node: "a", model: "m", load_ms: 1500 }, "m on a in 1.5 s"],
    [{ type: "load_failed", node: "a", model: "m", error: "oom" }, "m on a: oom"],
    [{ type: "evicted", node: "a", model: "m" }, "m from a"],
    [{ type: "catalogue_reloaded", models: 3, error: null }, "3 models"],
    [{ type: "node_draining", node: "a" }, "a: no new requests; its models unload once idle"],
    [{ type: "node_drained", node: "a" }, "a: nothing resident"],
    [{ type: "node_resumed", node: "a" }, "a: back in service"],
  ] as const)("formatEvent(%o) ends with %s", (event, text) => {
    const line = formatEvent({ at: "2026-01-01T12:00:00Z", ...event } as never);
    expect(line.startsWith(`2026-01-01T12:00:00Z  ${event.type}`)).toBe(true);
    expect(line.endsWith(`  ${text}`)).toBe(true);
  });

  it.each([
    [
      401,
      '{"error":{"message":"missing or wrong bearer token","code":"invalid_api_key"}}',
      "missing or wrong bearer token (invalid_api_key, HTTP 401)",
    ],
    [502, "<html>bad gateway</html>", "<html>bad gateway</html> (HTTP 502)"],
    [500, "", "HTTP 500"],
  ])("errorMessageOf(%d, %s)", (status, body, message) =>
    expect(errorMessageOf(status, body)).toBe(message),
  );

  it.each([
    [true, "cortex at http://c:1 refused the admin token (HTTP 401)"],
    [false, "cortex at http://c:1 needs its admin token (HTTP 401)"],
  ])("unauthorizedMessage(token sent: %s) says how to pass the admin token", (sent, start) => {
    const message = unauthorizedMessage("http://c:1", sent);
    expect(message.startsWith(start)).toBe(true);
    expect(message).toContain("--token <token> or in CORTEX_ADMIN_TOKEN");
    expect(message).not.toContain("invalid_api_key");
  });
});
