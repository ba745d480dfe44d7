import type { FleetAnswer } from "@cortex/protocol";
import { type CtlContext, printJson } from "../context.js";
import { formatTable } from "../tables.js";

/** One `cortexctl nodes` row: how cortex reaches the node, how it came, and how it is. */
export interface NodeRow {
  readonly name: string;
  readonly url: string;
  readonly origin: "static" | "joined";
  readonly health: string;
  readonly drain: string | null;
  readonly labels: Readonly<Record<string, string>>;
}

/** The rows of `cortexctl nodes` from `GET /api/fleet`. */
export const nodeRows = (fleet: FleetAnswer): NodeRow[] =>
  fleet.nodes.map((node) => ({
    name: node.name,
    url: node.url,
    origin: node.origin,
    health: node.healthy ? "healthy" : node.error ? `unhealthy: ${node.error}` : "unhealthy",
    drain: node.drain,
    labels: node.labels ?? {},
  }));

/** The node table, or a line saying the fleet is empty. */
export const formatNodes = (rows: readonly NodeRow[]): string =>
  rows.length === 0
    ? "no nodes: cortex.yaml lists none and none has joined"
    : formatTable(
        ["NODE", "URL", "ORIGIN", "HEALTH", "DRAIN", "LABELS"],
        rows.map((row) => [
          row.name,
          row.url,
          row.origin,
          row.health,
          row.drain ?? "-",
          Object.entries(row.labels)
            .map(([key, value]) => `${key}=${value}`)
            .join(",") || "-",
        ]),
      );

/** `cortexctl nodes`: every node, static and joined. */
export const nodesCommand = async (context: CtlContext): Promise<void> => {
  const rows = nodeRows(await context.client.fleet());
  if (context.json) printJson(context, rows);
  else context.print(formatNodes(rows));
};

/** `cortexctl nodes rm NAME`: forgets a joined node (a static one is cortex.yaml's to remove). */
export const removeNodeCommand = async (context: CtlContext, node: string): Promise<void> => {
  const answer = await context.client.removeNode(node);
  if (context.json) printJson(context, answer);
  else context.print(`${answer.name} removed: cortex polls it no more (it may join again)`);
};
