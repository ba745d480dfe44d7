import type { IncomingMessage, ServerResponse } from "node:http";
import { totalmem } from "node:os";
import { ApiError } from "./api-error.js";

// Request bodies on the inference path: read with a size limit and charged to a budget shared by
// every request of the server until its response closes; inference-fields.ts then scans them
// (never parses them) for the fields routing needs. Together these bound what clients can make a
// server hold: one body is at most the limit, all bodies together at most the budget, and no
// body becomes a parsed tree.

/**
 * Bytes of request bodies held by all requests together. A request that would pass the limit
 * is refused (503 `overloaded`) before more of its body is read; what it held is given back when
 * its response closes, so requests waiting for a slot keep counting.
 */
export class BodyBudget {
  readonly limitBytes: number;
  #used = 0;

  constructor(limitBytes: number) {
    this.limitBytes = limitBytes;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** A charge for one request, given back (once) when `res` closes. */
  charge(res: ServerResponse): BodyCharge {
    let held = 0;
    let closed = false;
    const release = () => {
      if (closed) return;
      closed = true;
      this.#used -= held;
      held = 0;
    };
    res.once("close", release);
    return {
      take: (bytes) => {
        if (closed) return false;
        if (this.#used + bytes > this.limitBytes) return false;
        this.#used += bytes;
        held += bytes;
        return true;
      },
      giveBack: (bytes) => {
        const back = Math.min(bytes, held);
        held -= back;
        this.#used -= back;
      },
    };
  }
}

/** What one request holds of a BodyBudget. */
export interface BodyCharge {
  /** Takes `bytes` more; false (taking nothing) when that would pass the budget. */
  take(bytes: number): boolean;
  /** Returns bytes taken in advance but not used (a body shorter than it said). */
  giveBack(bytes: number): void;
}

/** Bytes of request bodies a server holds at most, by default: 1/16 of memory, 64 MiB–1 GiB. */
export const defaultBufferedBytes = (totalMemoryBytes: number): number =>
  Math.min(2 ** 30, Math.max(64 * 2 ** 20, Math.floor(totalMemoryBytes / 16)));

/** The budget for a config's `max_buffered_mb`, or the machine's default when it has none. */
export const bodyBudgetFor = (maxBufferedMb: number | undefined): BodyBudget =>
  new BodyBudget(
    maxBufferedMb === undefined ? defaultBufferedBytes(totalmem()) : maxBufferedMb * 2 ** 20,
  );

const overloaded = (): ApiError =>
  new ApiError(
    "overloaded",
    "the server holds as many request bodies as it may right now; retry shortly",
    { retryAfterS: 1 },
  );

const tooLarge = (limitBytes: number): ApiError =>
  new ApiError(
    "payload_too_large",
    `the request body is larger than ${
      limitBytes >= 2 ** 20 ? `${Math.round(limitBytes / 2 ** 20)} MiB` : `${limitBytes} bytes`
    }`,
  );

/**
 * The whole request body, refused past `limitBytes` (413), when it is compressed (400: the body
 * is forwarded as sent, and an upstream model server need not inflate it), or when `charge`
 * cannot take it (503). A declared length is charged before any of the body is read.
 */
export const readBody = (
  req: IncomingMessage,
  limitBytes: number,
  charge?: BodyCharge,
): Promise<Buffer> => {
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding !== "identity")
    return Promise.reject(
      new ApiError(
        "invalid_request_error",
        `content-encoding ${encoding} is not supported: send the body uncompressed`,
      ),
    );
  // Too late to read: the body was consumed, or the client is gone.
  if (req.readableEnded || req.destroyed)
    return Promise.reject(
      new ApiError("invalid_request_error", "the request body could not be read"),
    );
  const declaredHeader = req.headers["content-length"];
  const declared = declaredHeader === undefined ? 0 : Number(declaredHeader);
  if (declared > limitBytes) return Promise.reject(tooLarge(limitBytes));
  // node:http has checked the header is a number; a chunked body has none and is charged as
  // it arrives.
  const sized = Number.isSafeInteger(declared) && declared > 0;
  let taken = sized ? declared : 0;
  if (charge && taken > 0 && !charge.take(taken)) return Promise.reject(overloaded());
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const fail = (error: ApiError) => {
      cleanup();
      // The rest is read and thrown away by node:http once the answer is sent.
      chunks.length = 0;
      reject(error);
    };
    // A declared body is copied into one buffer of its size as it arrives: keeping the chunks
    // and concatenating them at the end would hold every byte twice for a moment.
    let whole: Buffer | undefined;
    const onData = (chunk: Buffer) => {
      const start = size;
      size += chunk.length;
      if (size > limitBytes) return fail(tooLarge(limitBytes));
      if (charge && size > taken) {
        if (!charge.take(size - taken)) return fail(overloaded());
        taken = size;
      }
      if (!sized) {
        chunks.push(chunk);
        return;
      }
      // node:http never delivers more than the declared length; refuse it all the same.
      if (size > declared)
        return fail(new ApiError("invalid_request_error", "the body is longer than it said"));
      whole ??= Buffer.allocUnsafe(declared);
      chunk.copy(whole, start);
    };
    const onEnd = () => {
      cleanup();
      if (charge && taken > size) charge.giveBack(taken - size);
      if (sized) resolve(whole === undefined ? Buffer.alloc(0) : whole.subarray(0, size));
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(
        new ApiError("invalid_request_error", "the request body could not be read", {
          cause: error,
        }),
      );
    };
    const onClose = () => {
      if (req.complete) return;
      fail(new ApiError("invalid_request_error", "the client went away while sending the body"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
};
