import type { CatalogueEntry, EstimateAnswer } from "@cortex/protocol";

// What cortex knows of each model's GPU memory, and the one rule that turns it into the figure
// placement counts (docs/contract.md "Memory truth (cortex)"). Pure data and arithmetic: the
// book is fed by the estimate scheduler, the fleet's measurements and load failures, and read
// whenever the routed catalogue is built.

/**
 * Head room over the largest footprint measured (5 %): a model's use moves a little with its
 * requests (compute buffers, a runtime's pools), and a reading is one moment of it.
 */
export const VRAM_MARGIN = 0.05;

/** How much an engine out-of-memory failure raises a figure when its line names no size. */
export const OOM_RAISE_FACTOR = 1.5;

/** Everything learnt under one memory key (see memory-key.ts). */
export interface MemoryRecord {
  readonly key: string;
  readonly model: string;
  readonly harness: string;
  /** A neuron's estimate for this key; null until one arrived. */
  readonly estimate: EstimateAnswer | null;
  /** The largest `vram_used_mb` measured on a loaded replica; null until one was. */
  readonly observedMb: number | null;
  /**
   * A floor set when the engine ran out of GPU memory at the figure cortex placed it by; the
   * next larger measurement clears it (the model then loaded, and is known for real).
   */
  readonly raisedMb: number | null;
  /** Epoch ms of the last change. */
  readonly updatedAt: number;
}

/** A measured peak with its margin, rounded up to whole MB. */
export const withMargin = (observedMb: number): number => Math.ceil(observedMb * (1 + VRAM_MARGIN));

/**
 * The figure a model is placed by, in MB, or null while unknown (it is then not placed):
 * - a `runs_on: cpu` model holds no GPU memory: its declared figure, else 0;
 * - the largest measured footprint plus VRAM_MARGIN, once there is one;
 * - else the larger of the declared and the estimated figure, whichever exist;
 * - never below the floor an engine out-of-memory failure raised it to.
 */
export const effectiveMb = (
  entry: Pick<CatalogueEntry, "vram_mb" | "runs_on">,
  record: MemoryRecord | undefined,
): number | null => {
  if (entry.runs_on === "cpu") return entry.vram_mb ?? 0;
  const declared = entry.vram_mb ?? null;
  const estimated = record?.estimate?.vram_mb ?? null;
  const observed = record?.observedMb ?? null;
  const base =
    observed !== null
      ? withMargin(observed)
      : declared === null
        ? estimated
        : estimated === null
          ? declared
          : Math.max(declared, estimated);
  const floor = record?.raisedMb ?? null;
  if (base === null) return floor;
  return floor === null ? base : Math.max(base, floor);
};

/**
 * The floor after the engine ran out of GPU memory starting a model placed with `placedMb`:
 * what it tried to allocate on top of what it was given room for, when its line says how much;
 * else half as much again. Both are at least `placedMb` + 1, so a retry is placed differently.
 */
export const raisedMb = (placedMb: number, requestedMb: number | null): number =>
  Math.max(
    placedMb + 1,
    requestedMb === null ? Math.ceil(placedMb * OOM_RAISE_FACTOR) : placedMb + requestedMb,
  );

/** Who a record is about, for a key seen for the first time. */
export interface RecordSubject {
  readonly key: string;
  readonly model: string;
  readonly harness: string;
}

export interface MemoryBookOptions {
  /** Called with the new record after every change (to write it behind). */
  readonly onChange?: (record: MemoryRecord) => void;
  readonly now?: () => number;
}

/**
 * The records by key. Every change bumps `version`, which is how the routed catalogue knows to
 * rebuild; a change that changes nothing (the same estimate, a lower reading) does not.
 */
export class MemoryBook {
  readonly #records = new Map<string, MemoryRecord>();
  readonly #onChange: ((record: MemoryRecord) => void) | undefined;
  readonly #now: () => number;
  #version = 0;

  constructor(options: MemoryBookOptions = {}) {
    this.#onChange = options.onChange;
    this.#now = options.now ?? Date.now;
  }

  get version(): number {
    return this.#version;
  }

  get(key: string): MemoryRecord | undefined {
    return this.#records.get(key);
  }

  /** Takes records read from the database, without reporting them as changes. */
  load(records: Iterable<MemoryRecord>): void {
    for (const record of records) this.#records.set(record.key, record);
    this.#version += 1;
  }

  /** Files a neuron's estimate; false when it is the one already filed. */
  setEstimate(subject: RecordSubject, estimate: EstimateAnswer): boolean {
    const current = this.#records.get(subject.key);
    if (
      current?.estimate?.vram_mb === estimate.vram_mb &&
      current.estimate.basis === estimate.basis
    )
      return false;
    this.#put(subject, { estimate });
    return true;
  }

  /**
   * Files a measured footprint; true when it is a new peak. A new peak clears a raised floor:
   * the model loaded and was measured, which says more than the failure did.
   */
  observe(subject: RecordSubject, usedMb: number): boolean {
    const current = this.#records.get(subject.key);
    if (current?.observedMb != null && usedMb <= current.observedMb) return false;
    this.#put(subject, { observedMb: usedMb, raisedMb: null });
    return true;
  }

  /** Raises the key's floor after an engine out-of-memory failure; returns the new floor. */
  raise(subject: RecordSubject, placedMb: number, requestedMb: number | null): number {
    const floor = Math.max(
      raisedMb(placedMb, requestedMb),
      this.#records.get(subject.key)?.raisedMb ?? 0,
    );
    this.#put(subject, { raisedMb: floor });
    return floor;
  }

  #put(subject: RecordSubject, change: Partial<MemoryRecord>): void {
    const current = this.#records.get(subject.key);
    const record: MemoryRecord = {
      key: subject.key,
      model: subject.model,
      harness: subject.harness,
      estimate: current?.estimate ?? null,
      observedMb: current?.observedMb ?? null,
      raisedMb: current?.raisedMb ?? null,
      ...change,
      updatedAt: this.#now(),
    };
    this.#records.set(subject.key, record);
    this.#version += 1;
    this.#onChange?.(record);
  }
}
