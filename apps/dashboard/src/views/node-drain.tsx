import type { ApiNodeDrainAnswer, FleetAnswerNode } from "@cortex/protocol";
import { useState } from "preact/hooks";
import { type AdminClient, describeFailure } from "../api/client.js";
import { Dialog } from "./dialog.js";

/** The badge a node's drain shows as; none while it is in service. */
export const DrainBadge = ({ drain }: { drain: FleetAnswerNode["drain"] }) =>
  drain === null ? null : (
    <span
      class={drain === "drained" ? "pill pill-info" : "pill pill-warn"}
      data-testid="node-drain"
      title={
        drain === "drained"
          ? "taken out: nothing resident, no requests"
          : "taken out: no new requests; its models unload once idle"
      }
    >
      {drain}
    </span>
  );

/** A node's labels (neuron.yaml), which catalogue node_selectors match. */
export const NodeLabels = ({ labels }: { labels: FleetAnswerNode["labels"] }) => {
  const pairs = Object.entries(labels ?? {});
  if (pairs.length === 0) return null;
  return (
    <span class="node-labels" data-testid="node-labels">
      {pairs.map(([key, value]) => (
        <span key={key} class="chip pill-info">
          {key}={value}
        </span>
      ))}
    </span>
  );
};

/**
 * Drain or Resume on a node card (the admin session's token, like every dashboard call). A
 * drain asks first: it takes the node out of service and unloads its models once idle. The
 * card shows the new state at the next refresh, which the action asks for.
 */
export const DrainButton = ({
  node,
  client,
  refresh,
}: {
  node: FleetAnswerNode;
  client: AdminClient;
  refresh: () => void;
}) => {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<string | null>(null);
  const act = async (action: "drain" | "resume") => {
    setAsking(false);
    setBusy(true);
    setFailure(null);
    try {
      await client.post<ApiNodeDrainAnswer>(
        `/api/nodes/${encodeURIComponent(node.name)}/${action}`,
        {},
      );
    } catch (error) {
      setFailure(
        `${action === "drain" ? "Draining" : "Resuming"} failed: ${describeFailure(error)}`,
      );
    } finally {
      setBusy(false);
      refresh();
    }
  };
  const out = node.drain !== null;
  return (
    <>
      <button
        type="button"
        class={out ? "node-drain primary" : "node-drain danger-outline"}
        disabled={busy}
        data-testid={out ? "resume-button" : "drain-button"}
        onClick={() => (out ? void act("resume") : setAsking(true))}
      >
        {out ? "Resume" : "Drain"}
      </button>
      {failure !== null && (
        <p class="small bad node-drain-error" role="alert">
          {failure}
        </p>
      )}
      {asking && (
        <Dialog
          title={`Drain ${node.name}?`}
          confirmLabel="Drain"
          danger
          busy={busy}
          onConfirm={() => void act("drain")}
          onCancel={() => setAsking(false)}
        >
          <p class="small">
            The node takes no new requests or loads. Requests already running finish; then its
            models unload and it shows as drained. Requests for models only there load them on
            another node, or are refused while none can run them. Resume puts it back.
          </p>
        </Dialog>
      )}
    </>
  );
};
