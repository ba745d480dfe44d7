import type {
  ApiLoadAnswer,
  ApiUnloadAnswer,
  CatalogueReportModel,
  FleetAnswer,
} from "@cortex/protocol";
import { useState } from "preact/hooks";
import { type AdminClient, describeFailure } from "../api/client.js";
import { formatMs } from "../lib/format.js";
import { type LoadsInFlight, loadsOf, percentDone } from "../lib/load-progress.js";
import { memoryFigures } from "../lib/memory-figures.js";
import {
  type LoadTarget,
  lastUsedText,
  loadTargets,
  type ModelRow,
  modelRows,
} from "../lib/model-rows.js";
import { Dialog } from "./dialog.js";
import { useModelColor } from "./model-colors.js";

type Pending =
  | { readonly kind: "load"; readonly model: string }
  | { readonly kind: "unload"; readonly model: string; readonly node: string | null };

interface Notice {
  readonly id: number;
  readonly tone: "good" | "bad";
  readonly text: string;
}

const ANYWHERE = "";

export const ModelsView = ({
  client,
  fleet,
  catalogue,
  loads,
  now,
  refresh,
}: {
  client: AdminClient;
  fleet: FleetAnswer | null;
  catalogue: readonly CatalogueReportModel[];
  loads: LoadsInFlight;
  now: number;
  refresh: () => void;
}) => {
  const rows = modelRows(fleet, catalogue);
  const [pending, setPending] = useState<Pending | null>(null);
  const [node, setNode] = useState(ANYWHERE);
  const [force, setForce] = useState(false);
  const [running, setRunning] = useState<ReadonlySet<string>>(new Set());
  const [notices, setNotices] = useState<readonly Notice[]>([]);

  const notify = (tone: Notice["tone"], text: string) =>
    setNotices((list) => [{ id: Date.now() + Math.random(), tone, text }, ...list].slice(0, 4));

  const track = async (key: string, work: () => Promise<void>) => {
    setRunning((set) => new Set(set).add(key));
    try {
      await work();
    } finally {
      setRunning((set) => {
        const next = new Set(set);
        next.delete(key);
        return next;
      });
      refresh();
    }
  };

  const confirm = () => {
    if (pending === null) return;
    const action = pending;
    setPending(null);
    if (action.kind === "load") {
      const target = node === ANYWHERE ? undefined : node;
      void track(`load:${action.model}`, async () => {
        try {
          const answer = await client.post<ApiLoadAnswer>("/api/models/load", {
            model: action.model,
            ...(target === undefined ? {} : { node: target }),
          });
          const evicted =
            answer.evicted.length > 0
              ? `, evicting ${answer.evicted.map((e) => `${e.model} on ${e.node}`).join(", ")}`
              : "";
          notify(
            "good",
            answer.already_loaded
              ? `${answer.model} was already loaded on ${answer.node}`
              : `${answer.model} loaded on ${answer.node} in ${formatMs(answer.load_ms)}${evicted}`,
          );
        } catch (error) {
          notify("bad", `Loading ${action.model} failed: ${describeFailure(error)}`);
        }
      });
    } else {
      void track(`unload:${action.model}`, async () => {
        try {
          const answer = await client.post<ApiUnloadAnswer>("/api/models/unload", {
            model: action.model,
            ...(action.node === null ? {} : { node: action.node }),
            ...(force ? { force: true } : {}),
          });
          notify("good", `${answer.model} unloaded from ${answer.nodes.join(", ")}`);
        } catch (error) {
          notify("bad", `Unloading ${action.model} failed: ${describeFailure(error)}`);
        }
      });
    }
  };

  const nodes = fleet?.nodes ?? [];
  const targetsOf = (row: ModelRow | undefined) => (row ? loadTargets(row, nodes) : []);
  const pendingTargets =
    pending?.kind === "load" ? targetsOf(rows.find((r) => r.id === pending.model)) : [];

  return (
    <section aria-label="Models">
      <div class="notices" aria-live="polite">
        {notices.map((notice) => (
          <p
            key={notice.id}
            class={`banner banner-${notice.tone}`}
            role={notice.tone === "bad" ? "alert" : "status"}
            data-testid="notice"
          >
            {notice.text}
            <button
              type="button"
              class="link"
              aria-label="Dismiss"
              onClick={() => setNotices((list) => list.filter((n) => n.id !== notice.id))}
            >
              ×
            </button>
          </p>
        ))}
      </div>
      <table class="table models" aria-label="Models">
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">Catalogue</th>
            <th scope="col">State per node</th>
            <th scope="col" class="num">
              In flight / queued
            </th>
            <th scope="col">Last used</th>
            <th scope="col" class="actions">
              Actions
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                The catalogue is empty and nothing is loaded.
              </td>
            </tr>
          )}
          {rows.map((row) => (
            <ModelRowView
              key={row.id}
              row={row}
              loads={loads}
              now={now}
              running={running}
              targets={targetsOf(row)}
              onLoad={() => {
                // The first choice that can be taken: anywhere, or the first node without it.
                const first = targetsOf(row).find((target) => target.disabled === null);
                setNode(first?.node ?? ANYWHERE);
                setPending({ kind: "load", model: row.id });
              }}
              onUnload={(at) => {
                setForce(false);
                setPending({ kind: "unload", model: row.id, node: at });
              }}
            />
          ))}
        </tbody>
      </table>
      {pending?.kind === "load" && (
        <Dialog
          title={`Load ${pending.model}?`}
          confirmLabel="Load"
          busy={false}
          onConfirm={confirm}
          onCancel={() => setPending(null)}
        >
          <label for="load-node">Where</label>
          <select
            id="load-node"
            data-testid="load-node"
            value={node}
            onChange={(event) => setNode(event.currentTarget.value)}
          >
            {pendingTargets.map((target) => (
              <option
                key={target.node ?? ANYWHERE}
                value={target.node ?? ANYWHERE}
                disabled={target.disabled !== null}
              >
                {target.node ?? "Anywhere (cortex places it)"}
                {target.disabled === null ? "" : ` (${target.disabled})`}
              </option>
            ))}
          </select>
          <p class="small muted">
            Cortex may evict idle models of equal or lower priority to make room. The load runs
            until the model answers; progress shows in the table.
          </p>
        </Dialog>
      )}
      {pending?.kind === "unload" && (
        <Dialog
          title={`Unload ${pending.model}${pending.node === null ? " everywhere" : ` from ${pending.node}`}?`}
          confirmLabel="Unload"
          danger
          busy={false}
          onConfirm={confirm}
          onCancel={() => setPending(null)}
        >
          <p class="small">Requests for it will load it again (a cold start).</p>
          <label class="check">
            <input
              type="checkbox"
              checked={force}
              onChange={(event) => setForce(event.currentTarget.checked)}
            />
            Even with requests in flight (force)
          </label>
        </Dialog>
      )}
    </section>
  );
};

