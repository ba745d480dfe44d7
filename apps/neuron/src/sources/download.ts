import { open, rename, rm, stat } from "node:fs/promises";
import { capText } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import { guardedGet } from "./guarded-get.js";

export interface DownloadRequest {
  readonly url: string;
  /** The URL as messages show it (no query string, never a token). */
  readonly display: string;
  /** Final path; data goes to `${target}.partial` and is renamed only once complete. */
  readonly target: string;
  /** Sent to the first origin only; dropped as soon as a redirect leaves it (HF → CDN). */
  readonly headers: Readonly<Record<string, string>>;
  /** No response or no data for this long fails the download (the .partial stays for resume). */
  readonly idleTimeoutMs: number;
  readonly maxRedirects: number;
  /** What to fix after an HTTP error status, appended to the message. */
  readonly hint: (status: number) => string;
  /** Bytes on disk so far (including a resumed .partial) and the full size when known. */
  readonly onBytes: (bytes: number, total: number | null) => void;
  readonly signal: AbortSignal;
}

const partialOf = (target: string): string => `${target}.partial`;

const sizeOf = async (path: string): Promise<number> => {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
};

// Capped: the URL comes from the load request and the reason may quote a server's Location.
const failed = (request: DownloadRequest, reason: string, cause?: unknown): NeuronError =>
  new NeuronError("load_failed", capText(`downloading ${request.display} failed: ${reason}`), {
    param: "source",
    cause,
  });

/** undici reports network failures as `TypeError: fetch failed` with the real error as cause. */
const describeNetworkError = (error: unknown): string => {
  const cause = (error as { cause?: unknown }).cause ?? error;
  const code = (cause as { code?: unknown }).code;
  const message = cause instanceof Error ? cause.message : String(cause);
  return typeof code === "string" ? `${code} (${message})` : message;
};

/** `bytes 100-199/1000` → {start: 100, total: 1000}; `bytes *\/1000` → {start: null, total: 1000}. */
export const parseContentRange = (
  header: string | null,
): { start: number | null; total: number | null } | null => {
  const match = /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/i.exec(header?.trim() ?? "");
  if (!match) return null;
  return {
    start: match[1] === undefined ? null : Number(match[1]),
    total: match[2] === undefined || match[2] === "*" ? null : Number(match[2]),
  };
};

const contentLength = (response: Response): number | null => {
  // A compressed body arrives decoded, so its length says nothing about the bytes we write.
  const encoding = response.headers.get("content-encoding");
  if (encoding !== null && encoding.toLowerCase() !== "identity") return null;
  const header = response.headers.get("content-length");
  return header !== null && /^\d+$/.test(header) ? Number(header) : null;
};

/** GET of the download's URL (from byte `range` on), through `guardedGet`'s checks. */
const get = (request: DownloadRequest, range: number, signal: AbortSignal): Promise<Response> =>
  guardedGet({
    url: request.url,
    display: request.display,
    headers: request.headers,
    ...(range > 0 ? { range: `bytes=${range}-` } : {}),
    maxRedirects: request.maxRedirects,
    signal,
    failed: (reason) => failed(request, reason),
  });

/**
 * Downloads `request.url` into `request.target`, resuming a `.partial` left by an earlier try.
 * Only a complete file is renamed into place, so a harness never sees half a model. On any
 * failure the `.partial` stays for the next attempt; an abort rejects with the signal's reason.
 */
export const download = async (request: DownloadRequest): Promise<void> => {
  const partial = partialOf(request.target);
  const idle = new AbortController();
  const signal = AbortSignal.any([request.signal, idle.signal]);
  let timer: NodeJS.Timeout | undefined;
  const touch = () => {
    clearTimeout(timer);
    timer = setTimeout(
      () => idle.abort(failed(request, `no data for ${request.idleTimeoutMs / 1000} s`)),
      request.idleTimeoutMs,
    );
  };
  try {
    // One restart at most: a server that keeps answering a resume with nonsense gets one fresh
    // download, not an endless loop.
    for (let restarts = 0; ; restarts++) {
      const have = await sizeOf(partial);
      touch();
      const response = await get(request, have, signal);
      const done = await receive(request, response, partial, have, touch);
      if (done) break;
      if (restarts >= 1) throw failed(request, "the server does not resume consistently");
      await rm(partial, { force: true });
    }
    await rename(partial, request.target);
  } catch (error) {
    if (idle.signal.aborted) throw idle.signal.reason;
    if (request.signal.aborted) throw request.signal.reason;
    if (error instanceof NeuronError) throw error;
    throw failed(request, describeNetworkError(error), error);
  } finally {
    clearTimeout(timer);
  }
};

/**
 * Handles one response: writes its body into the .partial. Returns false when the partial must be
 * thrown away and the download started over (the server could not continue from it).
 */
const receive = async (
  request: DownloadRequest,
  response: Response,
  partial: string,
  have: number,
  touch: () => void,
): Promise<boolean> => {
  if (response.status === 416) {
    await response.body?.cancel();
    // Nothing left to send: complete if the partial is exactly the advertised size.
    const total = parseContentRange(response.headers.get("content-range"))?.total ?? null;
    if (have > 0 && total === have) {
      request.onBytes(have, total);
      return true;
    }
    return false;
  }
  let append = false;
  let total: number | null;
  if (response.status === 206) {
    const range = parseContentRange(response.headers.get("content-range"));
    if (range === null || range.start !== have) {
      await response.body?.cancel();
      return false;
    }
    const length = contentLength(response);
    total = range.total ?? (length === null ? null : have + length);
    append = true;
  } else if (response.status === 200) {
    total = contentLength(response);
  } else {
    await response.body?.cancel();
    const reason = `HTTP ${response.status} ${response.statusText}`.trim();
    throw failed(request, `${reason}${request.hint(response.status)}`);
  }
  let bytes = append ? have : 0;
  request.onBytes(bytes, total);
  const file = await open(partial, append ? "a" : "w");
  try {
    if (response.body) {
      const reader = response.body.getReader();
      try {
        for (;;) {
          const chunk = await reader.read();
          if (chunk.done) break;
          touch();
          await file.write(chunk.value);
          bytes += chunk.value.byteLength;
          request.onBytes(bytes, total);
        }
      } catch (error) {
        // Releases the connection when writing failed or the caller aborted mid-body.
        await reader.cancel().catch(() => {});
        throw error;
      }
    }
    // The data must be on disk before the rename makes it visible as the finished model.
    await file.sync();
  } finally {
    await file.close();
  }
  if (total !== null && bytes !== total) {
    throw failed(request, `the connection ended after ${bytes} of ${total} bytes`);
  }
  return true;
};
