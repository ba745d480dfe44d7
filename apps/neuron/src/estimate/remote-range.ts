import { capText } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import { redirectAllowed, sourceAllowed } from "../sources/address-policy.js";
import { parseContentRange } from "../sources/download.js";
import { displayUrl } from "../sources/parse-source.js";
import type { RangeReader } from "./read-header.js";

// HTTP range reads of a remote model file, held to the rules its download is (download.ts): the
// source URL checked, redirects followed by hand with every hop checked before it is contacted
// (address-policy.ts), the caller's headers (the HF token) sent to the first origin only. A
// server that ignores Range is read only as far as needed and then cut off: the file itself is
// never downloaded.

export interface RemoteFile {
  readonly url: string;
  /** The URL as messages show it (no query string). */
  readonly display: string;
  /** Sent to the first origin only. */
  readonly headers: Readonly<Record<string, string>>;
  readonly maxRedirects: number;
  /** What to fix after an HTTP error status, appended to the message. */
  readonly hint: (status: number) => string;
  /** Ends every request of the read (the estimate's deadline). */
  readonly signal: AbortSignal;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** 502 upstream_error: the source could not be read, and another try (or node) may do better. */
export const unreachable = (file: RemoteFile, reason: string, cause?: unknown): NeuronError =>
  new NeuronError("upstream_error", capText(`reading ${file.display} failed: ${reason}`), {
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

/** GET with a Range header, redirects followed by hand and checked hop by hop. */
const get = async (file: RemoteFile, range: string): Promise<Response> => {
  let url = new URL(file.url);
  const origin = url.origin;
  const source = sourceAllowed(url);
  if (!source.allowed) {
    throw new NeuronError(
      "invalid_request_error",
      capText(`source ${file.display} is refused: ${source.reason}`),
      { param: "source" },
    );
  }
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { "accept-encoding": "identity", range };
    if (url.origin === origin) Object.assign(headers, file.headers);
    const response = await fetch(url, { headers, redirect: "manual", signal: file.signal });
    const location = response.headers.get("location");
    if (!REDIRECTS.has(response.status) || location === null) return response;
    await response.body?.cancel();
    if (hop >= file.maxRedirects)
      throw unreachable(file, `more than ${file.maxRedirects} redirects`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw unreachable(file, "the server redirected to an invalid URL");
    }
    const verdict = redirectAllowed(url, next);
    if (!verdict.allowed) {
      throw unreachable(file, `refusing a redirect to ${displayUrl(next)}: ${verdict.reason}`);
    }
    url = next;
  }
};

/** Reads `skip` bytes then up to `keep` more of `body`, and cancels the rest of it. */
const take = async (
  body: ReadableStream<Uint8Array> | null,
  skip: number,
  keep: number,
): Promise<Uint8Array> => {
  const out = new Uint8Array(keep);
  if (body === null) return out.subarray(0, 0);
  let position = 0;
  let filled = 0;
  const reader = body.getReader();
  try {
    while (filled < keep) {
      const chunk = await reader.read();
      if (chunk.done) break;
      const from = Math.max(0, skip - position);
      position += chunk.value.byteLength;
      if (from >= chunk.value.byteLength) continue;
      const part = chunk.value.subarray(from, from + keep - filled);
      out.set(part, filled);
      filled += part.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return out.subarray(0, filled);
};

const lengthOf = (response: Response): number | null => {
  const encoding = response.headers.get("content-encoding");
  if (encoding !== null && encoding.toLowerCase() !== "identity") return null;
  const header = response.headers.get("content-length");
  return header !== null && /^\d{1,15}$/.test(header) ? Number(header) : null;
};

/** A RangeReader over HTTP range requests to `file`; every failure is upstream_error (502). */
export const remoteReader =
  (file: RemoteFile): RangeReader =>
  async (start, length) => {
    try {
      const response = await get(file, `bytes=${start}-${start + length - 1}`);
      if (response.status === 416) {
        await response.body?.cancel();
        return {
          bytes: new Uint8Array(0),
          total: parseContentRange(response.headers.get("content-range"))?.total ?? null,
        };
      }
      if (response.status === 206) {
        const range = parseContentRange(response.headers.get("content-range"));
        if (range === null || range.start !== start) {
          await response.body?.cancel();
          throw unreachable(file, "the server answered another range than the one asked for");
        }
        return { bytes: await take(response.body, 0, length), total: range.total };
      }
      if (response.status === 200) {
        // No range support: the bytes wanted are somewhere in the whole file; read to them only.
        const total = lengthOf(response);
        return { bytes: await take(response.body, start, length), total };
      }
      await response.body?.cancel();
      const reason = `HTTP ${response.status} ${response.statusText}`.trim();
      throw unreachable(file, `${reason}${file.hint(response.status)}`);
    } catch (error) {
      if (error instanceof NeuronError) throw error;
      if (file.signal.aborted) {
        throw unreachable(file, String((file.signal.reason as Error)?.message ?? "aborted"));
      }
      throw unreachable(file, describeNetworkError(error), error);
    }
  };
