import { type Catalogue, resolveModelName } from "@cortex/catalogue";
import type { FleetSnapshot } from "@cortex/protocol";
import { indexSnapshot } from "@cortex/routing";
import type { RequestRecord } from "../api/openai-routes.js";
import type { Log } from "../log.js";
import type { RequestLogEntry } from "../state/request-log.js";
import type { CortexMetrics } from "./metrics.js";

export interface RequestAccountingOptions {
  readonly metrics: Pick<CortexMetrics, "observeRequest" | "coldStart">;
  readonly requestLog: { record(entry: RequestLogEntry): void };
  readonly log: Pick<Log, "debug" | "warn">;
  readonly catalogue: () => Catalogue;
  readonly snapshot: () => FleetSnapshot;
}

/**
 * What happens to every finished client request: its metrics, its row in the request log and,
 * at debug level, its log line (failures at warn). Never throws into the request path's caller
 * beyond what its parts throw; the request log is written behind.
 */
export const requestAccounting = (
  options: RequestAccountingOptions,
): ((entry: RequestRecord) => void) => {
  const { metrics, requestLog, log } = options;
  // Metrics label models only by ids cortex knows, so a client cannot grow the label set.
  const knownModel = (model: string | null): string => {
    if (model === null) return "none";
    if (resolveModelName(options.catalogue(), model)) return model;
    // The snapshot's index is built once per snapshot: no scan of the fleet per request.
    return indexSnapshot(options.snapshot()).byModel.has(model) ? model : "unknown";
  };
  return (entry) => {
    const model = knownModel(entry.model);
    const node = entry.node ?? "none";
    metrics.observeRequest({
      model,
      node,
      status: entry.status,
      seconds: entry.latencyMs / 1000,
      ...(entry.ttftMs === null ? {} : { ttftSeconds: entry.ttftMs / 1000 }),
    });
    if (entry.coldStart && entry.node) metrics.coldStart(model, node);
    requestLog.record({
      at: entry.at,
      requestId: entry.requestId,
      model,
      node: entry.node,
      status: entry.status,
      latencyMs: entry.latencyMs,
      ttftMs: entry.ttftMs,
      promptTokens: entry.usage?.prompt_tokens ?? null,
      completionTokens: entry.usage?.completion_tokens ?? null,
      stream: entry.stream,
      coldStart: entry.coldStart,
      errorCode: entry.errorCode,
    });
    // One line per request, at debug level (a no-op at the default level); failures at warn.
    const line = {
      request_id: entry.requestId,
      model,
      node,
      status: entry.status,
      ms: Math.round(entry.latencyMs),
    };
    if (entry.status >= 500) log.warn(line, "request failed");
    else log.debug(line, "request");
  };
};
