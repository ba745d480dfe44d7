import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { createSseParser, type SseMessage } from "@cortex/protocol/sse";
import type { AnswerStream } from "./answers.js";
import type { Timing } from "./durations.js";
import type { Loopback } from "./loopback.js";
import { NdjsonWriter } from "./ndjson.js";
import { innerAnswerError, OllamaError, ollamaErrorOf, streamEventError } from "./ollama-error.js";
import type { InferencePath } from "./options.js";

// One Ollama inference request's trip through cortex's own OpenAI endpoint: the translated body
// goes out over loopback, the answer comes back translated (a stream line by line as its events
// arrive, with backpressure both ways; a whole answer as one object). A client that goes away
// gives the inner request up, so its slot is freed as for any other client.

/** The most of an error answer read for its message. */
const MAX_ERROR_BYTES = 1 * 2 ** 20;
/** The most of a whole answer read (embeddings of 2048 inputs are large). */
const MAX_ANSWER_BYTES = 256 * 2 ** 20;
/** The most characters one event of a stream may take (a chunk holds a token or a few). */
const MAX_EVENT_CHARS = 4 * 2 ** 20;

/** How an answer comes back in Ollama's shape. */
export interface AnswerTranslation {
  /** Ollama's object for a whole OpenAI answer. */
  whole(answer: unknown, timing: Timing): Record<string, unknown>;
  /** A translator of a streamed answer, chunk by chunk (for requests that stream). */
  stream(): AnswerStream;
}

export interface RelayCall {
  readonly res: ServerResponse;
  readonly path: InferencePath;
  readonly body: Record<string, unknown>;
  readonly stream: boolean;
  /** The credential and the request id, for the inner request. */
  readonly headers: Record<string, string>;
  /** When the Ollama request arrived (`performance.now()`). */
  readonly startedMs: number;
  readonly translation: AnswerTranslation;
}

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return typeof value === "string" ? value : undefined;
};

/** The whole body of an inner answer, up to `limit` bytes (502 beyond). */
const readAll = async (answer: IncomingMessage, limit: number): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of answer as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new OllamaError(502, "the answer of cortex's endpoint is too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
};

/**
 * What the inner answer's routing headers say of its wait: `X-Cortex-Queue-Ms` in all, a load
 * when `X-Cortex-Cold-Start` is true. Null when absent (a stream kept alive while it waited sent
 * its head before it knew).
 */
const waitOf = (headers: IncomingHttpHeaders): { queueMs: number; loadMs: number } | null => {
  const queue = Number(header(headers, "x-cortex-queue-ms") ?? Number.NaN);
  if (!Number.isFinite(queue) || queue < 0) return null;
  return { queueMs: queue, loadMs: header(headers, "x-cortex-cold-start") === "true" ? queue : 0 };
};

/**
 * Relays `call`: resolves once the answer is complete; rejects with an OllamaError (or a
 * CortexError) when it failed before anything was sent. A stream that fails after its first
 * line ends with an error line instead; a client that went away ends it quietly.
 */
