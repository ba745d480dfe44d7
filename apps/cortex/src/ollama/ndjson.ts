import type { ServerResponse } from "node:http";
import { errorLine, type OllamaError } from "./ollama-error.js";

// Ollama's streamed answers: `application/x-ndjson`, one JSON object per line, each written as
// it is known. The head goes out with the first line, as Ollama's own server does (after the
// model is loaded), so an error before it still gets its status.

export const NDJSON_TYPE = "application/x-ndjson";

/** Objects as NDJSON: one JSON text per line (JSON escapes every newline inside strings). */
export const ndjsonOf = (lines: readonly object[]): string =>
  lines.map((line) => `${JSON.stringify(line)}\n`).join("");

/** Writes one Ollama stream to a response, with backpressure. */
export class NdjsonWriter {
  readonly #res: ServerResponse;

  constructor(res: ServerResponse) {
    this.#res = res;
  }

  /** Whether the head (200) has gone out: errors from here on are a last line. */
  get started(): boolean {
    return this.#res.headersSent;
  }

  /** Writes `lines` (the head first, if it has not gone); none writes nothing. */
  write(lines: readonly object[]): void {
    if (lines.length === 0 || this.#res.writableEnded || this.#res.destroyed) return;
    this.#start();
    this.#res.write(ndjsonOf(lines));
  }

  /**
   * Resolves once the client has taken what was written (at once when nothing waits), or when
   * it went away: the reader of the inner answer waits on it, so a slow client slows it.
   */
  async drained(): Promise<void> {
    const res = this.#res;
    if (!res.writableNeedDrain || res.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        res.off("drain", done);
        res.off("close", done);
        resolve();
      };
      res.on("drain", done);
      res.on("close", done);
    });
  }

  /** Ends the stream after `lines`. */
  end(lines: readonly object[] = []): void {
    if (this.#res.writableEnded || this.#res.destroyed) return;
    this.#start();
    this.#res.end(ndjsonOf(lines));
  }

  /** Ends the stream with an error line, which the ollama clients raise. */
  fail(error: OllamaError): void {
    if (this.#res.writableEnded || this.#res.destroyed) return;
    this.#start();
    this.#res.end(errorLine(error));
  }

  #start(): void {
    const res = this.#res;
    if (res.headersSent) return;
    res.statusCode = 200;
    res.setHeader("Content-Type", NDJSON_TYPE);
    res.setHeader("Cache-Control", "no-cache");
    // Proxies in front (nginx) would otherwise hold the lines back.
    res.setHeader("X-Accel-Buffering", "no");
  }
}
