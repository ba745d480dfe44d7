import type { ServerResponse } from "node:http";
import { type HeartbeatEvent, NEURON_HEARTBEAT_MS, type NeuronModel } from "@cortex/protocol";

// The fake neuron's `GET /events`, like apps/neuron/src/api/events.ts on the wire: a `snapshot`,
// then a `model` event for each model that changed or went away, and a `heartbeat` every
// NEURON_HEARTBEAT_MS. The fake's registry announces nothing, so each stream compares what
// `GET /models` would answer every FAKE_EVENTS_CHECK_MS: a change reaches cortex within that
// (in-flight counts included, with no coalescing beyond it).

/** How often a stream looks for changes to send. */
export const FAKE_EVENTS_CHECK_MS = 20;

/** Streams `models()`'s changes on `res` until the client (or a `kill`) closes it. */
export const handleEvents = (models: () => NeuronModel[], res: ServerResponse): void => {
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
  });
  res.flushHeaders();
  let id = 0;
  const send = (event: string, data: unknown) => {
    id += 1;
    if (!res.destroyed && !res.writableEnded)
      res.write(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const first = models();
  let sent = new Map(first.map((model) => [model.id, JSON.stringify(model)]));
  send("snapshot", first);
  const check = setInterval(() => {
    const now = new Map(models().map((model) => [model.id, model] as const));
    const next = new Map<string, string>();
    for (const [modelId, model] of now) {
      const text = JSON.stringify(model);
      next.set(modelId, text);
      if (sent.get(modelId) !== text) send("model", model);
    }
    for (const modelId of sent.keys())
      if (!now.has(modelId)) send("model", { id: modelId, removed: true });
    sent = next;
  }, FAKE_EVENTS_CHECK_MS);
  const beat = setInterval(() => {
    const heartbeat: HeartbeatEvent = { at: new Date().toISOString(), seq: id + 1 };
    send("heartbeat", heartbeat);
  }, NEURON_HEARTBEAT_MS);
  res.once("close", () => {
    clearInterval(check);
    clearInterval(beat);
  });
};
