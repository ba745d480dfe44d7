import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import {
  type Device,
  type DiscoveryAnswer,
  ERROR_CODES,
  type ErrorCode,
  errorEnvelope,
  type HarnessInfo,
  type LoadAnswer,
  type LoadProgress,
  LoadRequest,
  type ModelStatus,
  type NeuronModel,
  UnloadRequest,
} from "@cortex/protocol";
import { paddingOf, writeAndWait } from "./backpressure.js";
import { completionAnswer, embeddingAnswer, streamChunk } from "./fake-answers.js";

// A fake neuron for cortex tests and benchmarks: the neuron HTTP API of DESIGN.md on loopback,
// with models that "load" after a delay and answer inference like the fake harness. It is one
// plain node:http server with a few maps, so a benchmark can run hundreds in one process.

export interface FakeNeuronOptions {
  readonly name: string;
  /** Bearer token every route but /health requires; empty or absent: no auth. */
  readonly token?: string;
  readonly devices?: readonly Device[];
  readonly harnesses?: readonly HarnessInfo[];
  /** The models the neuron starts with. */
  readonly models?: readonly NeuronModel[];
  /** How long a load (or lazy reload) takes. */
  readonly loadDelayMs?: number;
  /** Delay before each inference answer and between stream chunks. */
  readonly latencyMs?: number;
  /** Chunks in a streamed inference answer. */
  readonly streamChunks?: number;
  /** Padding (an SSE comment of this many bytes) before each chunk, to make streams heavy. */
  readonly streamPaddingBytes?: number;
  /** Host in the URLs it reports (`/models/{id}/endpoint`, load answers); default `localhost`. */
  readonly endpointHost?: string;
}

export interface FakeNeuron {
  readonly name: string;
  /** `http://127.0.0.1:<port>`: where to reach it. */
  readonly url: string;
  readonly port: number;
  /** Valid bodies received on `POST /models/load`, in order. */
  readonly loads: LoadRequest[];
  /** Valid bodies received on `POST /models/unload`, in order. */
  readonly unloads: UnloadRequest[];
  /** Loads actually started per model id: fresh loads and lazy reloads, not joined ones. */
  readonly loadsStarted: Map<string, number>;
  /** `POST /v1/*` requests per model id (for known models). */
  readonly requests: Map<string, number>;
  /** Headers of the last `POST /v1/*` request. */
  readonly headers: IncomingHttpHeaders | null;
  /** Requests inside the neuron for this model right now, running plus queued. */
  inFlight(id: string): number;
  /** What `GET /models` answers now. */
  models(): NeuronModel[];
  setModels(models: readonly NeuronModel[]): void;
  setModelStatus(id: string, status: ModelStatus): void;
  /** The next load (explicit or lazy) fails after its delay with this code and message. */
  failNextLoad(code: ErrorCode, message: string): void;
  setLatency(ms: number): void;
  setLoadDelay(ms: number): void;
  /** Destroys every socket and stops listening, like a host that died. */
  kill(): Promise<void>;
  /** Listens again on the same port. */
  revive(): Promise<void>;
  close(): Promise<void>;
}

interface Entry {
  model: NeuronModel;
  running: number;
  readonly waiters: (() => void)[];
  loading: Promise<void> | null;
}

class FakeError extends Error {
  readonly code: ErrorCode;
  readonly param: string | null;
  readonly retryAfterS: number | null;

  constructor(
    code: ErrorCode,
    message: string,
    options: { param?: string; retryAfterS?: number } = {},
  ) {
    super(message);
    this.code = code;
    this.param = options.param ?? null;
    this.retryAfterS = options.retryAfterS ?? null;
  }
}

const DEFAULT_HARNESSES: readonly HarnessInfo[] = [{ name: "llamacpp", kind: "builtin" }];
const iso = (): string => new Date().toISOString();

const json = (res: ServerResponse, status: number, body: unknown): void => {
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
};

const sendError = (res: ServerResponse, error: FakeError): void => {
  if (error.retryAfterS !== null && !res.headersSent)
    res.setHeader("retry-after", String(error.retryAfterS));
  json(res, ERROR_CODES[error.code].status, errorEnvelope(error.code, error.message, error.param));
};

/** The body as JSON; `undefined` when it is not JSON (or the client left mid-body). */
const readJson = async (req: IncomingMessage): Promise<unknown> => {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
};

const invalidBody = (issues: readonly { path: readonly PropertyKey[]; message: string }[]) => {
  const first = issues[0];
  return new FakeError(
    "invalid_request_error",
    issues.map((issue) => `${issue.path.join(".") || "body"}: ${issue.message}`).join("; "),
    { param: first ? first.path.join(".") || "body" : "body" },
  );
};

