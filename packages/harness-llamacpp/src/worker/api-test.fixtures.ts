import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { InFlight } from "./connection.js";
import type { ChatTurn, Engine, GenerateOptions, Generation } from "./engine.js";
import { ContextOverflowError } from "./engine.js";
import type { Sampling } from "./requests.js";
import { createWorkerApp, type WorkerPhase } from "./server.js";
import { SlotPool } from "./slots.js";

// What the Responses and Messages route tests share: a scripted engine (no model), the worker
// app on a loopback port, and a reader for named server-sent events.

/** Answers `words`, one per token; a prompt counts one token per word of every turn. */
export class FakeEngine implements Engine {
  readonly contextSize = 128;
  readonly parallel = 1;
  readonly gpu = false as const;
  readonly threads = 1;
  readonly embeddingSize = 3;
  readonly pool = new SlotPool([0]);
  words = ["Hello", " there", ",", " friend"];
  delayMs = 0;
  aborted = 0;
  cachedTokens = 0;
  /** Ends generation as this stop sequence would (reported as the engine reports it). */
  stopSequence: string | undefined;
  /** Throws after this many words, as an engine failing mid-generation would. */
  failAfter: number | undefined;
  lastTurns: readonly ChatTurn[] = [];
  lastSampling: Sampling | undefined;

  load() {
    return { busy: this.pool.busy, waiting: this.pool.waiting };
  }

  countTokens(turns: readonly ChatTurn[]): number {
    return turns
      .map((turn) => turn.text)
      .join(" ")
      .split(" ").length;
  }

  async chat(
    turns: readonly ChatTurn[],
    sampling: Sampling,
    options: GenerateOptions,
  ): Promise<Generation> {
    this.lastTurns = turns;
    this.lastSampling = sampling;
    const promptTokens = this.countTokens(turns);
    if (promptTokens > this.contextSize)
      throw new ContextOverflowError(promptTokens, this.contextSize);
    const { release } = await this.pool.acquire(options.signal);
    try {
      const limit = sampling.maxTokens ?? this.words.length;
      const words = this.words.slice(0, limit);
      for (const [index, word] of words.entries()) {
        if (index === this.failAfter) throw new Error("llama.cpp exploded (internal detail)");
        if (this.delayMs) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
        if (options.signal.aborted) {
          this.aborted += 1;
          throw options.signal.reason;
        }
        options.onText?.(word);
      }
      return {
        text: words.join(""),
        finishReason: limit < this.words.length ? "length" : "stop",
        promptTokens,
        completionTokens: words.length,
        cachedTokens: this.cachedTokens,
        ...(this.stopSequence === undefined ? {} : { stopSequence: this.stopSequence }),
      };
    } finally {
      release();
    }
  }

  complete(prompt: string, sampling: Sampling, options: GenerateOptions): Promise<Generation> {
    return this.chat([{ role: "user", text: prompt }], sampling, options);
  }

  async embed(inputs: readonly string[]) {
    return { vectors: inputs.map(() => [0, 0, 0]), promptTokens: inputs.length };
  }

  async dispose() {}
}

export interface TestWorker {
  readonly base: string;
  readonly engine: FakeEngine;
  readonly inflight: InFlight;
  phase: WorkerPhase;
  post(path: string, body: unknown, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

/** The worker app on 127.0.0.1:0 around a FakeEngine; `close` ends every connection. */
export const startTestWorker = async (): Promise<TestWorker> => {
  const engine = new FakeEngine();
  const inflight = new InFlight();
  const worker = { phase: "ready" as WorkerPhase };
  const app = createWorkerApp(
    { model: "tiny", created: 1_700_000_000, phase: () => worker.phase, engine: () => engine },
    inflight,
  );
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, "127.0.0.1", () => resolve(listening));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(worker, {
    base,
    engine,
    inflight,
    post: (path: string, body: unknown, init: RequestInit = {}) =>
      fetch(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
        ...init,
      }),
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  });
};

export interface NamedEvent {
  readonly event: string;
  readonly data: Record<string, unknown>;
}

/** Parses a whole `text/event-stream` body of `event:` + `data:` (JSON) events. */
export const parseNamedEvents = (text: string): NamedEvent[] =>
  text
    .split("\n\n")
    .filter((block) => block.trim() !== "")
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.find((line) => line.startsWith("event: "))?.slice("event: ".length);
      const data = lines
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice("data: ".length))
        .join("\n");
      if (event === undefined) throw new Error(`an event without a name: ${block}`);
      return { event, data: JSON.parse(data) as Record<string, unknown> };
    });
