import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { writeAndWait } from "../backpressure.js";
import { completionAnswer, embeddingAnswer, streamChunk } from "../fake-answers.js";
import { FakeError, json } from "./http.js";
import { bump, iso, type ModelRegistry } from "./model-registry.js";

// The model-routed requests on the fake neuron (`POST /v1/*`, llama-server's `/rerank`,
// `/reranking`, `/infill`, `/completion`, `GET /v1/audio/voices?model=`): where the real one
// proxies to the model's harness, this one takes a slot, lazily reloads an unloaded model, and
// answers like the fake harness itself. A JSON body, a multipart upload and a query name the
// model as they do for the real one. Chat, completions and embeddings get OpenAI answers; any
// other path an echo of what arrived (`fake.echo`: method, URL, content type, body), so a test
// sees what cortex forwarded byte for byte.

/** The paths llama-server answers itself, beside `/v1/*`. */
const NATIVE_PATHS: ReadonlySet<string> = new Set([
  "/rerank",
  "/reranking",
  "/infill",
  "/completion",
]);

/** Whether the fake neuron answers `method path` as a model-routed request. */
export const isModelRouted = (method: string, path: string): boolean =>
  method === "POST"
    ? (path.startsWith("/v1/") && path.length > 4) || NATIVE_PATHS.has(path)
    : method === "GET" && path === "/v1/audio/voices";

/** The largest body the fake reads: more than any test sends, far less than memory. */
const MAX_BODY_BYTES = 64 * 2 ** 20;

const readRaw = async (req: IncomingMessage): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new FakeError("payload_too_large", "the body is too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
};

/** The `model` field of a multipart/form-data body, the way a harness's form parser finds it. */
const formModel = (contentType: string, body: Buffer): string | undefined => {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!boundary) return undefined;
  const text = body.toString("latin1");
  const marker = `--${boundary[1] ?? boundary[2]}`;
  for (const part of text.split(marker)) {
    const blank = part.indexOf("\r\n\r\n");
    if (blank < 0 || !/name="?model"?(;|\r|$)/i.test(part.slice(0, blank))) continue;
    return Buffer.from(part.slice(blank + 4, part.lastIndexOf("\r\n")), "latin1").toString("utf8");
  }
  return undefined;
};

/** What arrived: the body's fields (JSON only) and the model it names. */
const readRequest = async (
  req: IncomingMessage,
): Promise<{ body: Buffer; fields: Record<string, unknown>; model: unknown }> => {
  if (req.method === "GET") {
    const model = new URL(req.url ?? "/", "http://fake").searchParams.get("model");
    return { body: Buffer.alloc(0), fields: {}, model };
  }
  const body = await readRaw(req);
  const contentType = req.headers["content-type"] ?? "";
  if (contentType.toLowerCase().startsWith("multipart/form-data"))
    return { body, fields: {}, model: formModel(contentType, body) };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw new FakeError("invalid_request_error", "the request body is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new FakeError("invalid_request_error", "the request body must be a JSON object");
  const fields = parsed as Record<string, unknown>;
  return { body, fields, model: fields.model };
};

export interface InferenceOptions {
  readonly registry: ModelRegistry;
  readonly sleep: (ms: number) => Promise<void>;
  /** Delay before each answer and between stream chunks. */
  readonly latencyMs: number;
  /** Chunks in a streamed answer. */
  readonly streamChunks: number;
  /** An SSE comment put before each chunk (empty for none). */
  readonly padding: string;
  /** `created` of every answer, in seconds. */
  readonly created: number;
}

export interface FakeInference {
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void>;
  /** `POST /v1/*` requests per model id (for known models). */
  readonly requests: Map<string, number>;
  /** Headers of the last model-routed request. */
  readonly headers: IncomingHttpHeaders | null;
  /** Path of the last model-routed request, with its query string as received. */
  readonly lastPath: string | null;
  /** Body of the last model-routed request, as received. */
  readonly lastBody: Buffer | null;
  setLatency(ms: number): void;
  /** The next `count` inference requests answer 502 `upstream_error`, as a broken harness. */
  failInference(count: number): void;
}

export const createInference = (options: InferenceOptions): FakeInference => {
  const { registry, sleep, streamChunks, padding, created } = options;
  let latencyMs = options.latencyMs;
  const requests = new Map<string, number>();
  let lastHeaders: IncomingHttpHeaders | null = null;
  let lastPath: string | null = null;
  let lastBody: Buffer | null = null;
  let answers = 0;
  let failing = 0;

  const answer = async (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    body: Record<string, unknown>,
    model: string,
    raw: Buffer,
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
    if (path !== "/v1/chat/completions" && path !== "/v1/completions") {
      json(res, 200, {
        object: "fake.echo",
        text: `fake answer of ${model}`,
        model,
        method: req.method,
        url: req.url,
        content_type: req.headers["content-type"] ?? null,
        body_base64: raw.toString("base64"),
      });
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

  const handle = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    lastHeaders = req.headers;
    lastPath = req.url ?? path;
    lastBody = null;
    const { body, fields, model } = await readRequest(req);
    lastBody = body;
    if (typeof model !== "string" || model === "")
      throw new FakeError("missing_model", "the request body has no model", { param: "model" });
    const entry = registry.get(model);
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
    if (failing > 0) {
      failing -= 1;
      throw new FakeError("upstream_error", `the harness of "${model}" broke`);
    }
    if (!(await registry.acquire(entry, res))) return;
    try {
      if (entry.model.status === "unloaded" && !entry.loading) registry.reload(entry);
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
      await answer(req, res, path, fields, model, body);
    } finally {
      entry.model.last_accessed = iso();
      registry.release(entry);
    }
  };

  return {
    handle,
    requests,
    get headers() {
      return lastHeaders;
    },
    get lastPath() {
      return lastPath;
    },
    get lastBody() {
      return lastBody;
    },
    setLatency: (ms) => {
      latencyMs = ms;
    },
    failInference: (count) => {
      failing = count;
    },
  };
};
