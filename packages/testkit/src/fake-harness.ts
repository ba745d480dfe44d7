import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { parseArgs } from "node:util";
import { z } from "zod";
import { paddingOf, writeAndWait } from "./backpressure.js";
import { completionAnswer, embeddingAnswer, streamChunk } from "./fake-answers.js";

// A fake OpenAI-compatible model server for neuron tests and benchmarks. It is started the way
// the neuron starts any template harness, and its "model file" is a JSON document that scripts
// its behaviour, so one catalogue entry can be slow to start, another crash, another hang.
//
//   node fake-harness.js --model <behaviour.json> --port <port> [--host 127.0.0.1] [--alias id]

export const FakeBehaviour = z.strictObject({
  /** Delay before /health answers 200 (it listens, and answers 503, at once). */
  start_delay_ms: z.int().nonnegative().default(0),
  /** Exit with this code instead of ever becoming ready. */
  fail_start_code: z.int().min(1).max(255).optional(),
  /**
   * An engine's out-of-memory line (its own words, e.g. llama.cpp's `cudaMalloc failed: out of
   * memory`), printed to stderr before exiting with code 1 instead of ever becoming ready.
   */
  out_of_memory_line: z.string().max(4096).optional(),
  /** Exit with code 1 this long after becoming ready. */
  crash_after_ms: z.int().positive().optional(),
  /** Ignore SIGTERM (the neuron must fall back to SIGKILL). */
  hang_on_sigterm: z.boolean().default(false),
  /** Delay before each answer and between stream chunks. */
  latency_ms: z.int().nonnegative().default(0),
  /** Chunks in a streamed answer. */
  stream_chunks: z.int().positive().default(5),
  /** Padding (an SSE comment of this many bytes) before each chunk, to make streams heavy. */
  stream_padding_bytes: z.int().nonnegative().default(0),
  /** Text printed to stdout at start, for log tests. */
  banner: z.string().default("fake harness starting"),
});
export type FakeBehaviour = z.output<typeof FakeBehaviour>;
export type FakeBehaviourInput = z.input<typeof FakeBehaviour>;

const sleep = (ms: number) =>
  ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();

const readBody = async (req: IncomingMessage): Promise<Record<string, unknown> | null> => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  try {
    const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
    return typeof parsed === "object" && parsed !== null
      ? (parsed as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
};

/** The most bytes a transcription upload may have (OpenAI's own limit for audio files). */
const MAX_UPLOAD_BYTES = 25 * 2 ** 20;
/** The most parts a multipart body may have: a transcription request sends a handful. */
const MAX_PARTS = 64;

/** The raw body, or null once it passes `limit` bytes (the rest is drained, not kept). */
const readRaw = async (req: IncomingMessage, limit: number): Promise<Buffer | null> => {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size <= limit) chunks.push(chunk as Buffer);
  }
  return size <= limit ? Buffer.concat(chunks) : null;
};

/**
 * The parts of a multipart/form-data body by name (the first of each name), with their bytes:
 * just enough to read a transcription request. Null when the body is not multipart.
 */
const multipartParts = (
  contentType: string | undefined,
  body: Buffer,
): Map<string, Buffer> | null => {
  const boundary = /;\s*boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))/i.exec(contentType ?? "");
  if (!/^multipart\/form-data\s*;/i.test(contentType ?? "") || !boundary) return null;
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  const parts = new Map<string, Buffer>();
  // Each part sits between "--boundary\r\n" and "\r\n--boundary"; the last one ends in "--".
  let at = body.indexOf(delimiter);
  for (let count = 0; at >= 0 && count < MAX_PARTS; count += 1) {
    const start = at + delimiter.length + 2;
    const next = body.indexOf(delimiter, start);
    if (next < 0) break;
    const part = body.subarray(start, Math.max(start, next - 2));
    const split = part.indexOf("\r\n\r\n");
    const name = /(?:^|;)\s*name="([^"]*)"/i.exec(
      part.subarray(0, Math.max(split, 0)).toString(),
    )?.[1];
    if (split >= 0 && name !== undefined && !parts.has(name))
      parts.set(name, part.subarray(split + 4));
    at = next;
  }
  return parts;
};

const json = (res: ServerResponse, status: number, body: unknown): void => {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
};

export interface FakeHarnessOptions {
  readonly behaviour: FakeBehaviour;
  readonly port: number;
  readonly host: string;
  readonly alias: string;
}

