import type { FleetSnapshot } from "@cortex/protocol";
import type { StreamState } from "../api/event-stream.js";

export const TABS = [
  { id: "fleet", label: "Fleet" },
  { id: "models", label: "Models" },
  { id: "traffic", label: "Traffic" },
  { id: "events", label: "Events" },
] as const;
export type Tab = (typeof TABS)[number]["id"];

const STREAM_TEXT: Record<StreamState, string> = {
  connecting: "connecting",
  open: "live",
  retrying: "reconnecting",
};

export const Header = ({
  tab,
  onTab,
  fleet,
  stream,
  onSignOut,
}: {
  tab: Tab;
  onTab: (tab: Tab) => void;
  fleet: FleetSnapshot | null;
  stream: { state: StreamState; detail: string | null };
  /** Null when cortex has no admin token: there is nothing to sign out of. */
  onSignOut: (() => void) | null;
}) => {
  const nodes = fleet?.nodes ?? [];
  const healthy = nodes.filter((node) => node.healthy).length;
  const gpus = nodes.reduce((sum, node) => sum + node.devices.length, 0);
  const loaded = new Set(
    nodes.flatMap((node) => node.models.filter((m) => m.status === "loaded").map((m) => m.id)),
  ).size;
  return (
    <header class="header">
      <div class="brand">
        <span class="logo" aria-hidden="true">
          ◆
        </span>
        Cortex
      </div>
      <div class="tabs" role="tablist" aria-label="Views">
        {TABS.map((entry) => (
          <button
            type="button"
            key={entry.id}
            id={`tab-${entry.id}`}
            role="tab"
            aria-selected={tab === entry.id}
            aria-controls={`panel-${entry.id}`}
            class={tab === entry.id ? "tab tab-active" : "tab"}
            data-testid={`tab-${entry.id}`}
            onClick={() => onTab(entry.id)}
          >
            {entry.label}
          </button>
        ))}
      </div>
      <div class="summary" data-testid="summary">
        <span class={healthy < nodes.length ? "bad" : ""}>
          {healthy}/{nodes.length} nodes healthy
        </span>
        <span>{gpus} GPUs</span>
        <span>{loaded} models loaded</span>
        <span
          class={`live live-${stream.state}`}
          role="status"
          title={stream.detail ?? "events stream"}
          data-testid="stream-state"
        >
          <span class="dot" aria-hidden="true" />
          {STREAM_TEXT[stream.state]}
        </span>
        {onSignOut !== null && (
          <button type="button" class="link" onClick={onSignOut} data-testid="sign-out">
            Sign out
          </button>
        )}
      </div>
    </header>
  );
};
