import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type CortexState,
  openState,
  STATE_FILE_NAME,
  STATE_PRAGMAS,
  StateError,
} from "./database.js";
import { LifecycleLog } from "./lifecycle-log.js";
import { recentEvents } from "./queries.js";
import { RequestLog, type RequestLogEntry } from "./request-log.js";
import { nodes } from "./schema.js";

const entry = (i: number): RequestLogEntry => ({
  at: 1_767_225_600_000 + i,
  requestId: `req-${i}`,
  model: "llama",
  node: "gpu-1",
  status: 200,
  latencyMs: 5,
  stream: false,
  coldStart: false,
});

const countRows = (state: CortexState, table: string): number =>
  state.sqlite.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;

/** Stands in for cortex: better-sqlite3 directly (plain node cannot import our TypeScript),
 *  the same PRAGMAs, and the same flush shape: one transaction per batch. */
const CHILD_SCRIPT = `
import Database from ${JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve("better-sqlite3")).href)};
const [file, pragmasJson, batches, perBatch] = process.argv.slice(2);
const db = new Database(file);
db.pragma("busy_timeout = 5000");
for (const pragma of JSON.parse(pragmasJson)) db.pragma(pragma);
const insert = db.prepare(
  "INSERT INTO request_log (at, request_id, model, node, status, latency_ms, ttft_ms, prompt_tokens, completion_tokens, stream, cold_start, error_code) VALUES (?, ?, 'llama', 'gpu-1', 200, 5, NULL, NULL, NULL, 0, 0, NULL)",
);
const flush = db.transaction((from, count) => {
  for (let i = from; i < from + count; i++) insert.run(1767225600000 + i, "child-" + i);
});
for (let b = 0; b < Number(batches); b++) flush(b * Number(perBatch), Number(perBatch));
process.stdout.write("flushed\\n");
setInterval(() => {}, 60_000); // stay alive, connection open, until killed
`;

describe("state on disk", () => {
  let root: string;
  let dir: string;
  const opened: CortexState[] = [];
  const children: ChildProcess[] = [];
  const others: Database.Database[] = [];

  const open = (options?: Parameters<typeof openState>[1]): CortexState => {
    const state = openState(dir, options);
    opened.push(state);
    return state;
  };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "cortex-state-"));
    dir = root;
  });

  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
    for (const other of others.splice(0)) if (other.open) other.close();
    for (const state of opened.splice(0)) state.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("creates the data directory and keeps data across close and reopen", () => {
    dir = join(dir, "nested", "data");
    const first = open();
    expect(first.file).toBe(join(dir, STATE_FILE_NAME));
    expect(first.sqlite.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(first.sqlite.pragma("synchronous", { simple: true })).toBe(1); // NORMAL
    expect(first.sqlite.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(first.sqlite.pragma("busy_timeout", { simple: true })).toBe(5000);

    const requests = new RequestLog(first.db);
    const lifecycle = new LifecycleLog(first.db, { now: () => 42 });
    for (let i = 0; i < 3; i++) requests.record(entry(i));
    lifecycle.record({ at: 1, type: "load_requested", model: "llama" });
    lifecycle.saveDiscovery(
      "gpu-1",
      "http://gpu-1:7070",
      {
        node: { name: "gpu-1", hostname: "h", os: "linux", kernel: "6", cpu: "c", memory_mb: 1 },
        devices: [],
        harnesses: [],
      },
      40,
    );
    requests.close();
    lifecycle.close();
    first.close();
    first.close(); // idempotent

    const second = open();
    expect(countRows(second, "request_log")).toBe(3);
    expect(recentEvents(second.db, 5).map((event) => event.type)).toEqual(["load_requested"]);
    expect(second.db.select().from(nodes).all()).toEqual([
      expect.objectContaining({ name: "gpu-1", healthy: true, lastOkAt: 40, updatedAt: 42 }),
    ]);
  });

  it("a second open of a migrated file changes nothing", () => {
    const first = open();
    const schemaVersion = first.sqlite.pragma("schema_version", { simple: true });
    const migrations = first.sqlite.prepare("SELECT * FROM __drizzle_migrations").all();
    first.close();

    const second = open();
    expect(second.sqlite.pragma("schema_version", { simple: true })).toBe(schemaVersion);
    expect(second.sqlite.prepare("SELECT * FROM __drizzle_migrations").all()).toEqual(migrations);
    // And a concurrent second connection on the same file migrates nothing either.
    const third = open();
    expect(third.sqlite.pragma("schema_version", { simple: true })).toBe(schemaVersion);
  });

  it("keeps every flushed row when the writer is killed with SIGKILL", async () => {
    open().close(); // create and migrate, as cortex does at start
    const script = join(dir, "writer.mjs");
    writeFileSync(script, CHILD_SCRIPT);
    const batches = 4;
    const perBatch = 500;
    const child = spawn(
      process.execPath,
      [
        script,
        join(dir, STATE_FILE_NAME),
        JSON.stringify(STATE_PRAGMAS),
        String(batches),
        String(perBatch),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(child);
    let stdout = "";
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes("flushed\n")) resolve();
      });
      child.once("exit", (code) =>
        reject(new Error(`writer exited (${code}) before flushing: ${stderr}`)),
      );
    });

    const exited = once(child, "exit");
    child.kill("SIGKILL");
    const [, signal] = await exited;
    expect(signal).toBe("SIGKILL");
    // The commits live only in the WAL: reopening must recover them from it.
    const wal = `${join(dir, STATE_FILE_NAME)}-wal`;
    expect(existsSync(wal) && statSync(wal).size > 0).toBe(true);

    const reopened = open();
    expect(countRows(reopened, "request_log")).toBe(batches * perBatch);
    expect(reopened.sqlite.pragma("integrity_check", { simple: true })).toBe("ok");
  });

  it("says clearly when the file is not a database", () => {
    writeFileSync(join(dir, STATE_FILE_NAME), "this is a text file, not SQLite\n".repeat(200));
    let caught: unknown;
    try {
      open();
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(StateError);
    expect(caught).toMatchObject({ code: "state_not_a_database" });
    expect((caught as Error).message).toContain(join(dir, STATE_FILE_NAME));
  });

  it("says clearly when another process holds the file locked", () => {
    open().close();
    const other = new Database(join(dir, STATE_FILE_NAME));
    others.push(other);
    other.pragma("locking_mode = EXCLUSIVE");
    other.exec("BEGIN EXCLUSIVE");
    expect(() => open({ busyTimeoutMs: 50 })).toThrow(
      expect.objectContaining({ name: "StateError", code: "state_locked" }),
    );
  });

  it("a flush that meets a held lock keeps its batch and succeeds once the lock is gone", () => {
    const state = open({ busyTimeoutMs: 20 });
    const log = new RequestLog(state.db);
    const other = new Database(join(dir, STATE_FILE_NAME));
    others.push(other);
    other.exec("BEGIN IMMEDIATE");
    log.record(entry(1));
    log.record(entry(2));
    expect(log.flush()).toBe(0);
    expect(log.pending).toBe(2);
    expect(log.dropped).toBe(0);

    other.exec("COMMIT");
    expect(log.flush()).toBe(2);
    log.close();
    expect(countRows(state, "request_log")).toBe(2);
  });
});
