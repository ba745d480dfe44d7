import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { writeAndWait } from "../backpressure.js";
import { completionAnswer, embeddingAnswer, streamChunk } from "../fake-answers.js";
import { FakeError, json, readJson } from "./http.js";
import { bump, iso, type ModelRegistry } from "./model-registry.js";

// `POST /v1/*` on the fake neuron: where the real one proxies to the model's harness, this one
// takes a slot, lazily reloads an unloaded model, and answers like the fake harness itself.

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
  /** Headers of the last `POST /v1/*` request. */
  readonly headers: IncomingHttpHeaders | null;
  /** Path of the last `POST /v1/*` request, with its query string as received. */
  readonly lastPath: string | null;
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
  let answers = 0;
  let failing = 0;

  const answer = async (
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

  const handle = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    lastHeaders = req.headers;
    lastPath = req.url ?? path;
    const body = await readJson(req);
    if (body === undefined)
      throw new FakeError("invalid_request_error", "the request body is not valid JSON");
    if (typeof body !== "object" || body === null || Array.isArray(body))
      throw new FakeError("invalid_request_error", "the request body must be a JSON object");
    const fields = body as Record<string, unknown>;
    const model = fields.model;
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
      await answer(res, path, fields, model);
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
    setLatency: (ms) => {
      latencyMs = ms;
    },
    failInference: (count) => {
      failing = count;
    },
  };
};
