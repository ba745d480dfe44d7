import { readFileSync } from "node:fs";
import { type ClientRequest, createServer, type IncomingMessage, request } from "node:http";
import { neuronModel, startFakeNeuron } from "@cortex/testkit";
import { deepBody, plainBody } from "./attack-bodies.js";

// The attacker and its target's busy neuron, in a process of their own so that neither the
// bodies it sends nor the fake neuron's work disturb the benchmark's /health and RSS sampling:
// `node body-attack-cli.js <neuron token> <model>` starts a testkit fake neuron whose only model
// has one slot, and prints one JSON line {control, neuron}. The control server (loopback) takes:
//   POST /block    another client takes the model's only slot (a request straight to the neuron
//                  that does not end), so cortex sees the model saturated at its next poll
//   POST /attack   {url, kind, count, concurrency, levels | bytes, releaseAfterMs, timeoutMs}:
//                  sends `count` copies of one body to url (a loopback cortex), `concurrency`
//                  at a time, and frees the slot once only requests waiting for it are left;
//                  answers with how every one was answered

const token = process.argv[2] ?? "";
const model = process.argv[3] ?? "busy";
/** Long enough that the blocking request never ends by itself during a run. */
const BLOCK_LATENCY_MS = 600_000;
/** The bytes of an answer kept for the envelope check. */
const ANSWER_KEEP_BYTES = 64 * 1024;

const busyModel = () =>
  neuronModel(model, {
    max_concurrency: 1,
    loaded_at: new Date().toISOString(),
    last_accessed: new Date().toISOString(),
  });

