import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeartbeatEvent, ModelEvent, SnapshotEvent } from "@cortex/protocol";
import { createSseParser } from "@cortex/protocol/sse";
import { fakeHarnessTemplate, gpuDevice, waitFor } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { processSettings, testManager } from "../models/model-manager.fixtures.js";
import type { ModelManager } from "../models/model-manager.js";
import { freeLoopbackPort, probeReady } from "../supervisor/net.js";
import { spawnRunner } from "../supervisor/process-runner.js";
import { EventHub } from "./events.js";
import { startTestApp, type TestApp } from "./neuron-app.fixtures.js";

// `GET /events` on loopback, in front of a manager running real fake-harness processes: what a
// subscriber sees while models load, serve and unload, who may subscribe, and the stop.

const TOKEN = "events-token";
const devices = [gpuDevice(0, 24_000, 24_000, { name: "Test" })];

let dir: string;
let app: TestApp;
let manager: ModelManager;
let hub: EventHub;

interface Message {
  readonly id: string | null;
  readonly event: string;
  readonly data: unknown;
}

/** A subscriber reading with fetch, as any client would. */
const subscribe = async (token: string | null = TOKEN) => {
  const abort = new AbortController();
  const res = await fetch(`${app.base}/events`, {
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    signal: abort.signal,
  });
  const messages: Message[] = [];
  let ended = false;
  const reading = (async () => {
    if (res.status !== 200 || !res.body) return;
    const parser = createSseParser();
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      for (const message of parser.push(decoder.decode(chunk as Uint8Array, { stream: true })))
        if (message.kind === "message")
          messages.push({ id: message.id, event: message.event, data: JSON.parse(message.data) });
    }
  })()
    .catch(() => {})
    .finally(() => {
      ended = true;
    });
  return {
    res,
    messages,
    get ended() {
      return ended;
    },
    /** The `model` events for `id` so far, as `status/in_flight` or `removed`. */
    modelsOf: (id: string) =>
      messages
        .filter((m) => m.event === "model" && (m.data as { id?: string }).id === id)
        .map((m) => {
          const event = ModelEvent.parse(m.data);
          return "removed" in event ? "removed" : `${event.status}/${event.in_flight}`;
        }),
    close: async () => {
      abort.abort();
      await reading;
    },
  };
};

const call = (path: string, json: unknown) =>
  fetch(`${app.base}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(json),
  });

const LOAD = { model_id: "slow", harness: "fake", source: "slow.json", devices: [0], vram_mb: 100 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-events-"));
  await writeFile(join(dir, "slow.json"), JSON.stringify({ latency_ms: 300 }));
  const fake = defineHarness("fake", fakeHarnessTemplate(["--alias", "{model_id}"]), {
    node: process.execPath,
    entry: "unused",
  }) as Harness;
  manager = testManager(
    {
      harnesses: new Map([["fake", fake]]),
      runner: spawnRunner({ parentPid: process.pid, watchdogGraceMs: 500 }),
      sources: { check: () => {}, prepare: async (source) => join(dir, source) },
      devices: () => devices,
      freePort: freeLoopbackPort,
      probe: probeReady,
    },
    processSettings({ maxQueued: 4, queueTimeoutMs: 5000 }),
  );
  hub = new EventHub({ models: manager, log: { info() {}, warn() {}, error() {} } });
  app = await startTestApp(manager, { token: TOKEN, events: hub });
});

afterAll(async () => {
  hub.close();
  await manager.shutdown();
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

describe("GET /events", () => {
  it("needs the token like every route but /health", async () => {
    for (const token of [null, "wrong"]) {
      const stream = await subscribe(token);
      expect(stream.res.status).toBe(401);
      expect(openAIProblems("ErrorResponse", await stream.res.json())).toEqual([]);
    }
  });

  it("starts with a snapshot, then shows a load as loading → loaded, requests in flight and the unload", async () => {
    const stream = await subscribe();
    try {
      expect(stream.res.status).toBe(200);
      expect(stream.res.headers.get("content-type")).toContain("text/event-stream");
      await waitFor("the snapshot", () => stream.messages.length > 0, 5000);
      expect(stream.messages[0]?.event).toBe("snapshot");
      expect(SnapshotEvent.parse(stream.messages[0]?.data)).toEqual([]);

      expect((await call("/models/load", LOAD)).status).toBe(200);
      await waitFor("loaded", () => stream.modelsOf("slow").includes("loaded/0"), 5000);
      expect(stream.modelsOf("slow")).toEqual(["loading/0", "loaded/0"]);

      // A request in flight (300 ms at the harness) shows as in_flight 1, then 0.
      const answered = call("/v1/chat/completions", {
        model: "slow",
        messages: [{ role: "user", content: "hi" }],
      });
      await waitFor("in flight", () => stream.modelsOf("slow").includes("loaded/1"), 5000);
      expect((await answered).status).toBe(200);
      await waitFor("done", () => stream.modelsOf("slow").at(-1) === "loaded/0", 5000);

      expect((await call("/models/unload", { model_id: "slow" })).status).toBe(200);
      await waitFor("removed", () => stream.modelsOf("slow").at(-1) === "removed", 5000);

      // Every message carries a growing id.
      const ids = stream.messages.map((m) => Number(m.id));
      expect(ids.every((id, i) => i === 0 || id > (ids[i - 1] ?? 0))).toBe(true);
    } finally {
      await stream.close();
    }
  });

  it("sends a heartbeat every second", async () => {
    const stream = await subscribe();
    try {
      await waitFor(
        "two heartbeats",
        () => stream.messages.filter((m) => m.event === "heartbeat").length >= 2,
        5000,
      );
      const beats = stream.messages.filter((m) => m.event === "heartbeat");
      for (const beat of beats) {
        const data = HeartbeatEvent.parse(beat.data);
        expect(String(data.seq)).toBe(beat.id);
      }
    } finally {
      await stream.close();
    }
    await waitFor("the stream let go", () => hub.subscribers === 0, 5000);
  });

  it("ends every stream when the neuron stops, without waiting for the client", async () => {
    const stream = await subscribe();
    await waitFor("the snapshot", () => stream.messages.length > 0, 5000);
    hub.close();
    await waitFor("the stream ended", () => stream.ended, 5000);
    const refused = await subscribe();
    expect(refused.res.status).toBe(503);
    expect(openAIProblems("ErrorResponse", await refused.res.json())).toEqual([]);
  });
});
