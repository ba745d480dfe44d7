import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CortexConfig } from "@cortex/protocol";
import {
  type FakeNeuron,
  type FakeNeuronOptions,
  gpuDevice,
  neuronModel,
  startFakeNeuron,
} from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type Cortex, startCortex } from "./cortex.js";
import { silentLog } from "./log.js";

// The body attack of issue 13, with small numbers: while a model's slots are busy, clients
// send bodies that wait for a slot, and bodies nested to the limit and beyond. Cortex holds at
// most `max_buffered_mb` of them, refuses the rest with the envelope, never parses a tree, and
// keeps answering /health.

const MiB = 2 ** 20;

let dir: string;
let neuron: FakeNeuron | undefined;
let cortex: Cortex | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cortex-limits-"));
  await writeFile(
    join(dir, "models.yaml"),
    stringify({
      models: [{ id: "chat", harness: "llamacpp", source: "c.gguf", vram_mb: 1000 }],
    }),
  );
});

afterEach(async () => {
  await cortex?.stop(0);
  cortex = undefined;
  await neuron?.close();
  neuron = undefined;
  await rm(dir, { recursive: true, force: true });
});

const start = async (
  overrides: Record<string, unknown>,
  neuronOptions: Partial<FakeNeuronOptions> = {},
) => {
  neuron = await startFakeNeuron({
    name: "a",
    devices: [gpuDevice(0, 24_000)],
    models: [neuronModel("chat", { devices: [0], vram_mb: 1000, max_concurrency: 1 })],
    ...neuronOptions,
  });
  const started = await startCortex(
    CortexConfig.parse({
      listen: "127.0.0.1:0",
      catalogue: dir,
      data_dir: ":memory:",
      poll_interval_ms: 100,
      neurons: [{ name: "a", url: neuron.url }],
      ...overrides,
    }),
    silentLog,
  );
  cortex = started;
  await expect.poll(() => started.store.snapshot.nodes.every((node) => node.healthy)).toBe(true);
  return started;
};

const post = (c: Cortex, body: string | Buffer, signal?: AbortSignal) =>
  fetch(`${c.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    ...(signal ? { signal } : {}),
  });

/** A chat body of about `bytes`, its size in one long message. */
const bigBody = (bytes: number) =>
  JSON.stringify({ model: "chat", messages: [{ role: "user", content: "x".repeat(bytes) }] });

const envelope = async (answer: Response) => {
  const json = (await answer.json()) as { error: { code: string; message: string } };
  expect(openAIProblems("ErrorResponse", json)).toEqual([]);
  return json.error;
};

describe("bodies waiting for a busy model", () => {
  it("are held up to max_buffered_mb; the rest are refused with 503 while /health answers", async () => {
    const c = await start({ max_buffered_mb: 2, max_body_mb: 1, queue_max: 64 });
    neuron?.setLatency(1500);
    // One request holds the only slot; the others wait in cortex, holding their bodies.
    const busy = post(c, bigBody(100));
    await expect.poll(() => neuron?.inFlight("chat")).toBe(1);
    const waiting = Array.from({ length: 8 }, () => post(c, bigBody(700 * 1024)));
    const health = await fetch(`${c.url}/health`);
    expect(health.status).toBe(200);
    const answers = await Promise.all(waiting);
    const statuses = answers.map((answer) => answer.status).sort();
    // 2 MiB hold two bodies of 700 KiB beside the first; the other six are refused.
    expect(statuses).toEqual([200, 200, 503, 503, 503, 503, 503, 503]);
    for (const answer of answers.filter((each) => each.status === 503)) {
      expect(answer.headers.get("retry-after")).toBe("1");
      expect((await envelope(answer)).code).toBe("overloaded");
    }
    expect((await busy).status).toBe(200);
    // Everything was given back: the whole budget is free again.
    const after = await Promise.all([post(c, bigBody(900 * 1024)), post(c, bigBody(900 * 1024))]);
    expect(after.map((answer) => answer.status)).toEqual([200, 200]);
  });

  it("refuses bodies over max_body_mb with 413 and nesting past 64 levels with 400", async () => {
    const c = await start({ max_body_mb: 1 });
    const tooBig = await post(c, bigBody(1.2 * MiB));
    expect(tooBig.status).toBe(413);
    expect((await envelope(tooBig)).code).toBe("payload_too_large");
    // Half a MiB of brackets: 250,000 levels, which JSON.parse would build as nested arrays.
    const levels = 250_000;
    const deep = await post(c, `{"model":"chat","x":${"[".repeat(levels)}${"]".repeat(levels)}}`);
    expect(deep.status).toBe(400);
    expect((await envelope(deep)).message).toContain("deeper than 64 levels");
    expect(neuron?.requests.get("chat") ?? 0).toBe(0);
    const fine = await post(c, `{"model":"chat","x":${"[".repeat(60)}${"]".repeat(60)}}`);
    expect(fine.status).toBe(200);
  });

  it("forwards an aliased request with the model id in place of the alias", async () => {
    await writeFile(
      join(dir, "models.yaml"),
      stringify({
        models: [
          { id: "chat", aliases: ["org/chat"], harness: "llamacpp", source: "c", vram_mb: 1000 },
        ],
      }),
    );
    const c = await start({});
    const body = '{ "messages" : [ ], "model" : "org/chat", "n": 1.50, "x": "\\u00e9" }';
    const answer = await post(c, body);
    expect(answer.status).toBe(200);
    expect(neuron?.requests.get("chat")).toBe(1);
  });
});

describe("a client that stops reading its stream", () => {
  it("is cut after client_stall_timeout_ms, and the model's only slot serves the next request", async () => {
    const c = await start(
      { client_stall_timeout_ms: 300, queue_timeout_ms: 20_000 },
      { streamChunks: 1_000_000, streamPaddingBytes: 16 * 1024 },
    );
    const { port } = new URL(c.url);
    const socket = connect(Number(port), "127.0.0.1");
    const body = JSON.stringify({ model: "chat", stream: true, messages: [] });
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    // It never reads: every buffer on the way fills, then the stall timer runs.
    socket.pause();
    try {
      await expect.poll(() => neuron?.inFlight("chat"), { timeout: 10_000 }).toBe(1);
      await expect.poll(() => neuron?.inFlight("chat"), { timeout: 10_000 }).toBe(0);
      await expect.poll(() => c.dispatcher.reservations.total).toBe(0);
      expect(socket.destroyed || socket.readableEnded || (await closedSoon(socket))).toBe(true);
      const next = await post(c, JSON.stringify({ model: "chat", messages: [] }));
      expect(next.status).toBe(200);
    } finally {
      socket.destroy();
    }
  });
});

/** Whether the server closed `socket` (the client still holds unread bytes, so read them). */
const closedSoon = (socket: import("node:net").Socket): Promise<boolean> =>
  new Promise((resolve) => {
    socket.on("close", () => resolve(true));
    socket.on("error", () => resolve(true));
    socket.resume();
    setTimeout(() => resolve(false), 5000);
  });
