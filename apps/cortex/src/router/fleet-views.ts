import { type FleetSnapshot, RESIDENT_STATUSES } from "@cortex/protocol";
import { indexSnapshot, splitReplicaKey } from "@cortex/routing";

// Small questions about the fleet snapshot the router asks in more than one place.

/**
 * The healthy nodes holding a replica of `model` that serves or will (a resident status): what
 * `min_replicas` and `max_replicas` count.
 */
export const servingReplicas = (snapshot: FleetSnapshot, model: string): FleetSnapshot["nodes"] =>
  snapshot.nodes.filter(
    (node) =>
      node.healthy &&
      node.models.some((entry) => entry.id === model && RESIDENT_STATUSES.has(entry.status)),
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
