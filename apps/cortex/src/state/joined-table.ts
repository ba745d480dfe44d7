import { eq } from "drizzle-orm";
import type { CortexDb } from "./database.js";
import { joinedNodes } from "./schema.js";

/** One joined_nodes row: a neuron that joined, how cortex reaches it, and when (epoch ms). */
export interface JoinedRow {
  readonly name: string;
  readonly url: string;
  readonly token: string;
  readonly joinedAtMs: number;
  readonly lastJoinAtMs: number;
}

/**
 * The joined_nodes table, written at once rather than behind: a join is rare, and the neuron
 * must be on disk before the API answers that it is in the fleet. Synchronous drizzle
 * statements (better-sqlite3); a failure throws to the caller, which then changes nothing.
 */
export class JoinedTable {
  readonly #db: CortexDb;

  constructor(db: CortexDb) {
    this.#db = db;
  }

  /** Every joined node, read once at start so a restart keeps polling them. */
  read(): JoinedRow[] {
    return this.#db
      .select()
      .from(joinedNodes)
      .all()
      .map((row) => ({
        name: row.name,
        url: row.url,
        token: row.token,
        joinedAtMs: row.joinedAt,
        lastJoinAtMs: row.lastJoinAt,
      }));
  }

  /** Inserts the node, or updates its URL and token (a rejoin keeps its first join time). */
  save(row: JoinedRow): void {
    this.#db
      .insert(joinedNodes)
      .values({
        name: row.name,
        url: row.url,
        token: row.token,
        joinedAt: row.joinedAtMs,
        lastJoinAt: row.lastJoinAtMs,
      })
      .onConflictDoUpdate({
        target: joinedNodes.name,
        set: { url: row.url, token: row.token, lastJoinAt: row.lastJoinAtMs },
      })
      .run();
  }

  remove(name: string): void {
    this.#db.delete(joinedNodes).where(eq(joinedNodes.name, name)).run();
  }
}