const neuron = await startFakeNeuron({ name: "attack-target", token, models: [busyModel()] });
let blocker: ClientRequest | undefined;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const block = async (): Promise<void> => {
  neuron.setLatency(BLOCK_LATENCY_MS);
  blocker = request(`${neuron.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
  });
  blocker.on("error", () => {});
  blocker.end(JSON.stringify({ model, messages: [{ role: "user", content: "hold the slot" }] }));
  const deadline = Date.now() + 10_000;
  while (neuron.inFlight(model) < 1) {
    if (Date.now() > deadline) throw new Error("the blocking request never reached the neuron");
    await sleep(10);
  }
};

/** Frees the slot: a fresh entry for the model (the blocked one is dropped) answering at once. */
const release = (): void => {
  neuron.setLatency(0);
  neuron.setModels([busyModel()]);
  blocker?.destroy();
  blocker = undefined;
};

interface AttackOptions {
  readonly url: string;
  readonly kind: "deep" | "plain";
  readonly count: number;
  readonly concurrency: number;
  /** deep: nesting levels of the body. */
  readonly levels?: number;
  /** plain: size of the body. */
  readonly bytes?: number;
  /**
   * Once every request has been sent and none answered for this long (all that is left waits
   * for the slot), the slot is released, so they are answered; null: never released here.
   */
  readonly releaseAfterMs: number | null;
  /** A request not answered within this long is cut and counted as unanswered. */
  readonly timeoutMs: number;
}

interface Outcome {
  /** 0: no answer. */
  readonly status: number;
  /** The error code of the envelope, `ok` for a 200, or what is wrong with the answer. */
  readonly code: string;
  readonly envelope: boolean;
  readonly retryAfter: boolean;
  readonly error: string | null;
  readonly ms: number;
}

/** Whether `text` is the OpenAI error envelope: {error: {message, type, code, param}}. */
const envelopeCode = (text: string): string | null => {
  try {
    const json = JSON.parse(text) as { error?: Record<string, unknown> };
    const error = json.error;
    if (typeof error !== "object" || error === null) return null;
    if (typeof error.message !== "string" || typeof error.type !== "string") return null;
    if (!("param" in error) || !("code" in error)) return null;
    return typeof error.code === "string" ? error.code : String(error.code);
  } catch {
    return null;
  }
};

const completionOk = (text: string): boolean => {
  try {
    const json = JSON.parse(text) as { choices?: unknown };
    return Array.isArray(json.choices);
  } catch {
    return false;
  }
};

/** /proc/self/io wchar: bytes this process has written (to its sockets, nearly all of it). */
const writtenBytes = (): number =>
  Number(/wchar:\s+(\d+)/.exec(readFileSync("/proc/self/io", "utf8"))?.[1] ?? Number.NaN);

/** The slices the body is sent in: views of the one Buffer, never copies. */
const SLICE_BYTES = 2 ** 20;

/** `body` as a stream of views into it (fetch copies a Buffer given as the body, per request). */
const streamOf = (body: Buffer): ReadableStream<Uint8Array> => {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= body.length) return controller.close();
      const end = Math.min(body.length, at + SLICE_BYTES);
      controller.enqueue(body.subarray(at, end));
      at = end;
    },
  });
};

// fetch (undici), as the OpenAI SDK sends; it stops sending a body once the answer has come.
// Not node:http's client: when cortex refuses a body before reading it, it answers and closes
// the connection with the rest unread, the kernel resets it, and node:http's client then often
// loses the answer it had already received (EPIPE; curl and undici do not). The attacker must
// see what cortex answered.
const sendOne = async (url: string, body: Buffer, timeoutMs: number): Promise<Outcome> => {
  const started = performance.now();
  try {
    const res = await fetch(url, {
      method: "POST",
      // The length is declared, as a client sending a Buffer declares it.
      headers: { "content-type": "application/json", "content-length": String(body.length) },
      body: streamOf(body),
      duplex: "half",
      signal: AbortSignal.timeout(timeoutMs),
    } as RequestInit);
    const text = (await res.text()).slice(0, ANSWER_KEEP_BYTES);
    const code =
      res.status === 200
        ? completionOk(text)
          ? "ok"
          : "200 without a completion"
        : (envelopeCode(text) ?? "no envelope");
    return {
      status: res.status,
      code,
      envelope: res.status !== 200 && envelopeCode(text) !== null,
      retryAfter: res.headers.has("retry-after"),
      error: null,
      ms: performance.now() - started,
    };
  } catch (error) {
    const e = error as { name?: string; cause?: { code?: string } };
    return {
      status: 0,
      code: "no answer",
      envelope: false,
      retryAfter: false,
      error: e.cause?.code ?? e.name ?? String(error),
      ms: performance.now() - started,
    };
  }
};

const attack = async (options: AttackOptions) => {
  const target = new URL(options.url);
  if (target.hostname !== "127.0.0.1" && target.hostname !== "localhost")
    throw new Error(`refusing a non-loopback url ${options.url}`);
  const body =
    options.kind === "deep"
      ? deepBody(model, options.levels ?? 0)
      : plainBody(model, options.bytes ?? 0);
  const startedAt = Date.now();
  const t0 = performance.now();
  const written0 = writtenBytes();
  const outcomes: Outcome[] = [];
  let next = 0;
  let lastAnswerAt = Date.now();
  let releasedAt: number | null = null;
  let rssPeak = process.memoryUsage().rss;
  // Every request sent and no answer for releaseAfterMs: whatever still waits, waits for the
  // slot, which is then released.
  const watch = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    const after = options.releaseAfterMs;
    if (after === null || releasedAt !== null || next < options.count) return;
    if (Date.now() - lastAnswerAt < after) return;
    releasedAt = Date.now();
    release();
  }, 50);
  const worker = async () => {
    while (next < options.count) {
      next += 1;
      const outcome = await sendOne(options.url, body, options.timeoutMs);
      lastAnswerAt = Date.now();
      outcomes.push(outcome);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, options.count) }, worker));
  const sentBytes = writtenBytes() - written0;
  clearInterval(watch);
  const count = (key: (o: Outcome) => string) => {
    const counts: Record<string, number> = {};
    for (const o of outcomes) counts[key(o)] = (counts[key(o)] ?? 0) + 1;
    return counts;
  };
  const refused = outcomes.filter((o) => o.status !== 0 && o.status !== 200);
  const badAnswers = outcomes.filter(
    (o) => o.status === 0 || (o.status === 200 ? o.code !== "ok" : !o.envelope),
  );
  return {
    kind: options.kind,
    count: options.count,
    concurrency: options.concurrency,
    body_bytes: body.length,
    ...(options.kind === "deep" ? { levels: options.levels } : {}),
    started_at: startedAt,
    released_at: releasedAt,
    ended_at: Date.now(),
    wall_ms: Math.round(performance.now() - t0),
    statuses: count((o) => String(o.status)),
    codes: count((o) =>
      o.status === 0 ? `${o.code} (${o.error ?? "?"})` : `${o.status} ${o.code}`,
    ),
    answered: outcomes.filter((o) => o.status !== 0).length,
    refused: refused.length,
    refused_with_envelope: refused.filter((o) => o.envelope).length,
    retry_after_missing_on_503: refused.filter((o) => o.status === 503 && !o.retryAfter).length,
    bad_answers: badAnswers.length,
    bad_answer_samples: badAnswers
      .slice(0, 5)
      .map((o) => ({ status: o.status, code: o.code, error: o.error })),
    sent_bytes: sentBytes,
    request_ms: {
      min: Math.round(Math.min(...outcomes.map((o) => o.ms))),
      max: Math.round(Math.max(...outcomes.map((o) => o.ms))),
    },
    generator_rss_peak_mib: Math.round((rssPeak / 2 ** 20) * 10) / 10,
  };
};

const readJson = async (req: IncomingMessage): Promise<unknown> => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return chunks.length === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString("utf8"));
};

const control = createServer((req, res) => {
  const answer = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const run = async () => {
    if (req.method !== "POST") return answer(404, { error: "not found" });
    if (req.url === "/block") {
      await block();
      return answer(200, { blocked: true });
    }
    if (req.url === "/attack")
      return answer(200, await attack((await readJson(req)) as AttackOptions));
    return answer(404, { error: "not found" });
  };
  run().catch((error: unknown) => answer(500, { error: String(error) }));
});
// Attacks last longer than node's default request timeout would allow.
control.requestTimeout = 0;
control.listen(0, "127.0.0.1", () => {
  const { port } = control.address() as { port: number };
  process.stdout.write(
    `${JSON.stringify({ control: `http://127.0.0.1:${port}`, neuron: neuron.url, model })}\n`,
  );
});

process.on("SIGTERM", () => {
  blocker?.destroy();
  control.close();
  void neuron.close().then(() => process.exit(0));
});
