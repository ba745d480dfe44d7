import type { Catalogue } from "@cortex/catalogue";
import { bodyBudgetFor, type FastHandler } from "@cortex/http-kit";
import type { CortexConfig } from "@cortex/protocol";
import type { FleetStore } from "../fleet/fleet-store.js";
import type { Log } from "../log.js";
import { loopbackUrl } from "../ollama/loopback.js";
import { type OllamaRoutes, ollamaRoutes } from "../ollama/routes.js";
import type { Dispatcher } from "../router/dispatcher.js";
import type { ModelActions } from "../router/model-actions.js";
import { type OpenAIRoutes, openAIRoutes, type RequestRecord } from "./openai-routes.js";
import { upstreamRoute } from "./upstream-route.js";

// What clients talk to, built from cortex's parts in one place: the OpenAI surface (the hot
// path), `/upstream/{model}/…` and Ollama's API, under one budget for the bodies they hold.

export interface ClientRoutesOptions {
  readonly config: CortexConfig;
  readonly version: string;
  readonly startedAtMs: number;
  readonly dispatcher: Dispatcher;
  readonly store: FleetStore;
  /** The catalogue routing reads (effective GPU memory figures). */
  readonly catalogue: () => Catalogue;
  /** The catalogue as listings show it (a figure still being estimated: 0, not infinity). */
  readonly listed: () => Catalogue;
  readonly actions: ModelActions;
  /** The neuron token to send to a node. */
  readonly tokenOf: (node: string) => string;
  /** A request to the node failed to connect or timed out: poll it now. */
  readonly suspect: (node: string, why: string) => void;
  readonly record: (record: RequestRecord) => void;
  readonly log: Log;
}

export interface ClientRoutes {
  readonly openai: OpenAIRoutes;
  readonly upstream: FastHandler;
  readonly ollama: OllamaRoutes;
  /** Cortex listens at `host:port`: Ollama's routes reach its OpenAI endpoint there. */
  readonly listening: (host: string, port: number) => void;
}

export const clientRoutes = (options: ClientRoutesOptions): ClientRoutes => {
  const { config, dispatcher, store, catalogue, tokenOf, suspect, record } = options;
  // One budget for the bodies of inference, `/upstream/` and Ollama requests together.
  const bodyBudget = bodyBudgetFor(config.max_buffered_mb);
  const bodyLimitBytes = config.max_body_mb * 2 ** 20;
  const openai = openAIRoutes({
    dispatcher,
    snapshot: () => store.snapshot,
    catalogue,
    apiKeys: config.api_keys,
    tokenOf,
    suspect,
    streamIdleTimeoutMs: config.stream_idle_timeout_ms,
    loadTimeoutMs: config.load_timeout_ms,
    record,
    startedS: Math.floor(options.startedAtMs / 1000),
    subscribe: (listener) => store.subscribe(listener),
    bodyLimitBytes,
    bodyBudget,
    clientStallTimeoutMs: config.client_stall_timeout_ms,
  });
  const upstream = upstreamRoute({
    acquire: (model, signal, excluded) => dispatcher.acquire(model, signal, excluded),
    snapshot: () => store.snapshot,
    catalogue,
    apiKeys: config.api_keys,
    tokenOf,
    suspect,
    streamIdleTimeoutMs: config.stream_idle_timeout_ms,
    loadTimeoutMs: config.load_timeout_ms,
    record,
    bodyLimitBytes,
    bodyBudget,
    clientStallTimeoutMs: config.client_stall_timeout_ms,
  });
  // Ollama's inference routes go through cortex's own OpenAI endpoint, at its address once
  // it listens.
  let selfUrl: string | undefined;
  const ollama = ollamaRoutes({
    version: options.version,
    startedAtMs: options.startedAtMs,
    apiKeys: config.api_keys,
    snapshot: () => store.snapshot,
    catalogue: options.listed,
    selfUrl: () => selfUrl,
    load: (model) => options.actions.load({ model }),
    unload: (model) => options.actions.unload({ model }),
    log: options.log,
    bodyLimitBytes,
    bodyBudget,
  });
  return {
    openai,
    upstream,
    ollama,
    listening: (host, port) => {
      selfUrl = loopbackUrl(host, port);
    },
  };
};
