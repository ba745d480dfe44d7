import { Agent, type IncomingMessage, request } from "node:http";
import { CortexError } from "../errors.js";

// Requests to cortex's own OpenAI endpoint, over loopback HTTP: every routing feature (cold
// loads, queues, retries, affinity, the request log) applies to an Ollama request unchanged,
// because it is one more client of `/v1`.

/**
 * Where cortex reaches itself, for the host it listens on and the port it got: loopback for
 * the wildcard addresses (127.0.0.1 for 0.0.0.0 or no host, [::1] for ::), else that host.
 */
export const loopbackUrl = (host: string, port: number): string => {
  const name =
    host === "0.0.0.0" || host === ""
      ? "127.0.0.1"
      : host === "::"
        ? "[::1]"
        : host.includes(":")
          ? `[${host}]`
          : host;
  return `http://${name}:${port}`;
};

/** One request under way: its answer's head, and a way to give it up. */
export interface InnerCall {
  /** The answer once its head arrived; rejects when the connection failed first. */
  readonly answer: Promise<IncomingMessage>;
  /** Gives the request up (its answer errors, the inner request sees its client go). */
  readonly abort: () => void;
}

/** The client of cortex's own endpoint: one keep-alive agent for every Ollama request. */
export class Loopback {
  readonly #url: () => string | undefined;
  readonly #agent = new Agent({ keepAlive: true });

  /** `url` is cortex's own address, known once it listens (undefined before). */
  constructor(url: () => string | undefined) {
    this.#url = url;
  }

  /** Sends `body` to `path`; 503 before cortex listens. */
  post(path: string, body: string, headers: Record<string, string>): InnerCall {
    const base = this.#url();
    if (base === undefined)
      throw new CortexError("service_unavailable", "cortex is not listening yet", {
        retryAfterS: 1,
      });
    const req = request(new URL(path, base), {
      method: "POST",
      agent: this.#agent,
      headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
    });
    const answer = new Promise<IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.once("error", reject);
    });
    // Errors after the head (an abort) surface on the answer's body; none may go unheard.
    req.on("error", () => {});
    req.end(body);
    return { answer, abort: () => req.destroy() };
  }

  /** Closes the kept-alive connections (cortex's stop). */
  close(): void {
    this.#agent.destroy();
  }
}
