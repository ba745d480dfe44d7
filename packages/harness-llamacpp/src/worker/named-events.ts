import { startEventStream } from "@cortex/http-kit";
import type { Response } from "express";

/**
 * Server-sent events with names (`event: …` then `data: …`), as the Responses and Anthropic
 * Messages streams send them; neither ends with a `[DONE]` sentinel. As with the chat stream,
 * headers go out with the first event, so an error found before any token (a prompt that does
 * not fit, a request still waiting for a slot whose client leaves) is still a plain JSON answer.
 */
export class NamedEventStream {
  readonly #res: Response;
  #started = false;

  constructor(res: Response) {
    this.#res = res;
  }

  get started(): boolean {
    return this.#started;
  }

  send(event: string, data: unknown): void {
    if (!this.#started) {
      this.#started = true;
      startEventStream(this.#res);
    }
    if (!this.#res.writableEnded)
      this.#res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  end(): void {
    if (!this.#res.writableEnded) this.#res.end();
  }
}

/** What a client reads when generation fails after its stream started; the cause is logged. */
export const STREAM_FAILURE = "the model failed while generating; the worker's log has the cause";

/**
 * Logs a generation that failed after its stream had started: the client gets a generic failure
 * event (never the internal message), the operator the stack on stderr, as the error handler does.
 */
export const logStreamFailure = (route: string, error: unknown): void => {
  console.error(`${route}: generation failed mid-stream`, error);
};
