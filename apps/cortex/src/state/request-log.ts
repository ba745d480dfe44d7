import { getTableName } from "drizzle-orm";
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

/**
 * One row per request, so the insert is better-sqlite3's own prepared statement rather than
 * drizzle's (whose per-run placeholder mapping cost more than the insert itself); the column
 * names are checked against the schema by request-log.test.ts.
 */
const INSERT = `INSERT INTO ${getTableName(requestLog)} (at, request_id, model, node, status, latency_ms, ttft_ms, prompt_tokens, completion_tokens, stream, cold_start, error_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/**
 * The request log, written behind the request path: `record` only appends to a bounded
 * buffer; batches are committed by a timer, once 500 are pending, or on `flush`/`close`.
 * A crash loses at most the entries not yet flushed (about one interval's worth).
 */
export class RequestLog extends WriteBehind<RequestLogEntry> {
  constructor(db: CortexDb, options: RequestLogOptions = {}) {
    // One prepared statement, one row per run: the fastest way through better-sqlite3, and a
    // row the database refuses costs only itself (see WriteBehind).
    const insert = db.$client.prepare(INSERT);
    super(
      "request log",
      {
        transaction: (work) => db.transaction(() => work()),
        write: (entry) =>
          insert.run(
            entry.at,
            entry.requestId,
            entry.model,
            entry.node ?? null,
            entry.status,
            entry.latencyMs,
            entry.ttftMs ?? null,
            entry.promptTokens ?? null,
            entry.completionTokens ?? null,
            entry.stream ? 1 : 0,
            entry.coldStart ? 1 : 0,
            entry.errorCode ?? null,
          ),
      },
      options,
    );
  }

  /** O(1), never touches the database, never throws for a full buffer (the oldest entry goes). */
  record(entry: RequestLogEntry): void {
    this.push(entry);
  }
}