export const startFakeNeuron = async (options: FakeNeuronOptions): Promise<FakeNeuron> => {
  const token = options.token ?? "";
  const devices = [...(options.devices ?? [])];
  const harnesses = [...(options.harnesses ?? DEFAULT_HARNESSES)];
  const endpointHost = options.endpointHost ?? "localhost";
  const streamChunks = options.streamChunks ?? 5;
  const padding = paddingOf(options.streamPaddingBytes);
  let latencyMs = options.latencyMs ?? 0;
  let loadDelayMs = options.loadDelayMs ?? 0;
  const startedAt = Date.now();
  const created = Math.floor(startedAt / 1000);

  const entries = new Map<string, Entry>();
  const loads: LoadRequest[] = [];
  const unloads: UnloadRequest[] = [];
  const loadsStarted = new Map<string, number>();
  const requests = new Map<string, number>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let lastHeaders: IncomingHttpHeaders | null = null;
  let nextFailure: FakeError | null = null;
  let port = 0;
  let listening = false;
  let closed = false;
  let answers = 0;

  const sleep = (ms: number): Promise<void> =>
    ms <= 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const timer = setTimeout(() => {
            timers.delete(timer);
            resolve();
          }, ms);
          timers.add(timer);
        });

  const selfUrl = () => `http://${endpointHost}:${port}`;

  const entryOf = (model: NeuronModel): Entry => ({
    model: { ...model, devices: [...model.devices] },
    running: 0,
    waiters: [],
    loading: null,
  });
  for (const model of options.models ?? []) entries.set(model.id, entryOf(model));

  // Memory like a real GPU: `vram_free_mb` given at start already counts the initial models, so
  // what is neither free nor theirs is other use; free memory then follows loads and unloads.
  const sharesOn = (index: number, except: string | null): number => {
    let used = 0;
    for (const { model } of entries.values()) {
      if (model.id === except || model.devices.length === 0) continue;
      if (model.status !== "loading" && model.status !== "loaded" && model.status !== "recovering")
        continue;
      if (model.devices.includes(index)) used += model.vram_mb / model.devices.length;
    }
    return used;
  };
  const otherUse = new Map(
    devices.map((device) => [
      device.index,
      Math.max(0, device.vram_total_mb - device.vram_free_mb - sharesOn(device.index, null)),
    ]),
  );
  const freeOn = (device: Device, except: string | null): number =>
    device.vram_total_mb - (otherUse.get(device.index) ?? 0) - sharesOn(device.index, except);

  const describeEntry = (entry: Entry): NeuronModel => ({
    ...entry.model,
    devices: [...entry.model.devices],
    in_flight: entry.running,
    queued: entry.waiters.length,
  });

  const bump = (counts: Map<string, number>, id: string) =>
    counts.set(id, (counts.get(id) ?? 0) + 1);

  /** Starts a load as the entry's one shared promise; `created`: the load made the entry. */
  const runLoad = (entry: Entry, created: boolean): Promise<void> => {
    const { id } = entry.model;
    entry.model.status = "loading";
    entry.model.error = null;
    bump(loadsStarted, id);
    const failure = nextFailure;
    nextFailure = null;
    const loading = sleep(loadDelayMs).then(() => {
      entry.loading = null;
      if (failure) {
        if (failure.code === "load_failed") {
          entry.model.status = "failed";
          entry.model.error = failure.message;
        } else if (created && entries.get(id) === entry) entries.delete(id);
        else entry.model.status = "unloaded";
        throw failure;
      }
      entry.model.status = "loaded";
      entry.model.loaded_at = iso();
    });
    entry.loading = loading;
    // Joiners await the same promise; an unobserved failure must not crash the process.
    loading.catch(() => {});
    return loading;
  };

  /** Devices for a load, checked against free memory the way routing counts it. */
  const placeFor = (request: LoadRequest): number[] => {
    if (devices.length === 0) return request.devices ?? [];
    const unknown = (request.devices ?? []).filter(
      (index) => !devices.some((device) => device.index === index),
    );
    if (unknown.length > 0)
      throw new FakeError("invalid_request_error", `device(s) ${unknown.join(", ")} do not exist`, {
        param: "devices",
      });
    const free = new Map<number, number>();
    for (const device of devices) free.set(device.index, freeOn(device, request.model_id));
    const count = Math.min(request.tensor_parallel ?? 1, devices.length);
    const chosen =
      request.devices ??
      [...devices]
        .sort((a, b) => (free.get(b.index) ?? 0) - (free.get(a.index) ?? 0) || a.index - b.index)
        .slice(0, count)
        .map((device) => device.index)
        .sort((a, b) => a - b);
    const need = chosen.length === 0 ? 0 : (request.vram_mb ?? 0) / chosen.length;
    const short = chosen.filter((index) => (free.get(index) ?? 0) < need);
    if (short.length > 0) {
      throw new FakeError(
        "insufficient_vram",
        `model "${request.model_id}" needs ${Math.ceil(need)} MB on device(s) ${short.join(", ")}`,
        { retryAfterS: 5 },
      );
    }
    return chosen;
  };

  const load = async (request: LoadRequest, onProgress?: (p: LoadProgress) => void) => {
    const started = Date.now();
    const progress = (phase: LoadProgress["phase"], bytes: number | null = null) =>
      onProgress?.({ phase, bytes, total: bytes === null ? null : 1000, message: null });
    if (!harnesses.some((harness) => harness.name === request.harness)) {
      throw new FakeError("harness_not_found", `harness "${request.harness}" is not configured`, {
        param: "harness",
      });
    }
    let entry = entries.get(request.model_id);
    let already = false;
    progress("queued");
    if (entry?.loading) await entry.loading;
    else if (entry?.model.status === "loaded") already = true;
    else {
      const placed = placeFor(request);
      const created = entry === undefined;
      const model: NeuronModel = {
        id: request.model_id,
        harness: request.harness,
        status: "loading",
        devices: placed,
        vram_mb: request.vram_mb ?? 0,
        in_flight: 0,
        queued: 0,
        max_concurrency: request.max_concurrency ?? 4,
        last_accessed: entry?.model.last_accessed ?? null,
        loaded_at: null,
        error: null,
      };
      if (entry) entry.model = model;
      else {
        entry = entryOf(model);
        entries.set(model.id, entry);
      }
      progress("downloading", 0);
      const loading = runLoad(entry, created);
      progress("downloading", 1000);
      progress("starting");
      await loading;
    }
    if (entry.model.status !== "loaded")
      throw new FakeError("load_failed", `model "${request.model_id}" is not loaded`, {
        retryAfterS: 5,
      });
    if (!already) progress("ready");
    const answer: LoadAnswer = {
      id: request.model_id,
      status: "loaded",
      url: selfUrl(),
      load_ms: Date.now() - started,
      already_loaded: already,
    };
    return answer;
  };

  const handleLoad = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readJson(req);
    if (body === undefined)
      throw new FakeError("invalid_request_error", "the request body is not valid JSON");
    const parsed = LoadRequest.safeParse(body);
    if (!parsed.success) throw invalidBody(parsed.error.issues);
    loads.push(parsed.data);
    if (!(req.headers.accept ?? "").includes("text/event-stream")) {
      json(res, 200, await load(parsed.data));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
    res.flushHeaders();
    const send = (event: string, data: unknown) => {
      if (!res.destroyed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    try {
      send("result", await load(parsed.data, (progress) => send("progress", progress)));
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
    const { model_id: id, force } = parsed.data;
    const entry = entries.get(id);
    if (!entry) throw new FakeError("model_not_found", `model "${id}" is not on this node`);
    const busy = entry.running + entry.waiters.length;
    if (busy > 0 && force !== true) {
      throw new FakeError(
        "model_busy",
        `model "${id}" has ${busy} request(s) in flight; wait, or unload with force: true`,
        { retryAfterS: 5 },
      );
    }
    if (entry.loading) await entry.loading.catch(() => {});
    if (entries.get(id) === entry) entries.delete(id);
    json(res, 200, { status: "unloaded" });
  };

  /** Takes one of the model's slots, queueing beyond max_concurrency; false if the client left. */
  const acquire = (entry: Entry, res: ServerResponse): Promise<boolean> => {
    if (entry.running < entry.model.max_concurrency) {
      entry.running += 1;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const waiter = () => {
        res.off("close", onClose);
        entry.running += 1;
        resolve(true);
      };
      const onClose = () => {
        const at = entry.waiters.indexOf(waiter);
        if (at >= 0) entry.waiters.splice(at, 1);
        resolve(false);
      };
      entry.waiters.push(waiter);
      res.once("close", onClose);
    });
  };

  const release = (entry: Entry) => {
    entry.running -= 1;
    entry.waiters.shift()?.();
  };

  const answerInference = async (
    res: ServerResponse,
    path: string,
    body: Record<string, unknown>,
    model: string,
  ) => {
    let gone = false;
    res.once("close", () => {
      gone = true;
    });
    answers += 1;
    const id = `fake-${answers}`;
    await sleep(latencyMs);
    if (gone) return;
    if (path === "/v1/embeddings") {
      json(res, 200, embeddingAnswer(model, body.input));
      return;
    }
    const chat = path === "/v1/chat/completions";
    if (body.stream !== true) {
      json(res, 200, completionAnswer(chat, id, created, model));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    for (let i = 0; i < streamChunks && !gone; i += 1) {
      if (i > 0) await sleep(latencyMs);
      if (gone) return;
      const last = i === streamChunks - 1;
      const chunk = streamChunk(chat, id, created, model, i, last);
      await writeAndWait(res, `${padding}data: ${JSON.stringify(chunk)}\n\n`);
    }
    if (!gone) res.end("data: [DONE]\n\n");
  };

  const handleInference = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    lastHeaders = req.headers;
    const body = await readJson(req);
    if (body === undefined)
      throw new FakeError("invalid_request_error", "the request body is not valid JSON");
    if (typeof body !== "object" || body === null || Array.isArray(body))
      throw new FakeError("invalid_request_error", "the request body must be a JSON object");
    const fields = body as Record<string, unknown>;
    const model = fields.model;
    if (typeof model !== "string" || model === "")
      throw new FakeError("missing_model", "the request body has no model", { param: "model" });
    const entry = entries.get(model);
    if (!entry)
      throw new FakeError("model_not_found", `model "${model}" is not on this node`, {
        param: "model",
      });
    if (entry.model.status === "failed" && !entry.loading)
      throw new FakeError("load_failed", `model "${model}" failed: ${entry.model.error ?? "?"}`);
    if (entry.model.status === "recovering")
      throw new FakeError("service_unavailable", `model "${model}" is recovering`, {
        retryAfterS: 5,
      });
    bump(requests, model);
    if (!(await acquire(entry, res))) return;
    try {
      if (entry.model.status === "unloaded" && !entry.loading) runLoad(entry, false);
      if (entry.loading) {
        try {
          await entry.loading;
        } catch {
          // Reported below from the model's status.
        }
      }
      if (entry.model.status !== "loaded")
        throw new FakeError("service_unavailable", `model "${model}" is ${entry.model.status}`, {
          retryAfterS: 5,
        });
      entry.model.last_accessed = iso();
      await answerInference(res, path, fields, model);
    } finally {
      entry.model.last_accessed = iso();
      release(entry);
    }
  };

  const discovery = (): DiscoveryAnswer => ({
    node: {
      name: options.name,
      hostname: options.name,
      os: "Linux",
      kernel: "fake",
      cpu: "fake cpu",
      memory_mb: 65_536,
    },
    devices: devices.map((device) => ({
      ...device,
      vram_free_mb: Math.max(0, Math.floor(freeOn(device, null))),
    })),
    harnesses,
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
    if (method === "GET" && path === "/models")
      return json(res, 200, [...entries.values()].map(describeEntry));
    if (method === "POST" && path === "/models/load") return handleLoad(req, res);
    if (method === "POST" && path === "/models/unload") return handleUnload(req, res);
    const match = /^\/models\/([^/]+)\/(endpoint|logs)$/.exec(path);
    if (method === "GET" && match) {
      const id = decodeURIComponent(match[1] ?? "");
      const entry = entries.get(id);
      if (!entry) throw new FakeError("model_not_found", `model "${id}" is not on this node`);
      if (match[2] === "endpoint") return json(res, 200, { url: selfUrl() });
      const text = `fake harness output for ${id}\n`;
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end(text);
      return;
    }
    if (method === "POST" && path.startsWith("/v1/")) return handleInference(req, res, path);
    throw new FakeError("not_found", `no route for ${method} ${path}`);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendError(
        res,
        error instanceof FakeError ? error : new FakeError("internal_error", "internal error"),
      );
    });
  });
  server.keepAliveTimeout = 65_000;
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  const listen = (at: number) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(at, "127.0.0.1", () => {
        server.off("error", reject);
        port = (server.address() as { port: number }).port;
        listening = true;
        resolve();
      });
    });

  const kill = async () => {
    if (!listening) return;
    listening = false;
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    await stopped;
  };

  await listen(0);

  return {
    name: options.name,
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    loads,
    unloads,
    loadsStarted,
    requests,
    get headers() {
      return lastHeaders;
    },
    inFlight: (id) => {
      const entry = entries.get(id);
      return entry ? entry.running + entry.waiters.length : 0;
    },
    models: () => [...entries.values()].map(describeEntry),
    setModels: (models) => {
      entries.clear();
      for (const model of models) entries.set(model.id, entryOf(model));
    },
    setModelStatus: (id, status) => {
      const entry = entries.get(id);
      if (!entry) throw new Error(`fake neuron ${options.name} has no model "${id}"`);
      entry.model.status = status;
      if (status === "loaded" && entry.model.loaded_at === null) entry.model.loaded_at = iso();
    },
    failNextLoad: (code, message) => {
      nextFailure = new FakeError(
        code,
        message,
        ERROR_CODES[code].retryable ? { retryAfterS: 5 } : {},
      );
    },
    setLatency: (ms) => {
      latencyMs = ms;
    },
    setLoadDelay: (ms) => {
      loadDelayMs = ms;
    },
    kill,
    revive: async () => {
      if (closed) throw new Error(`fake neuron ${options.name} is closed`);
      if (!listening) await listen(port);
    },
    close: async () => {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await kill();
    },
  };
};
