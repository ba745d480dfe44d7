import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { SQL } from "drizzle-orm";
import { SQLiteSyncDialect } from "drizzle-orm/sqlite-core";
import type { Log } from "../log.js";
import type { CortexState } from "./database.js";
import {
  type TrafficBucket,
  type TrafficOverallBucket,
  type TrafficQuery,
  type TrafficSummary,
  trafficSummary,
  trafficSummaryQuery,
} from "./queries.js";

// The traffic summary ranks every request of the window in SQL: about a second for 200,000
// requests in an hour on the 2-core CI machine. better-sqlite3 is synchronous, so on cortex's
// own connection that second would stop the proxy. The reader runs the same statements on a
// read-only connection of its own in a worker thread (WAL lets it read while cortex writes).
// An in-memory database has no file to share and is read in place.

/** One statement as the worker runs it. */
interface Statement {
  readonly sql: string;
  readonly params: unknown[];
}

type Reply =
  | { readonly id: number; readonly rows: unknown[][] }
  | { readonly id: number; readonly error: string };

/**
 * The worker's whole program (CommonJS, evaluated): it opens the file read-only, keeps its
 * prepared statements, and answers each message with every statement's rows.
 */
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file, { readonly: true, fileMustExist: true });
db.pragma("busy_timeout = 5000");
const prepared = new Map();
const statement = (text) => {
  let found = prepared.get(text);
  if (!found) {
    if (prepared.size >= 64) prepared.clear();
    found = db.prepare(text);
    prepared.set(text, found);
  }
  return found;
};
parentPort.on("message", ({ id, statements }) => {
  try {
    parentPort.postMessage({ id, rows: statements.map((s) => statement(s.sql).all(...s.params)) });
  } catch (error) {
    parentPort.postMessage({ id, error: error && error.message ? error.message : String(error) });
  }
});
`;

const dialect = new SQLiteSyncDialect();

const toStatement = (query: SQL): Statement => {
  const { sql, params } = dialect.sqlToQuery(query);
  return { sql, params };
};

export class TrafficReader {
  readonly #state: CortexState;
  readonly #log: Log | undefined;
  #worker: Worker | undefined;
  #nextId = 0;
  readonly #pending = new Map<
    number,
    { resolve: (rows: unknown[][]) => void; reject: (error: Error) => void }
  >();
  /** Identical questions asked while one is being answered share its answer. */
  readonly #inFlight = new Map<string, Promise<TrafficSummary>>();
  #closed = false;

  constructor(state: CortexState, options: { log?: Log } = {}) {
    this.#state = state;
    this.#log = options.log;
  }

  /** The traffic summary of trafficSummary, computed off the event loop where there is a file. */
  summary(query: TrafficQuery): Promise<TrafficSummary> {
    if (this.#closed) return Promise.reject(new Error("the traffic reader is closed"));
    if (this.#state.file === ":memory:") {
      try {
        return Promise.resolve(trafficSummary(this.#state.db, query));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const key = JSON.stringify([query.sinceMs, query.bucketMs, query.model ?? null]);
    const shared = this.#inFlight.get(key);
    if (shared) return shared;
    const answer = this.#read(query).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, answer);
    return answer;
  }

  async #read(query: TrafficQuery): Promise<TrafficSummary> {
    const statements = [toStatement(trafficSummaryQuery(query, "model"))];
    if (query.model === undefined)
      statements.push(toStatement(trafficSummaryQuery(query, "overall")));
    const [perModel = [], overall] = await this.#ask(statements);
    const buckets = perModel as TrafficBucket[];
    return {
      buckets,
      overall:
        overall === undefined
          ? buckets.map(({ model: _model, ...rest }) => rest)
          : (overall as TrafficOverallBucket[]),
    };
  }

  #ask(statements: Statement[]): Promise<unknown[][]> {
    const worker = this.#start();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, statements });
    });
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(WORKER, {
      eval: true,
      workerData: {
        file: this.#state.file,
        driver: createRequire(import.meta.url).resolve("better-sqlite3"),
      },
    });
    // An idle reader never keeps cortex alive.
    worker.unref();
    worker.on("message", (reply: Reply) => {
      const waiting = this.#pending.get(reply.id);
      if (!waiting) return;
      this.#pending.delete(reply.id);
      if ("error" in reply) waiting.reject(new Error(`traffic query failed: ${reply.error}`));
      else waiting.resolve(reply.rows);
    });
    const fail = (error: Error) => {
      // A broken worker is replaced on the next question; everyone waiting gets the error.
      if (this.#worker === worker) this.#worker = undefined;
      for (const waiting of this.#pending.values()) waiting.reject(error);
      this.#pending.clear();
    };
    worker.on("error", (error) => {
      this.#log?.warn({ err: error }, "traffic reader failed");
      fail(error);
    });
    worker.on("exit", (code) => {
      if (!this.#closed) fail(new Error(`the traffic reader stopped (exit code ${code})`));
    });
    this.#worker = worker;
    return worker;
  }

  /** Stops the worker; questions still open are refused. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    for (const waiting of this.#pending.values())
      waiting.reject(new Error("the traffic reader is closed"));
    this.#pending.clear();
    await worker?.terminate();
  }
}