const ModelRowView = ({
  row,
  loads,
  now,
  running,
  targets,
  onLoad,
  onUnload,
}: {
  row: ModelRow;
  loads: LoadsInFlight;
  now: number;
  running: ReadonlySet<string>;
  /** Where Load may put it; none enabled: it is already loaded everywhere it can run. */
  targets: readonly LoadTarget[];
  onLoad: () => void;
  onUnload: (node: string | null) => void;
}) => {
  const modelColor = useModelColor();
  const profile = row.profile;
  const memory = profile === null ? null : memoryFigures(profile);
  const progress = loadsOf(loads, row.id);
  const loadRunning = running.has(`load:${row.id}`);
  const unloadRunning = running.has(`unload:${row.id}`);
  const nowhere = !targets.some((target) => target.disabled === null);
  return (
    <tr data-testid="model-row" data-model={row.id} data-status={row.status}>
      <th scope="row">
        <span class="swatch" style={{ background: modelColor(row.id) }} aria-hidden="true" />
        <span class="model-id">{row.id}</span>
        {profile !== null && profile.aliases.length > 0 && (
          <div class="small muted">{profile.aliases.join(", ")}</div>
        )}
      </th>
      <td class="small">
        {profile === null || memory === null ? (
          <span class="muted">not in the catalogue</span>
        ) : (
          <>
            <div title="the GPU memory cortex places it by">
              {profile.harness} · {memory.effective}
            </div>
            {memory.known !== "" && (
              <div class="muted" data-testid="model-memory">
                {memory.known}
              </div>
            )}
            {memory.flag !== null && (
              <div class="bad" role="note" data-testid="model-memory-flag">
                {memory.flag}
              </div>
            )}
            {profile.pinned_on.length > 0 && (
              <div class="muted">pinned on {profile.pinned_on.join(", ")}</div>
            )}
          </>
        )}
      </td>
      <td>
        <div class="placements">
          {row.placements.length === 0 && !progress.some((p) => p.error === null) && (
            <span class="chip state-available" data-testid="model-state" data-status="available">
              not resident
            </span>
          )}
          {row.placements.map((placement) => (
            <span
              key={placement.node}
              class={`chip state-${placement.model.status}`}
              title={placement.model.error ?? undefined}
              data-testid="model-state"
              data-node={placement.node}
              data-status={placement.model.status}
            >
              {placement.node} · {placement.model.status}
              {placement.model.devices.length > 0 && (
                <span class="muted"> · GPU {placement.model.devices.join(",")}</span>
              )}
            </span>
          ))}
        </div>
        {progress.map((load) => {
          const pct = percentDone(load);
          const settled = row.placements.some(
            (p) => p.node === load.node && p.model.status === "loaded",
          );
          if (load.error !== null) {
            if (settled) return null;
            return (
              <p key={load.node} class="small bad" data-testid="load-error">
                load on {load.node} failed: {load.error}
              </p>
            );
          }
          return (
            <div key={load.node} class="load-line small" role="status" data-testid="load-progress">
              {load.node}: {load.phase}
              {pct !== null && ` ${pct} %`}
              <progress
                max={100}
                value={pct ?? undefined}
                aria-label={`loading ${row.id} on ${load.node}`}
              />
            </div>
          );
        })}
        {row.placements
          .filter((p) => p.model.status === "failed" && p.model.error !== null)
          .map((p) => (
            <p key={p.node} class="small bad">
              {p.node}: {p.model.error}
            </p>
          ))}
      </td>
      <td
        class="num"
        title="requests on the nodes, and (+n) those cortex holds for a slot or a swap"
      >
        {row.inFlight} / {row.queued}
        {row.waiting > 0 ? ` (+${row.waiting})` : ""}
      </td>
      <td
        class="small"
        title="the last request on a node where it is resident, counted since its load there"
        data-testid="last-used"
      >
        {lastUsedText(row, now)}
      </td>
      <td class="actions">
        <button
          type="button"
          disabled={profile === null || loadRunning || nowhere}
          title={
            profile === null
              ? "not in the catalogue: load it on the neuron itself"
              : nowhere
                ? "already loaded on every node it can run on"
                : undefined
          }
          aria-label={`Load ${row.id}`}
          data-testid="load-button"
          onClick={onLoad}
        >
          {loadRunning ? "Loading…" : "Load"}
        </button>
        <button
          type="button"
          class="danger-outline"
          disabled={row.placements.length === 0 || unloadRunning}
          aria-label={`Unload ${row.id}`}
          data-testid="unload-button"
          onClick={() =>
            onUnload(row.placements.length === 1 ? (row.placements[0]?.node ?? null) : null)
          }
        >
          {unloadRunning ? "Unloading…" : "Unload"}
        </button>
      </td>
    </tr>
  );
};
