// A fetch that keeps a copy of every answer, for clients that hide the wire: a test can check
// which API a client called and validate the raw answers against the OpenAI schemas.

/** One request and its answer: JSON parsed, or an event stream's `data:` payloads. */
export interface Exchange {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** The parsed JSON body; for an event stream, each `data:` payload parsed (`[DONE]` left out). */
  readonly body: unknown;
  readonly stream: boolean;
}

/** The `data:` payloads of an event stream's text, parsed as JSON, `[DONE]` left out. */
const dataOf = (text: string): unknown[] =>
  text
    .split(/\r?\n/)
    .filter((line) => line.startsWith("data:") && line.slice(5).trim() !== "[DONE]")
    .map((line) => JSON.parse(line.slice(5).trim()) as unknown);

/** What a recording fetch saw, once every answer has been read to its end. */
export interface Recorder {
  readonly fetch: typeof fetch;
  readonly exchanges: () => Promise<Exchange[]>;
}

/**
 * A fetch to hand a client (the client reads the answers as usual; a copy is read beside it).
 * `exchanges` waits for every copy, so call it after the client is done.
 */
export const recordingFetch = (): Recorder => {
  const pending: Promise<Exchange>[] = [];
  const recording = async (input: string | URL | Request, init?: RequestInit) => {
    const response = await fetch(input, init);
    const url = new URL(input instanceof Request ? input.url : input);
    const method = init?.method ?? (input instanceof Request ? input.method : "GET");
    const stream = (response.headers.get("content-type") ?? "").startsWith("text/event-stream");
    const copy = response.clone();
    pending.push(
      copy.text().then((text) => ({
        method,
        path: url.pathname,
        status: response.status,
        body: stream ? dataOf(text) : text === "" ? null : (JSON.parse(text) as unknown),
        stream,
      })),
    );
    return response;
  };
  return { fetch: recording as typeof fetch, exchanges: () => Promise.all(pending) };
};
