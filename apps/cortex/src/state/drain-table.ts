import type { NodeDrain } from "@cortex/protocol";
import { eq } from "drizzle-orm";
import type { CortexDb } from "./database.js";
import { nodeDrains } from "./schema.js";

/** One node_drains row: a node an operator took out of service, and since when (epoch ms). */
export interface DrainRow {
  readonly node: string;
  readonly state: NodeDrain;
  readonly sinceMs: number;
}

/**
 * The node_drains table, written at once rather than behind: a drain is rare and an operator's
 * decision, so it must be on disk before the API answers that it took effect. Synchronous
 * drizzle statements (better-sqlite3); a failure throws to the caller, which then changes nothing.
 */
export class DrainTable {
  readonly #db: CortexDb;

  constructor(db: CortexDb) {
    this.#db = db;
  }

  /** Every drain, read once at start so a restart keeps nodes out that were out before. */
  read(): DrainRow[] {
    return this.#db
      .select()
      .from(nodeDrains)
      .all()
      .map((row) => ({ node: row.node, state: row.state, sinceMs: row.since }));
  }

  save(row: DrainRow): void {
    const values = { node: row.node, state: row.state, since: row.sinceMs };
    this.#db
      .insert(nodeDrains)
      .values(values)
      .onConflictDoUpdate({
        target: nodeDrains.node,
        set: { state: row.state, since: row.sinceMs },
      })
      .run();
  }

  remove(node: string): void {
    this.#db.delete(nodeDrains).where(eq(nodeDrains.node, node)).run();
  }
}