export const relay = async (
  loopback: Loopback,
  call: RelayCall,
  now: () => number = () => performance.now(),
): Promise<void> => {
  const { res } = call;
  const sentMs = now();
  const inner = loopback.post(call.path, JSON.stringify(call.body), {
    "content-type": "application/json",
    accept: call.stream ? "text/event-stream" : "application/json",
    ...call.headers,
  });
  let gone = false;
  const onClose = () => {
    if (res.writableFinished) return;
    gone = true;
    inner.abort();
  };
  res.on("close", onClose);
  try {
    let answer: IncomingMessage;
    try {
      answer = await inner.answer;
    } catch (error) {
      if (gone) return;
      throw new OllamaError(
        502,
        `cortex could not reach its own OpenAI endpoint: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    const status = answer.statusCode ?? 502;
    if (status >= 400) {
      const text = (await readAll(answer, MAX_ERROR_BYTES)).toString("utf8");
      throw innerAnswerError(status, text, header(answer.headers, "retry-after"));
    }
    const wait = waitOf(answer.headers);
    const eventStream = (header(answer.headers, "content-type") ?? "").startsWith(
      "text/event-stream",
    );
    if (call.stream && eventStream) {
      await relayStream(answer, call, { sentMs, wait, now, gone: () => gone });
      return;
    }
    const text = (await readAll(answer, MAX_ANSWER_BYTES)).toString("utf8");
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new OllamaError(502, "the answer of cortex's endpoint is not JSON");
    }
    const object = call.translation.whole(parsed, {
      startedMs: call.startedMs,
      sentMs,
      queueMs: wait?.queueMs ?? 0,
      loadMs: wait?.loadMs ?? 0,
      firstTokenMs: null,
      endMs: now(),
    });
    // Asked to stream and answered whole (a harness that does not stream): one line.
    if (call.stream) new NdjsonWriter(res).end([object]);
    else {
      const body = JSON.stringify(object);
      res.statusCode = 200;
      res.setHeader("Content-Type", "application/json; charset=utf-8");
      res.setHeader("Content-Length", Buffer.byteLength(body));
      res.end(body);
    }
  } catch (error) {
    // The client is gone: nothing to tell anyone.
    if (gone) return;
    throw error;
  } finally {
    res.off("close", onClose);
  }
};

interface StreamContext {
  readonly sentMs: number;
  readonly wait: { queueMs: number; loadMs: number } | null;
  readonly now: () => number;
  readonly gone: () => boolean;
}

/** Relays a streamed answer: each event's lines as they come, then the final line. */
const relayStream = async (
  answer: IncomingMessage,
  call: RelayCall,
  context: StreamContext,
): Promise<void> => {
  const { now } = context;
  const writer = new NdjsonWriter(call.res);
  const translator = call.translation.stream();
  let done = false;
  let eventChars = 0;
  // A stream kept alive while it waited says what it waits for (`: loading <model> 40%`,
  // `: waiting for a free slot on <model>`): the last such comment bounds the wait.
  let waitedMs: number | null = null;
  let loadedMs: number | null = null;
  const parser = createSseParser();
  // One event of the stream (`data:` parsed), or a comment.
  const handle = (message: SseMessage): void => {
    if (message.kind === "comment") {
      eventChars = 0;
      waitedMs = now();
      if (message.text.startsWith("loading ")) loadedMs = waitedMs;
      return;
    }
    eventChars = 0;
    if (done) return;
    if (message.data === "[DONE]") {
      done = true;
      return;
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(message.data);
    } catch {
      throw new OllamaError(
        502,
        "the answer stream of cortex's endpoint holds an event that is not JSON",
      );
    }
    if (typeof chunk === "object" && chunk !== null && Object.hasOwn(chunk, "error"))
      throw streamEventError(chunk);
    writer.write(translator.push(chunk, now()));
  };
  try {
    answer.setEncoding("utf8");
    for await (const text of answer as AsyncIterable<string>) {
      eventChars += text.length;
      if (eventChars > MAX_EVENT_CHARS)
        throw new OllamaError(
          502,
          "the answer stream of cortex's endpoint sent an event too large",
        );
      for (const message of parser.push(text)) handle(message);
      await writer.drained();
    }
    // `[DONE]` ends an OpenAI stream; a harness that omits it but finished and closed cleanly
    // is complete too.
    if (!done && !(answer.complete && translator.finished))
      throw new OllamaError(502, "the answer broke off before it was complete");
    const since = (at: number | null) => (at === null ? 0 : at - context.sentMs);
    writer.end(
      translator.end({
        startedMs: call.startedMs,
        sentMs: context.sentMs,
        queueMs: context.wait?.queueMs ?? since(waitedMs),
        loadMs: context.wait?.loadMs ?? since(loadedMs),
        endMs: now(),
      }),
    );
  } catch (error) {
    if (context.gone()) return;
    const known = ollamaErrorOf(error);
    if (known && writer.started) writer.fail(known);
    else throw error;
  }
};
