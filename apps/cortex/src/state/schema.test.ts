import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { is } from "drizzle-orm";
import { getTableConfig, SQLiteColumn, SQLiteInteger } from "drizzle-orm/sqlite-core";
import { afterEach, describe, expect, it } from "vitest";
import { type CortexState, MIGRATIONS_DIR, openState } from "./database.js";
import { schema } from "./schema.js";

// The migrations are hand-written (no drizzle-kit here): these tests are what keeps them and
// schema.ts describing the same database.

interface ColumnInfo {
  name: string;
  type: string;
  notnull: number;
  dflt_value: unknown;
  pk: number;
}

const tables = Object.values(schema).map((table) => getTableConfig(table));

describe("migrations", () => {
  let state: CortexState | undefined;

  afterEach(() => {
    state?.close();
    state = undefined;
  });

  it("live in MIGRATIONS_DIR in drizzle's format, in order", () => {
    const journal = JSON.parse(
      readFileSync(join(MIGRATIONS_DIR, "meta", "_journal.json"), "utf8"),
    ) as {
      dialect: string;
      entries: { idx: number; when: number; tag: string; breakpoints: boolean }[];
    };
    expect(journal.dialect).toBe("sqlite");
    expect(journal.entries.length).toBeGreaterThan(0);
    const sqlFiles = readdirSync(MIGRATIONS_DIR).filter((file) => file.endsWith(".sql"));
    expect(sqlFiles.sort()).toEqual(journal.entries.map((entry) => `${entry.tag}.sql`).sort());
    journal.entries.forEach((entry, i) => {
      expect(entry.idx).toBe(i);
      expect(entry.breakpoints).toBe(true);
      // drizzle applies a migration only if its `when` is after the last applied one.
      if (i > 0) expect(entry.when).toBeGreaterThan(journal.entries[i - 1]?.when ?? Infinity);
    });
  });

  it("create exactly the tables schema.ts declares", () => {
    state = openState(":memory:");
    const names = state.sqlite
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '__drizzle_migrations' ORDER BY name",
      )
      .pluck()
      .all();
    expect(names).toEqual(tables.map((table) => table.name).sort());
  });

  it.each(tables.map((table) => [table.name, table] as const))(
    "create %s with the declared columns, keys and indexes",
    (name, table) => {
      state = openState(":memory:");
      const sqlite = state.sqlite;
      const actual = (sqlite.prepare(`PRAGMA table_info(${name})`).all() as ColumnInfo[]).map(
        (column) => ({
          name: column.name,
          type: column.type.toLowerCase(),
          notNull: column.notnull === 1,
          hasDefault: column.dflt_value !== null,
          primaryKey: column.pk > 0,
        }),
      );
      const declared = table.columns.map((column: SQLiteColumn) => ({
        name: column.name,
        type: column.getSQLType().toLowerCase(),
        notNull: column.notNull,
        // Not `hasDefault`: drizzle sets it for integer primary keys (rowid), which have no DEFAULT.
        hasDefault: column.default !== undefined,
        primaryKey: column.primary,
      }));
      expect(actual).toEqual(declared);

      const createSql = sqlite
        .prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?")
        .pluck()
        .get(name) as string;
      for (const column of table.columns) {
        const autoIncrement = is(column, SQLiteInteger) && column.autoIncrement;
        expect(
          new RegExp(`\`${column.name}\`[^,]*AUTOINCREMENT`).test(createSql),
          `${name}.${column.name} AUTOINCREMENT`,
        ).toBe(autoIncrement);
      }

      const indexes = (
        sqlite.prepare(`PRAGMA index_list(${name})`).all() as {
          name: string;
          unique: number;
          origin: string;
        }[]
      )
        .filter((index) => index.origin === "c")
        .map((index) => ({
          name: index.name,
          unique: index.unique === 1,
          columns: sqlite
            .prepare(`PRAGMA index_info(${index.name})`)
            .all()
            .map((c) => (c as { name: string }).name),
        }))
        .sort((a, b) => a.name.localeCompare(b.name));
      const declaredIndexes = table.indexes
        .map((index) => ({
          name: index.config.name,
          unique: index.config.unique,
          columns: index.config.columns.map((column) =>
            is(column, SQLiteColumn) ? column.name : "(expression)",
          ),
        }))
        .sort((a, b) => a.name.localeCompare(b.name));
      expect(indexes).toEqual(declaredIndexes);

      expect(sqlite.prepare(`PRAGMA foreign_key_list(${name})`).all()).toHaveLength(
        table.foreignKeys.length,
      );
    },
  );

  it("are recorded, so they are applied once", () => {
    state = openState(":memory:");
    const applied = state.sqlite.prepare("SELECT count(*) FROM __drizzle_migrations").pluck().get();
    const journal = JSON.parse(
      readFileSync(join(MIGRATIONS_DIR, "meta", "_journal.json"), "utf8"),
    ) as {
      entries: unknown[];
    };
    expect(applied).toBe(journal.entries.length);
  });
});
