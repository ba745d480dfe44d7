import { capText } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import { parseContentRange } from "../sources/download.js";
import { guardedGet } from "../sources/guarded-get.js";
import type { RangeReader } from "./read-header.js";

// HTTP range reads of a remote model file, held to the rules its download is: the same guarded
// GET (sources/guarded-get.ts: the URL and every redirect checked, the HF token to the first
// origin only). A server that ignores Range is read only as far as needed and then cut off: the
// file itself is never downloaded.

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

/** GET with a Range header, through `guardedGet`'s checks (the download's). */
const get = (file: RemoteFile, range: string): Promise<Response> =>
  guardedGet({
    url: file.url,
    display: file.display,
    headers: file.headers,
    range,
    maxRedirects: file.maxRedirects,
    signal: file.signal,
    failed: (reason) => unreachable(file, reason),
  });

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
