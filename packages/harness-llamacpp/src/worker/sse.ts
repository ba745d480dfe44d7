import { startEventStream } from "@cortex/http-kit";
import type { Response } from "express";

/**
 * Server-sent events for OpenAI streams. Headers go out with the first event, not before, so
 * an error found before any token (a prompt that does not fit) is still a plain JSON 4xx.
 */
export class EventStream {
  readonly #res: Response;
  #started = false;

  constructor(res: Response) {
    this.#res = res;
  }

  get started(): boolean {
    return this.#started;
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    startEventStream(this.#res);
  }

  send(data: unknown): void {
    this.#start();
    if (!this.#res.writableEnded) this.#res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream as OpenAI does, with `data: [DONE]`. */
  done(): void {
    this.#start();
    if (!this.#res.writableEnded) this.#res.end("data: [DONE]\n\n");
  }
}
