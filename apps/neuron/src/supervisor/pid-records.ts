import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

// Harness process groups the neuron started, recorded on disk so that a neuron restarted after
// a crash can end any that survived it. Writes are synchronous and tiny: they happen on load
// and unload, never on the request path.

export interface PidRecord {
  readonly pid: number;
  readonly model: string;
  readonly started_at: string;
}

const read = (file: string): PidRecord[] => {
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as unknown;
    return Array.isArray(parsed)
      ? parsed.filter(
          (entry): entry is PidRecord =>
            typeof entry?.pid === "number" && typeof entry?.model === "string",
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

/** The command line of a live process, or null; used so a recycled pid is never killed. */
const commandLine = (pid: number): string | null => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return null;
  }
};

const groupExists = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
};

export class PidRecords {
  readonly #file: string;
  readonly #marker: string;
  #records: PidRecord[];

  /** `marker` is a string every recorded command line contains (the watchdog's path). */
  constructor(file: string, marker: string) {
    this.#file = file;
    this.#marker = marker;
    this.#records = read(file);
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
   * Ends every recorded group whose leader is still one of ours, and forgets the records.
   * Returns what was reaped, for the log.
   */
  reapLeftovers(): PidRecord[] {
    const reaped: PidRecord[] = [];
    for (const record of this.#records) {
      const command = commandLine(record.pid);
      // A live leader must be our watchdog (its pid may have been recycled since). A dead leader
      // whose group still exists leaves orphans that are ours: Linux never hands out a pid
      // while a process group still carries it.
      const ours = command ? command.includes(this.#marker) : groupExists(record.pid);
      if (!ours) continue;
      try {
        process.kill(-record.pid, "SIGKILL");
        reaped.push(record);
      } catch {
        // Gone between the check and the kill.
      }
    }
    this.#records = [];
    write(this.#file, this.#records);
    return reaped;
  }
}
