import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type DiscoveryAnswer,
  ERROR_CODES,
  errorEnvelope,
  LoadRequest,
  UnloadRequest,
} from "@cortex/protocol";
import type { FakeEstimates } from "./estimate.js";
import { handleEvents } from "./events.js";
import { FakeError, invalidBody, json, readJson } from "./http.js";
import { isModelRouted } from "./inference.js";
import type { ModelRegistry } from "./model-registry.js";
import { handleUpstream } from "./upstream.js";

// The fake neuron's HTTP API, like apps/neuron/src/api: health, discovery, models, load (with
// SSE progress), unload, estimate, a model's endpoint and logs; `POST /v1/*` goes to `inference`.

export interface RoutesOptions {
  /** The neuron's name, as discovery reports it. */
  readonly name: string;
  /** Bearer token every route but /health requires; empty: no auth. */
  readonly token: string;
  readonly startedAt: number;
  readonly registry: ModelRegistry;
  /** Answers `POST /models/estimate` from the table tests script. */
  readonly estimates: FakeEstimates;
  readonly inference: (req: IncomingMessage, res: ServerResponse, path: string) => Promise<void>;
  /** Where the neuron is reached now, for `/models/{id}/endpoint`. */
  readonly selfUrl: () => string;
  /** neuron.yaml `labels` for `/discovery`; absent: not reported. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Whether `GET /events` is served (false: 404, as a neuron from before it). */
  readonly events: boolean;
}

export interface FakeRoutes {
  /** Answers the request; throws a `FakeError` (or a bug) for the caller to answer. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Valid bodies received on `POST /models/load`, in order. */
  readonly loads: LoadRequest[];
  /** Valid bodies received on `POST /models/unload`, in order. */
  readonly unloads: UnloadRequest[];
}

export const createRoutes = (options: RoutesOptions): FakeRoutes => {
  const { name, token, startedAt, registry, estimates, inference, selfUrl } = options;
  const loads: LoadRequest[] = [];
  const unloads: UnloadRequest[] = [];

  const handleLoad = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readJson(req);
    if (body === undefined)
      throw new FakeError("invalid_request_error", "the request body is not valid JSON");
    const parsed = LoadRequest.safeParse(body);
    if (!parsed.success) throw invalidBody(parsed.error.issues);
    loads.push(parsed.data);
    if (!(req.headers.accept ?? "").includes("text/event-stream")) {
      json(res, 200, await registry.load(parsed.data));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
    res.flushHeaders();
    const send = (event: string, data: unknown) => {
      if (!res.destroyed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    try {
      send("result", await registry.load(parsed.data, (progress) => send("progress", progress)));
    } catch (error) {
      const known = error instanceof FakeError ? error : new FakeError("internal_error", "bug");
      send("error", {
        ...errorEnvelope(known.code, known.message, known.param),
        status: ERROR_CODES[known.code].status,
      });
    }
    res.end();
  };

  const handleUnload = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readJson(req);
    if (body === undefined)
      throw new FakeError("invalid_request_error", "the request body is not valid JSON");
    const parsed = UnloadRequest.safeParse(body);
    if (!parsed.success) throw invalidBody(parsed.error.issues);
    unloads.push(parsed.data);
    await registry.unload(parsed.data.model_id, parsed.data.force);
    json(res, 200, { status: "unloaded" });
  };

  const discovery = (): DiscoveryAnswer => ({
    node: {
      name,
      hostname: name,
      os: "Linux",
      kernel: "fake",
      cpu: "fake cpu",
      memory_mb: 65_536,
    },
    devices: registry.devicesNow(),
    harnesses: [...registry.harnesses],
    ...(options.labels === undefined ? {} : { labels: { ...options.labels } }),
  });

  const authorized = (req: IncomingMessage): boolean =>
    token === "" || req.headers.authorization === `Bearer ${token}`;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = req.url ?? "/";
    const query = url.indexOf("?");
    const path = query < 0 ? url : url.slice(0, query);
    const method = req.method ?? "GET";
    if (method === "GET" && path === "/health") {
      json(res, 200, { status: "ok", version: "fake", uptime_s: (Date.now() - startedAt) / 1000 });
      return;
    }
    if (!authorized(req)) throw new FakeError("invalid_api_key", "missing or wrong bearer token");
    if (method === "GET" && path === "/discovery") return json(res, 200, discovery());
    if (method === "GET" && path === "/models") return json(res, 200, registry.models());
    if (method === "GET" && path === "/events" && options.events)
      return handleEvents(registry.models, res);
    if (method === "POST" && path === "/models/load") return handleLoad(req, res);
    if (method === "POST" && path === "/models/unload") return handleUnload(req, res);
    if (method === "POST" && path === "/models/estimate") return estimates.handle(req, res);
    if (path.startsWith("/upstream/")) return handleUpstream(registry, req, res);
    const match = /^\/models\/([^/]+)\/(endpoint|logs)$/.exec(path);
    if (method === "GET" && match) {
      const id = decodeURIComponent(match[1] ?? "");
      const entry = registry.get(id);
      if (!entry) throw new FakeError("model_not_found", `model "${id}" is not on this node`);
      if (match[2] === "endpoint") return json(res, 200, { url: selfUrl() });
      const text = `fake harness output for ${id}\n`;
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end(text);
      return;
    }
    if (isModelRouted(method, path)) return inference(req, res, path);
    throw new FakeError("not_found", `no route for ${method} ${path}`);
  };

  return { handle, loads, unloads };
};
