import { createCatalogue } from "@cortex/catalogue";
import { type FleetSnapshot, ModelProfile } from "@cortex/protocol";
import { neuronModel } from "@cortex/testkit";
import { describe, expect, it } from "vitest";
import type { RequestRecord } from "../api/openai-routes.js";
import type { RequestLogEntry } from "../state/request-log.js";
import type { RequestObservation } from "./metrics.js";
import { requestAccounting } from "./request-accounting.js";

const catalogue = createCatalogue([
  ModelProfile.parse({
    id: "chat",
    aliases: ["c"],
    harness: "llamacpp",
    source: "chat.gguf",
    vram_mb: 1000,
  }),
]);

const snapshot: FleetSnapshot = {
  taken_at: "2026-12-01T00:00:00.000Z",
  nodes: [
    {
      name: "a",
      url: "http://a:13131",
      healthy: true,
      consecutive_failures: 0,
      last_poll_at: null,
      last_ok_at: null,
      error: null,
      node: null,
      devices: [],
      harnesses: [],
      models: [neuronModel("resident-only")],
    },
  ],
};

const record = (fields: Partial<RequestRecord> = {}): RequestRecord => ({
  requestId: "req-1",
  at: 1_000,
  model: "chat",
  node: "a",
  status: 200,
  latencyMs: 1500.5,
  ttftMs: 250,
  usage: { prompt_tokens: 3, completion_tokens: 7 },
  stream: true,
  coldStart: false,
  errorCode: null,
  ...fields,
});

/** Request accounting over fakes that write down what they are told. */
const setup = () => {
  const observed: RequestObservation[] = [];
  const coldStarts: string[] = [];
  const rows: RequestLogEntry[] = [];
  const lines: { level: string; line: object; message: string }[] = [];
  const account = requestAccounting({
    metrics: {
      observeRequest: (observation) => observed.push(observation),
      coldStart: (model, node) => coldStarts.push(`${model}@${node}`),
    },
    requestLog: { record: (entry) => rows.push(entry) },
    log: {
      debug: (line, message) => lines.push({ level: "debug", line, message }),
      warn: (line, message) => lines.push({ level: "warn", line, message }),
    },
    catalogue: () => catalogue,
    snapshot: () => snapshot,
  });
  return { account, observed, coldStarts, rows, lines };
};

describe("requestAccounting", () => {
  it("observes, logs and writes one row per request", () => {
    const { account, observed, coldStarts, rows, lines } = setup();
    account(record());
    expect(observed).toEqual([
      { model: "chat", node: "a", status: 200, seconds: 1.5005, ttftSeconds: 0.25 },
    ]);
    expect(coldStarts).toEqual([]);
    expect(rows).toEqual([
      {
        at: 1_000,
        requestId: "req-1",
        model: "chat",
        node: "a",
        status: 200,
        latencyMs: 1500.5,
        ttftMs: 250,
        promptTokens: 3,
        completionTokens: 7,
        stream: true,
        coldStart: false,
        errorCode: null,
      },
    ]);
    expect(lines).toEqual([
      {
        level: "debug",
        line: { request_id: "req-1", model: "chat", node: "a", status: 200, ms: 1501 },
        message: "request",
      },
    ]);
  });

  it.each([
    ["chat", "chat"],
    ["resident-only", "resident-only"],
    ["made-up-by-a-client", "unknown"],
    [null, "none"],
  ])("labels the model %s as %s", (model, label) => {
    const { account, observed, rows } = setup();
    account(record({ model }));
    expect(observed[0]?.model).toBe(label);
    expect(rows[0]?.model).toBe(label);
  });

  it("counts a cold start only where a node served it, and leaves out a missing ttft", () => {
    const { account, observed, coldStarts, rows } = setup();
    account(record({ coldStart: true }));
    account(record({ coldStart: true, node: null, ttftMs: null, usage: null, status: 503 }));
    expect(coldStarts).toEqual(["chat@a"]);
    expect(observed[1]).toEqual({ model: "chat", node: "none", status: 503, seconds: 1.5005 });
    expect(rows[1]).toMatchObject({ node: null, promptTokens: null, completionTokens: null });
  });

  it.each([
    [503, "warn", "request failed"],
    [499, "debug", "request"],
    [404, "debug", "request"],
  ])("logs a %i at %s", (status, level, message) => {
    const { account, lines } = setup();
    account(record({ status }));
    expect(lines[0]).toMatchObject({ level, message });
  });
});
