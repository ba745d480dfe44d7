import { createServer, type IncomingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import type {
  Device,
  ErrorCode,
  EstimateRequest,
  HarnessInfo,
  LoadRequest,
  ModelStatus,
  NeuronModel,
  UnloadRequest,
} from "@cortex/protocol";
import { paddingOf } from "./backpressure.js";
import { createEstimates, type ScriptedEstimate } from "./fake-neuron/estimate.js";
import { FakeError, sendError } from "./fake-neuron/http.js";
import { createInference } from "./fake-neuron/inference.js";
import { createModelRegistry } from "./fake-neuron/model-registry.js";
import { createRoutes } from "./fake-neuron/routes.js";

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
  /** neuron.yaml `labels`, reported in `/discovery`; absent: not reported (an older neuron). */
  readonly labels?: Readonly<Record<string, string>>;
  /** Whether it serves `GET /events` (default true); false: 404, as a neuron from before it. */
  readonly events?: boolean;
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
  /** Valid bodies received on `POST /models/estimate`, in order. */
  readonly estimates: EstimateRequest[];
  /** Loads actually started per model id: fresh loads and lazy reloads, not joined ones. */
  readonly loadsStarted: Map<string, number>;
  /** `POST /v1/*` requests per model id (for known models). */
  readonly requests: Map<string, number>;
  /** Headers of the last `POST /v1/*` request. */
  readonly headers: IncomingHttpHeaders | null;
  /** Path of the last `POST /v1/*` request, with its query string as received. */
  readonly lastPath: string | null;
  /** Requests inside the neuron for this model right now, running plus queued. */
  inFlight(id: string): number;
  /** What `GET /models` answers now. */
  models(): NeuronModel[];
  setModels(models: readonly NeuronModel[]): void;
  setModelStatus(id: string, status: ModelStatus): void;
  /** The next load (explicit or lazy) fails after its delay with this code and message. */
  failNextLoad(code: ErrorCode, message: string): void;
  /**
   * The next load fails as an engine out of GPU memory at start does on a real neuron:
   * `insufficient_vram` saying ENGINE_OUT_OF_MEMORY, with `requested_mb=` and the line quoted.
   */
  failNextLoadOutOfMemory(line: string, requestedMb?: number): void;
  /**
   * What the model really holds on its GPUs once loaded: `vram_used_mb` in `GET /models`, and
   * what discovery's free memory counts for it (when more than it declared); null: unmeasured.
   */
  setVramUsed(id: string, mb: number | null): void;
  /**
   * What `POST /models/estimate` answers for `source` (an answer, or an error code and message);
   * null: not scripted, answered 422 `not_estimable` as a file that is not GGUF.
   */
  scriptEstimate(source: string, answer: ScriptedEstimate | null): void;
  /** Delays every estimate answer by `ms`. */
  setEstimateDelay(ms: number): void;
  setLatency(ms: number): void;
  /** The next `count` inference requests answer 502 `upstream_error`, as a broken harness. */
  failInference(count: number): void;
  setLoadDelay(ms: number): void;
  /** Destroys every socket and stops listening, like a host that died. */
  kill(): Promise<void>;
  /** Listens again on the same port. */
  revive(): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_HARNESSES: readonly HarnessInfo[] = [{ name: "llamacpp", kind: "builtin" }];

// The parts mirror the real neuron's layout: fake-neuron/model-registry.ts its models (their
// lifecycle and memory), fake-neuron/routes.ts its HTTP API, fake-neuron/inference.ts its
// answers. This function only wires them and owns the server, so a test can kill and revive it.
export const startFakeNeuron = async (options: FakeNeuronOptions): Promise<FakeNeuron> => {
  const endpointHost = options.endpointHost ?? "localhost";
  const startedAt = Date.now();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let port = 0;
  let listening = false;
  let closed = false;

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

  const registry = createModelRegistry({
    name: options.name,
    devices: [...(options.devices ?? [])],
    harnesses: [...(options.harnesses ?? DEFAULT_HARNESSES)],
    models: options.models ?? [],
    loadDelayMs: options.loadDelayMs ?? 0,
    sleep,
    selfUrl,
  });
  const inference = createInference({
    registry,
    sleep,
    latencyMs: options.latencyMs ?? 0,
    streamChunks: options.streamChunks ?? 5,
    padding: paddingOf(options.streamPaddingBytes),
    created: Math.floor(startedAt / 1000),
  });
  const estimates = createEstimates(sleep);
  const routes = createRoutes({
    name: options.name,
    token: options.token ?? "",
    startedAt,
    registry,
    estimates,
    inference: inference.handle,
    selfUrl,
    ...(options.labels === undefined ? {} : { labels: options.labels }),
    events: options.events ?? true,
  });

  const server = createServer((req, res) => {
    routes.handle(req, res).catch((error: unknown) => {
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
    loads: routes.loads,
    unloads: routes.unloads,
    estimates: estimates.received,
    loadsStarted: registry.loadsStarted,
    requests: inference.requests,
    get headers() {
      return inference.headers;
    },
    get lastPath() {
      return inference.lastPath;
    },
    inFlight: registry.inFlight,
    models: registry.models,
    setModels: registry.setModels,
    setModelStatus: registry.setModelStatus,
    failNextLoad: registry.failNextLoad,
    failNextLoadOutOfMemory: registry.failNextLoadOutOfMemory,
    setVramUsed: registry.setVramUsed,
    scriptEstimate: estimates.script,
    setEstimateDelay: estimates.setDelay,
    setLatency: inference.setLatency,
    failInference: inference.failInference,
    setLoadDelay: registry.setLoadDelay,
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
