import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { type BetterSQLite3Database, drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { type Log, silentLog } from "../log.js";
import { type StateSchema, schema } from "./schema.js";

/**
 * apps/cortex/migrations: two levels up from both src/state/ and dist/state/, and shipped in
 * the package (package.json "files"), so the same path works from sources, the build and a
 * packed install.
 */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations", import.meta.url));

export const STATE_FILE_NAME = "cortex.sqlite";

/**
 * Applied to every connection, in this order (busy_timeout first so the others wait for a
 * lock instead of failing). WAL with synchronous=NORMAL: a commit survives the process being
 * killed (kill -9, OOM); only an OS crash or power loss may lose the last transactions.
 */
export const STATE_PRAGMAS = [
  "journal_mode = WAL",
  "synchronous = NORMAL",
  "foreign_keys = ON",
] as const;

export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

export type CortexDb = BetterSQLite3Database<StateSchema> & { readonly $client: Database.Database };

export interface CortexState {
  readonly db: CortexDb;
  readonly sqlite: Database.Database;
  /** The database file, or ":memory:". */
  readonly file: string;
  /** Closes the connection; idempotent. Close the RequestLog/LifecycleLog first (they flush). */
  close(): void;
}

export interface OpenStateOptions {
  log?: Log;
  /** How long a statement waits for another connection's lock before failing (default 5000). */
  busyTimeoutMs?: number;
  /** Where the migrations live (default MIGRATIONS_DIR). */
  migrationsDir?: string;
}

export type StateErrorCode = "state_not_a_database" | "state_locked" | "state_open_failed";

/** The state database cannot be used; the message says which file and what to do. */
export class StateError extends Error {
  readonly code: StateErrorCode;

  constructor(code: StateErrorCode, message: string, cause: unknown) {
    super(message, { cause });
    this.name = "StateError";
    this.code = code;
  }
}

const sqliteCodeOf = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
};

const explain = (error: unknown, file: string): StateError => {
  const code = sqliteCodeOf(error) ?? "";
  const reason = error instanceof Error ? error.message : String(error);
  if (code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT")
    return new StateError(
      "state_not_a_database",
      `${file} is not a cortex state database (${reason}); move it away or point data_dir elsewhere`,
      error,
    );
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))
    return new StateError(
      "state_locked",
      `${file} is locked by another process (${reason}); is another cortex using the same data_dir?`,
      error,
    );
  return new StateError(
    "state_open_failed",
    `cannot open state database ${file}: ${reason}`,
    error,
  );
};

/**
 * Opens (creating if needed) `<dataDir>/cortex.sqlite`, or an in-memory database for tests,
 * sets the PRAGMAs and applies pending migrations. Synchronous: call it once at start, before
 * anything is served. Throws StateError.
 */
export const openState = (
  dataDir: string | ":memory:",
  options: OpenStateOptions = {},
): CortexState => {
  const log = options.log ?? silentLog;
  const file = dataDir === ":memory:" ? ":memory:" : join(dataDir, STATE_FILE_NAME);
  let sqlite: Database.Database | undefined;
  try {
    if (dataDir !== ":memory:") mkdirSync(dataDir, { recursive: true });
    sqlite = new Database(file);
    sqlite.pragma(
      `busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS))}`,
    );
    for (const pragma of STATE_PRAGMAS) sqlite.pragma(pragma);
    const db = drizzle({ client: sqlite, schema });
    // drizzle records applied migrations in __drizzle_migrations and runs them in one
    // transaction, so a second open (or a crash half-way) leaves nothing half-applied.
    migrate(db, { migrationsFolder: options.migrationsDir ?? MIGRATIONS_DIR });
    const opened = sqlite;
    log.info({ file }, "state database opened");
    return {
      db,
      sqlite: opened,
      file,
      close: () => {
        if (opened.open) opened.close();
      },
    };
  } catch (error) {
    sqlite?.close();
    throw explain(error, file);
  }
};
