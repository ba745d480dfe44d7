export {
  type Affinity,
  type AffinityPick,
  hash32,
  pickByAffinity,
  ringOf,
  ringWalk,
} from "./affinity.js";
export {
  CIRCUIT_FIRST_COOLDOWN_MS,
  CIRCUIT_MAX_COOLDOWN_MS,
  type Circuit,
  CLOSED,
  circuitAllows,
  circuitAt,
  circuitFailed,
  circuitSent,
  circuitSucceeded,
} from "./circuit.js";
export {
  busyOf,
  effectiveFree,
  type FleetIndex,
  indexSnapshot,
  loadOf,
  type MemoryView,
  modelLastUsedMs,
  type Replica,
  replicaKey,
  replicaLoad,
  splitReplicaKey,
} from "./fleet-index.js";
export { toLoadRequest } from "./load-request.js";
export {
  type Holding,
  holding,
  holdsWeights,
  missingWeights,
  type SourceFile,
  sourceFile,
} from "./locality.js";
export { isLoopbackHost, rewriteLoopback } from "./loopback.js";
export {
  drainOf,
  formatLabels,
  formatSelector,
  inService,
  selectorMatches,
  selectorMismatch,
} from "./node-fit.js";
export {
  chooseDevices,
  evictionCandidates,
  planPlacement,
  priorityOf,
  RETRY_AFTER_S,
  selectDevices,
} from "./placement.js";
export { type Pick, pickReplica } from "./replica.js";
export { resolve } from "./resolve.js";
export {
  nextSwap,
  type ResidentWork,
  type SwapAction,
  type SwapGroup,
  type SwapQueueState,
} from "./swap.js";
export { planSwap, type SwapPlan, swapBlockers } from "./swap-placement.js";
export { applyLoadPlan, withModel, withModelStatus, withoutModel } from "./transitions.js";
export type {
  Decision,
  DecisionKind,
  LiveState,
  LoadPlan,
  Reject,
  RoutingRequest,
} from "./types.js";
