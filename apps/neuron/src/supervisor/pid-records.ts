import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

// Harness process groups the neuron started, recorded on disk so that a neuron restarted after
// a crash can end any that survived it. Writes are synchronous and tiny: they happen on load
// and unload, never on the request path.
//
// A recorded pid is the watchdog's, which leads the group. When the neuron and the watchdog
// both died (SIGKILL, the OOM killer), the group lives on without its leader, so reaping looks
// for the group's members, not for the pid. A member is ours only when its environment carries
// this neuron's marker (`CORTEX_HARNESS_OF=<records file>`, set on every harness and watchdog):
// a pid, and so a group id, may have been reused by anyone since, and that is never killed.

export interface PidRecord {
  readonly pid: number;
  readonly model: string;
  readonly started_at: string;
}

/** The variable that marks a harness (and its watchdog) as started by this neuron. */
export const HARNESS_MARK_VAR = "CORTEX_HARNESS_OF";

/** What reaping needs to know of the running processes; /proc on Linux, a table in tests. */
export interface ProcessTable {
  /** Every live process: its pid and its process group. */
  processes(): { pid: number; pgid: number }[];
  /** Its initial environment as `NAME=value` strings, or null when it cannot be read. */
  environment(pid: number): string[] | null;
  /** Its command line, or null when gone. */
  commandLine(pid: number): string | null;
  /** SIGKILL to a whole group; throws when no member is left. */
  killGroup(pgid: number): void;
}

const readOr = <T>(read: () => T, fallback: T): T => {
  try {
    return read();
  } catch {
    return fallback;
  }
};

/** Linux's /proc. Zombies are left out: they hold nothing and cannot be killed again. */
export const procTable: ProcessTable = {
  processes: () =>
    readOr(() => readdirSync("/proc"), [] as string[]).flatMap((name) => {
      if (!/^\d+$/.test(name)) return [];
      // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses, so read after
      // the last ')'.
      const stat = readOr(() => readFileSync(`/proc/${name}/stat`, "utf8"), "");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const pgid = Number(pgrp);
      return state === undefined || state === "Z" || !Number.isInteger(pgid) || pgid <= 0
        ? []
        : [{ pid: Number(name), pgid }];
    }),
  environment: (pid) =>
    readOr(() => readFileSync(`/proc/${pid}/environ`, "utf8").split("\0"), null),
  commandLine: (pid) =>
    readOr(() => readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " "), null),
  killGroup: (pgid) => process.kill(-pgid, "SIGKILL"),
};

const read = (file: string): PidRecord[] => {
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as unknown;
    return Array.isArray(parsed)
      ? parsed.filter(
          (entry): entry is PidRecord =>
            Number.isInteger(entry?.pid) && entry.pid > 1 && typeof entry?.model === "string",
        )
      : [];
  } catch {
    return [];
  }
};

const write = (file: string, records: readonly PidRecord[]): void => {
  mkdirSync(dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(records, null, 2)}\n`);
  renameSync(temp, file);
};

export class PidRecords {
  readonly #file: string;
  readonly #marker: string;
  readonly #table: ProcessTable;
  #records: PidRecord[];

  /**
   * `file` is absolute (it is also the marker's value); `marker` is a string every recorded
   * leader's command line contains (the watchdog's path), for groups started before the
   * environment marker existed.
   */
  constructor(file: string, marker: string, table: ProcessTable = procTable) {
    this.#file = file;
    this.#marker = marker;
    this.#table = table;
    this.#records = read(file);
  }

  /** The environment entry every harness and watchdog of this neuron carries. */
  get mark(): Readonly<Record<string, string>> {
    return { [HARNESS_MARK_VAR]: this.#file };
  }

  add(record: PidRecord): void {
    this.#records = [...this.#records.filter((r) => r.pid !== record.pid), record];
    write(this.#file, this.#records);
  }

  remove(pid: number): void {
    this.#records = this.#records.filter((record) => record.pid !== pid);
    write(this.#file, this.#records);
  }

  /**
   * Ends every recorded group that still has a member of ours, leader or not, and forgets the
   * records. Returns what was reaped, for the log.
   */
  reapLeftovers(): PidRecord[] {
    const reaped: PidRecord[] = [];
    if (this.#records.length > 0) {
      const members = new Map<number, number[]>();
      for (const { pid, pgid } of this.#table.processes())
        members.set(pgid, [...(members.get(pgid) ?? []), pid]);
      const entry = `${HARNESS_MARK_VAR}=${this.#file}`;
      const ours = (pid: number, pgid: number): boolean =>
        (this.#table.environment(pid)?.includes(entry) ?? false) ||
        // A leader started by an older neuron carries no marker but runs the watchdog.
        (pid === pgid && (this.#table.commandLine(pid)?.includes(this.#marker) ?? false));
      for (const record of this.#records) {
        // Linux never hands out a pid that is still a group's id, so while one member of ours
        // lives in the group, every member is the harness's (or something it started).
        if (!(members.get(record.pid) ?? []).some((pid) => ours(pid, record.pid))) continue;
        try {
          this.#table.killGroup(record.pid);
          reaped.push(record);
        } catch {
          // Gone between the check and the kill.
        }
      }
    }
    this.#records = [];
    write(this.#file, this.#records);
    return reaped;
  }
}
