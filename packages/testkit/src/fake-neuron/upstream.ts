import type { IncomingMessage, ServerResponse } from "node:http";
import { FakeError, json } from "./http.js";
import { iso, type ModelRegistry } from "./model-registry.js";

// `/upstream/<model-id>/<path…>` on the fake neuron, any method: where the real one relays to
// the model's harness inside one of its slots (lazily reloading an unloaded model), this one
// takes a slot the same way and answers as a harness with a few native endpoints:
//
// - `GET /health`: `{"status": "ok"}`, like llama-server and the built-in harness;
// - `/hold`: a 200 event stream with one event, kept open until the client leaves (for tests
//   of what a departing client frees);
// - anything else: 200 with the request as the harness saw it, `{model, method, path (with the
//   query), headers, body}`, and headers a proxy must not pass (`set-cookie`,
//   `access-control-allow-origin`) beside one it should (`x-harness: fake`).

/** The request's text body (the tests send small ones). */
const readText = async (req: IncomingMessage): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
};

/** Answers one `/upstream/…` request; throws a `FakeError` for the caller to answer. */
export const handleUpstream = async (
  registry: ModelRegistry,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> => {
  const url = req.url ?? "/";
  const match = /^\/upstream\/([^/?]+)([^?]*)(.*)$/.exec(url);
  if (!match)
    throw new FakeError("invalid_request_error", "the path names no model: /upstream/<id>/…");
  let id: string;
  try {
    id = decodeURIComponent(match[1] ?? "");
  } catch {
    throw new FakeError("invalid_request_error", "the model id does not decode");
  }
  const path = match[2] || "/";
  const query = match[3] ?? "";
  const body = await readText(req);
  const entry = registry.get(id);
  if (!entry) throw new FakeError("model_not_found", `model "${id}" is not on this node`);
  if (!(await registry.acquire(entry, res))) return;
  try {
    if (entry.model.status === "unloaded" && !entry.loading) registry.reload(entry);
    if (entry.loading) await entry.loading.catch(() => {});
    if (entry.model.status !== "loaded")
      throw new FakeError("service_unavailable", `model "${id}" is ${entry.model.status}`, {
        retryAfterS: 5,
      });
    entry.model.last_accessed = iso();
    if (req.method === "GET" && path === "/health") return json(res, 200, { status: "ok" });
    if (path === "/hold") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write("data: open\n\n");
      if (!res.destroyed) await new Promise((resolve) => res.once("close", resolve));
      return;
    }
    const text = JSON.stringify({
      model: id,
      method: req.method,
      path: `${path}${query}`,
      headers: req.headers,
      body,
    });
    res.writeHead(200, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
      "x-harness": "fake",
      "set-cookie": "harness=1; Path=/",
      "access-control-allow-origin": "*",
    });
    res.end(text);
  } finally {
    entry.model.last_accessed = iso();
    registry.release(entry);
  }
};
