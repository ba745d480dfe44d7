import type { FileHandle } from "node:fs/promises";
import { type GGUFParseOutput, gguf } from "@huggingface/gguf";
import { capText } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import type { GgufHeader } from "./model-facts.js";

// Reads a GGUF header, and nothing past it, with @huggingface/gguf. The library reads a file in
// 2 MB ranges through a `fetch` it is given; every source is served to it through one such
// function over a RangeReader (a local file handle, or HTTP range requests: remote-range.ts), so
// local and remote reads share one byte budget and one count of what was read, and a local file
// is read through the handle opened after its path was checked, never by name again.

/**
 * Reads `length` bytes at `start` (fewer at the end of the file, none past it) and the file's
 * size when known.
 */
export type RangeReader = (
  start: number,
  length: number,
) => Promise<{ readonly bytes: Uint8Array; readonly total: number | null }>;

/**
 * The most of a file read for its header. Headers are mostly the tokenizer's vocabulary: a few
 * MB for 150k-256k tokens; a header still unread past this is not worth estimating.
 */
export const MAX_HEADER_BYTES = 32 * 2 ** 20;

export interface HeaderRead {
  readonly header: GgufHeader;
  /** Bytes the reader returned, for the answer's `basis`. */
  readonly bytesRead: number;
}

/** A 422 with its reason, what every unusable file becomes. */
export const notEstimable = (reason: string): NeuronError =>
  new NeuronError("not_estimable", capText(reason), { param: "source" });

const megabytes = (bytes: number): string => `${+(bytes / 2 ** 20).toFixed(3)} MiB`;

/** The library picks its reader by the scheme; the URL is never contacted (our fetch answers). */
const LIBRARY_URI = "https://gguf-header.invalid/model.gguf";

const rangeOf = (init: RequestInit | undefined): { start: number; end: number } | null => {
  const headers = new Headers(init?.headers);
  const match = /^bytes=(\d{1,15})-(\d{1,15})$/.exec(headers.get("range") ?? "");
  return match ? { start: Number(match[1]), end: Number(match[2]) } : null;
};

/**
 * Parses the header `read` serves, reading at most `budget` bytes. Throws not_estimable for a
 * file that is not GGUF, a header the library refuses or one larger than the budget; a reader's
 * own NeuronError (an unreachable server) passes through unchanged.
 */
export const readGgufHeader = async (
  read: RangeReader,
  budget = MAX_HEADER_BYTES,
): Promise<HeaderRead> => {
  let bytesRead = 0;
  /** How far from the start the file has been read; reads are contiguous from 0. */
  let extent = 0;
  let fileSize: number | null = null;
  const serve = async (_input: unknown, init?: RequestInit): Promise<Response> => {
    const range = rangeOf(init);
    if (range === null) throw new Error("the GGUF reader asked for something other than a range");
    if (range.start >= budget) {
      throw notEstimable(`its GGUF header is larger than ${megabytes(budget)}`);
    }
    const length = Math.min(range.end + 1, budget) - range.start;
    const { bytes, total } = await read(range.start, length);
    bytesRead += bytes.length;
    extent = Math.max(extent, range.start + bytes.length);
    if (total !== null) fileSize = total;
    const size = total === null ? "*" : String(total);
    return new Response(bytes, {
      status: 206,
      headers: {
        "content-range":
          bytes.length === 0
            ? `bytes */${size}`
            : `bytes ${range.start}-${range.start + bytes.length - 1}/${size}`,
      },
    });
  };
  let parsed: GGUFParseOutput<{ strict: false }>;
  try {
    parsed = (await gguf(LIBRARY_URI, {
      fetch: serve as typeof fetch,
    })) as GGUFParseOutput<{ strict: false }>;
  } catch (error) {
    if (error instanceof NeuronError) throw error;
    throw notEstimable(`it is not a readable GGUF file: ${(error as Error).message}`);
  }
  // The library reads a short file's missing bytes as zeros: a header that ends past what was
  // read was cut short by the end of the file or by the budget.
  const headerEnd = parsed.tensorInfoByteRange[1];
  if (headerEnd > extent) {
    throw notEstimable(
      extent >= budget
        ? `its GGUF header is larger than ${megabytes(budget)}`
        : `the file ends inside its GGUF header (${extent} bytes, the header needs ${headerEnd})`,
    );
  }
  return {
    header: {
      metadata: parsed.metadata,
      tensors: parsed.tensorInfos.map((info) => ({
        name: info.name,
        shape: info.shape,
        dtype: info.dtype,
      })),
      dataOffset: Number(parsed.tensorDataOffset),
      fileSize,
    },
    bytesRead,
  };
};

/** A RangeReader over an open file; the caller closes the handle. */
export const fileReader = (handle: FileHandle, size: number): RangeReader => {
  return async (start, length) => {
    const wanted = Math.max(0, Math.min(length, size - start));
    const buffer = Buffer.alloc(wanted);
    let filled = 0;
    while (filled < wanted) {
      const { bytesRead } = await handle.read(buffer, filled, wanted - filled, start + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { bytes: buffer.subarray(0, filled), total: size };
  };
};
