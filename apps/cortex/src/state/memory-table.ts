import type { CortexDb } from "./database.js";
import { modelMemory, type StoredEstimate } from "./schema.js";
import { WriteBehind, type WriteBehindOptions } from "./write-behind.js";

/** One model_memory row: everything cortex has learnt of one memory key's GPU memory. */
export interface MemoryRow {
  readonly key: string;
  readonly model: string;
  readonly harness: string;
  readonly estimatedMb: number | null;
  readonly estimate: StoredEstimate | null;
  readonly observedMb: number | null;
  readonly raisedMb: number | null;
  /** Epoch ms of the last change. */
  readonly updatedAt: number;
}

/** Every row, read once at start so a restart places models by what was learnt before it. */
export const readMemory = (db: CortexDb): MemoryRow[] =>
  db
    .select()
    .from(modelMemory)
    .all()
    .map((row) => ({
      key: row.key,
      model: row.model,
      harness: row.harness,
      estimatedMb: row.estimatedMb,
      estimate: row.estimate ?? null,
      observedMb: row.observedMb,
      raisedMb: row.raisedMb,
      updatedAt: row.updatedAt,
    }));

/**
 * The model_memory table, written behind like the other logs: `save` only appends the key's new
 * row to a bounded buffer, and a batch upserts them (a later save of a key wins). Changes are
 * rare (an estimate, a new peak, a raise), never one per poll.
 */
export class MemoryLog extends WriteBehind<MemoryRow> {
  constructor(db: CortexDb, options: WriteBehindOptions = {}) {
    super(
      "model memory",
      {
        transaction: (work) => db.transaction(() => work()),
        write: (row) => {
          const { key, ...fields } = row;
          db.insert(modelMemory)
            .values(row)
            .onConflictDoUpdate({ target: modelMemory.key, set: fields })
            .run();
        },
      },
      options,
    );
  }

  save(row: MemoryRow): void {
    this.push(row);
  }
}
