import { sql } from "drizzle-orm";
import type { CortexDb } from "./database.js";
import { requestLog } from "./schema.js";
import { WriteBehind, type WriteBehindOptions } from "./write-behind.js";

/** One proxied request, as the proxy reports it once the response has ended. */
export interface RequestLogEntry {
  /** When the request arrived, epoch ms. */
  at: number;
  requestId: string;
  /** The resolved model id (not the alias the client sent). */
  model: string;
  /** The node that served it; null when it never reached one (rejected, no capacity). */
  node?: string | null;
  /** The HTTP status cortex answered with. */
  status: number;
  latencyMs: number;
  /** Time to first token (streams) or first byte; null when nothing was sent. */
  ttftMs?: number | null;
  promptTokens?: number | null;
  completionTokens?: number | null;
  stream: boolean;
  /** The request waited for a model load. */
  coldStart: boolean;
  /** The AppError code when it failed. */
  errorCode?: string | null;
}

export type RequestLogOptions = WriteBehindOptions;

const placeholders = {
  at: sql.placeholder("at"),
  requestId: sql.placeholder("requestId"),
  model: sql.placeholder("model"),
  node: sql.placeholder("node"),
  status: sql.placeholder("status"),
  latencyMs: sql.placeholder("latencyMs"),
  ttftMs: sql.placeholder("ttftMs"),
  promptTokens: sql.placeholder("promptTokens"),
  completionTokens: sql.placeholder("completionTokens"),
  stream: sql.placeholder("stream"),
  coldStart: sql.placeholder("coldStart"),
  errorCode: sql.placeholder("errorCode"),
};

/**
 * The request log, written behind the request path: `record` only appends to a bounded
 * buffer; batches are committed by a timer, once 500 are pending, or on `flush`/`close`.
 * A crash loses at most the entries not yet flushed (about one interval's worth).
 */
export class RequestLog extends WriteBehind<RequestLogEntry> {
  constructor(db: CortexDb, options: RequestLogOptions = {}) {
    // One prepared statement, one row per run: the fastest way through better-sqlite3, and a
    // row the database refuses costs only itself (see WriteBehind).
    const insert = db.insert(requestLog).values(placeholders).prepare();
    super(
      "request log",
      {
        transaction: (work) => db.transaction(() => work()),
        write: (entry) =>
          insert.run({
            at: entry.at,
            requestId: entry.requestId,
            model: entry.model,
            node: entry.node ?? null,
            status: entry.status,
            latencyMs: entry.latencyMs,
            ttftMs: entry.ttftMs ?? null,
            promptTokens: entry.promptTokens ?? null,
            completionTokens: entry.completionTokens ?? null,
            stream: entry.stream,
            coldStart: entry.coldStart,
            errorCode: entry.errorCode ?? null,
          }),
      },
      options,
    );
  }

  /** O(1), never touches the database, never throws for a full buffer (the oldest entry goes). */
  record(entry: RequestLogEntry): void {
    this.push(entry);
  }
}