/** Starts the fake server; resolves once it listens. Used in-process by benchmarks, too. */
export const startFakeHarness = async (options: FakeHarnessOptions) => {
  const { behaviour, alias } = options;
  let ready = behaviour.start_delay_ms === 0;
  let requests = 0;
  const created = Math.floor(Date.now() / 1000);
  // A transcription names the file's size and the model, so a test sees both arrived whole.
  const transcribe = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const raw = await readRaw(req, MAX_UPLOAD_BYTES);
    const parts = raw && multipartParts(req.headers["content-type"], raw);
    const file = parts?.get("file");
    if (!parts || !file)
      return json(res, 400, {
        error: {
          message: "a transcription is a multipart/form-data body with a file part",
          type: "invalid_request_error",
          code: null,
          param: "file",
        },
      });
    if (!ready)
      return json(res, 503, {
        error: { message: "loading", type: "server_error", code: null, param: null },
      });
    requests += 1;
    const model = parts.get("model")?.toString("utf8") ?? alias;
    await sleep(behaviour.latency_ms);
    return json(res, 200, {
      text: `fake transcription of ${file.length} bytes by ${model}`,
    });
  };
  const server = createServer(async (req, res) => {
    const url = req.url ?? "/";
    if (req.method === "GET" && url === "/health")
      return json(res, ready ? 200 : 503, { status: ready ? "ok" : "loading" });
    if (req.method === "GET" && url === "/v1/models") {
      return json(res, 200, {
        object: "list",
        data: [{ id: alias, object: "model", created, owned_by: "fake" }],
      });
    }
    if (req.method !== "POST" || !url.startsWith("/v1/"))
      return json(res, 404, {
        error: { message: "not found", type: "not_found_error", code: null, param: null },
      });
    if (url.split("?")[0] === "/v1/audio/transcriptions") return transcribe(req, res);
    const body = await readBody(req);
    if (!body)
      return json(res, 400, {
        error: { message: "invalid JSON", type: "invalid_request_error", code: null, param: null },
      });
    if (!ready)
      return json(res, 503, {
        error: { message: "loading", type: "server_error", code: null, param: null },
      });
    requests += 1;
    const id = `fake-${requests}`;
    const model = typeof body.model === "string" ? body.model : alias;
    await sleep(behaviour.latency_ms);
    if (url === "/v1/embeddings") {
      return json(res, 200, embeddingAnswer(model, body.input));
    }
    const chat = url === "/v1/chat/completions";
    if (body.stream !== true) {
      return json(res, 200, completionAnswer(chat, id, created, model));
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    let closed = false;
    res.on("close", () => {
      closed = true;
    });
    for (let i = 0; i < behaviour.stream_chunks && !closed; i += 1) {
      if (i > 0) await sleep(behaviour.latency_ms);
      const last = i === behaviour.stream_chunks - 1;
      const chunk = streamChunk(chat, id, created, model, i, last);
      await writeAndWait(
        res,
        `${paddingOf(behaviour.stream_padding_bytes)}data: ${JSON.stringify(chunk)}\n\n`,
      );
    }
    if (!closed) res.end("data: [DONE]\n\n");
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  if (!ready)
    setTimeout(() => {
      ready = true;
    }, behaviour.start_delay_ms);
  return {
    server,
    port: (server.address() as { port: number }).port,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

/** The CLI entry: `node fake-harness.js --model behaviour.json --port N`. */
export const main = async (argv: readonly string[]): Promise<void> => {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      model: { type: "string" },
      port: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      alias: { type: "string", default: "fake" },
    },
    strict: false,
  });
  if (typeof values.model !== "string" || typeof values.port !== "string") {
    process.stderr.write("usage: fake-harness --model <behaviour.json> --port <port>\n");
    process.exit(2);
  }
  const text = readFileSync(values.model, "utf8");
  const behaviour = FakeBehaviour.parse(text.trim() === "" ? {} : JSON.parse(text));
  process.stdout.write(`${behaviour.banner}\n`);
  if (behaviour.fail_start_code !== undefined) {
    process.stderr.write(
      `fake harness: failing on purpose with code ${behaviour.fail_start_code}\n`,
    );
    process.exit(behaviour.fail_start_code);
  }
  if (behaviour.out_of_memory_line !== undefined) {
    process.stderr.write(`${behaviour.out_of_memory_line}\n`);
    process.exit(1);
  }
  const harness = await startFakeHarness({
    behaviour,
    port: Number(values.port),
    host: String(values.host),
    alias: String(values.alias),
  });
  process.stdout.write(`fake harness listening on ${harness.port}\n`);
  process.on("SIGTERM", () => {
    if (behaviour.hang_on_sigterm) {
      process.stdout.write("fake harness: ignoring SIGTERM\n");
      return;
    }
    void harness.close().then(() => process.exit(0));
  });
  if (behaviour.crash_after_ms !== undefined) {
    setTimeout(() => {
      process.stderr.write("fake harness: crashing on purpose\n");
      process.exit(1);
    }, behaviour.start_delay_ms + behaviour.crash_after_ms);
  }
};
