import type { CatalogueEntry, EstimateRequest, FleetSnapshot } from "@cortex/protocol";
import { holding, selectorMatches, toLoadRequest } from "@cortex/routing";

// What an estimate asks and whom: the load request the entry's cold load would send (the
// routing package builds it, so the estimate answers for exactly that load), and the nodes
// that could run it, those holding its weights first.

/**
 * `POST /models/estimate`'s body for an entry: its load request without `devices` (the neuron
 * then estimates for `tensor_parallel` GPUs, as a load would get) and without `vram_mb` (the
 * figure being estimated).
 */
export const estimateRequest = (entry: CatalogueEntry): EstimateRequest => {
  const {
    devices: _devices,
    vram_mb: _vram,
    ...request
  } = toLoadRequest(
    { ...entry, vram_mb: 0, min_device_vram_mb: 0 },
    {
      node: "",
      url: "",
      devices: [],
      tensor_parallel: entry.runs_on === "cpu" ? 1 : entry.min_devices,
      evict: [],
    },
  );
  return request;
};

/**
 * Healthy nodes that could load the entry (its harness, its `pinned_on`, its `node_selector`, and for a `path`
 * source a node not known to lack the file), best first: those holding the weights (the header
 * is read from disk), then those with enough GPUs, then by name for a stable order.
 */
export const estimateNodes = (entry: CatalogueEntry, snapshot: FleetSnapshot): string[] =>
  snapshot.nodes
    .filter(
      (node) =>
        node.healthy &&
        (entry.pinned_on.length === 0 || entry.pinned_on.includes(node.name)) &&
        selectorMatches(entry, node) &&
        node.harnesses.some((harness) => harness.name === entry.harness),
    )
    .map((node) => {
      const held = holding(node, entry.source);
      return {
        name: node.name,
        held,
        enough: entry.runs_on === "cpu" || node.devices.length >= entry.min_devices,
      };
    })
    // A node known not to hold a local file cannot read it; one lacking a download reads its
    // header over HTTP like any other.
    .filter((node) => node.held !== "missing" || !isPathSource(entry.source))
    .sort(
      (a, b) =>
        Number(b.held === "held") - Number(a.held === "held") ||
        Number(b.enough) - Number(a.enough) ||
        (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    )
    .map((node) => node.name);

/** A source the neuron reads from its own disk (never downloads). */
const isPathSource = (source: string): boolean =>
  !source.startsWith("hf:") && !/^https?:\/\//i.test(source);
