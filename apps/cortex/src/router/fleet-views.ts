import type { FleetSnapshot } from "@cortex/protocol";
import { indexSnapshot, splitReplicaKey } from "@cortex/routing";

// Small questions about the fleet snapshot the router asks in more than one place.

/** Statuses of a replica that serves or will: what `min_replicas` and `max_replicas` count. */
const SERVING = new Set(["loaded", "loading", "recovering"]);

/** The healthy nodes holding a serving replica of `model`. */
export const servingReplicas = (snapshot: FleetSnapshot, model: string): FleetSnapshot["nodes"] =>
  snapshot.nodes.filter(
    (node) =>
      node.healthy && node.models.some((entry) => entry.id === model && SERVING.has(entry.status)),
  );

/** Whether `key` (`replicaKey(node, model)`) names a loaded replica on a healthy node. */
export const isLoadedReplica = (snapshot: FleetSnapshot, key: string): boolean => {
  const replica = splitReplicaKey(key);
  const node = replica && indexSnapshot(snapshot).byNode.get(replica.node);
  return (
    node?.healthy === true &&
    node.models.some((entry) => entry.id === replica?.model && entry.status === "loaded")
  );
};
