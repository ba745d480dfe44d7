import {
  type Catalogue,
  type CatalogueEntries,
  type CatalogueProblem,
  entryProblem,
  formatProblems,
} from "@cortex/catalogue";
import {
  type CatalogueEntry,
  type CatalogueReport,
  type EstimateAnswer,
  type EstimateRequest,
  engineOutOfMemory,
  type FleetEvent,
  type FleetSnapshot,
  type ModelProfile,
  type NeuronModel,
} from "@cortex/protocol";
import type { Log } from "../log.js";
import type { MemoryRow } from "../state/memory-table.js";
import { catalogueReport } from "./catalogue-report.js";
import { type EstimateJob, EstimateScheduler, type SchedulerTimers } from "./estimate-scheduler.js";
import { estimateNodes, estimateRequest } from "./estimate-targets.js";
import { measuredView } from "./measured-view.js";
import { MemoryBook, type MemoryRecord, type RecordSubject } from "./memory-book.js";
import { memoryKey } from "./memory-key.js";
import { RoutedCatalogue } from "./routed-catalogue.js";

// Cortex's side of issue 18 in one place: the book of what is known of each model's GPU
// memory (read back from the database at start, written behind on every change), the
// background estimates, the measurements read from every poll, the raise after an engine ran
// out of memory, and the routed catalogue and the admin report built from all of it.

/** How long one estimate may take: a neuron reads a remote header in at most 30 s. */
export const ESTIMATE_TIMEOUT_MS = 45_000;

/** What the memory needs of a neuron client. */
export interface EstimateClient {
  estimate(request: EstimateRequest, options: { timeoutMs: number }): Promise<EstimateAnswer>;
}

/** What the memory needs of the fleet store. */
export interface MemoryFleet {
  readonly snapshot: FleetSnapshot;
  onReplaced(listener: (snapshot: FleetSnapshot) => void): () => void;
  emit(event: FleetEvent): void;
}

/** Whether a model can be placed now, for the dispatcher. */
export type MemoryStatus =
  | { readonly kind: "ready" }
  /** Its figure is unknown until an estimate arrives; `detail` says why it has not yet. */
  | { readonly kind: "pending"; readonly detail: string | null }
  /** Its figure can never be worked out: the catalogue has to declare it. */
  | { readonly kind: "refused"; readonly message: string };

export interface GpuMemoryOptions {
  /** The catalogue's entries now (the watcher's current ones). */
  readonly entries: () => CatalogueEntries;
  /** The catalogue's path, named by a problem whose entry has gone. */
  readonly cataloguePath: string;
  readonly fleet: MemoryFleet;
  readonly client: (node: string) => EstimateClient;
  /** What the database holds, read at start. */
  readonly rows: readonly MemoryRow[];
  /** Writes a changed record behind. */
  readonly save: (row: MemoryRow) => void;
  readonly log: Log;
  /** A model's figure changed (known, raised, refused): requests waiting for it look again. */
  readonly onSettled?: (model: string) => void;
  readonly concurrency?: number;
  readonly timers?: SchedulerTimers;
  readonly now?: () => number;
}

const recordOf = (row: MemoryRow): MemoryRecord => ({
  key: row.key,
  model: row.model,
  harness: row.harness,
  estimate:
    row.estimatedMb === null || row.estimate === null
      ? null
      : { vram_mb: row.estimatedMb, basis: row.estimate.basis, breakdown: row.estimate.breakdown },
  observedMb: row.observedMb,
  raisedMb: row.raisedMb,
  updatedAt: row.updatedAt,
});

const rowOf = (record: MemoryRecord): MemoryRow => ({
  key: record.key,
  model: record.model,
  harness: record.harness,
  estimatedMb: record.estimate?.vram_mb ?? null,
  estimate:
    record.estimate === null
      ? null
      : { basis: record.estimate.basis, breakdown: { ...record.estimate.breakdown } },
  observedMb: record.observedMb,
  raisedMb: record.raisedMb,
  updatedAt: record.updatedAt,
});

const subjectOf = (entry: CatalogueEntry): RecordSubject => ({
  key: memoryKey(entry),
  model: entry.id,
  harness: entry.harness,
});

/**
 * The GPU memory cortex has learnt, and what it places by. `start` once the store and clients
 * exist; `catalogueChanged` after every reload; `stop` before closing the database.
 */
export class GpuMemory {
  readonly #options: GpuMemoryOptions;
  readonly #book: MemoryBook;
  readonly #routed: RoutedCatalogue;
  readonly #scheduler: EstimateScheduler;
  /**
   * Entries that cannot be estimated and declare no figure, by memory key: the entry's id and
   * the problem's text, placed in the files when reported (a reload may move the entry).
   */
  readonly #problems = new Map<string, { readonly id: string; readonly message: string }>();
  /** Resident entries already looked at: the poller keeps unchanged ones as the same object. */
  readonly #seen = new WeakSet<NeuronModel>();
  #unsubscribe: (() => void) | undefined;

  constructor(options: GpuMemoryOptions) {
    this.#options = options;
    this.#book = new MemoryBook({
      onChange: (record) => options.save(rowOf(record)),
      ...(options.now ? { now: options.now } : {}),
    });
    this.#book.load(options.rows.map(recordOf));
    this.#routed = new RoutedCatalogue(options.entries, this.#book);
    this.#scheduler = new EstimateScheduler({
      ask: (entry, node) =>
        options.client(node).estimate(estimateRequest(entry), { timeoutMs: ESTIMATE_TIMEOUT_MS }),
      candidates: (entry) => estimateNodes(entry, options.fleet.snapshot),
      known: (key) => this.#book.get(key)?.estimate != null,
      onEstimate: (job, answer, node) => this.#estimated(job, answer, node),
      onRefused: (job, reason) => this.#refused(job, reason),
      // Only an entry without a declared figure waits on its estimate: that one is a warning.
      onRetry: (job, reason, delayMs) =>
        options.log[job.entry.vram_mb === undefined ? "warn" : "debug"](
          { model: job.entry.id, err: reason, retry_in_ms: delayMs },
          "estimating the model's GPU memory failed; trying again",
        ),
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.timers ? { timers: options.timers } : {}),
    });
  }

  /** The catalogue routing reads: every entry placed by its effective figure. */
  catalogue(): Catalogue {
    return this.#routed.current();
  }

  /** The catalogue for answers that show sizes: an unknown figure shows as 0, not infinity. */
  listed(): Catalogue {
    return this.#routed.listed();
  }

  /** The fleet as placement counts it: residents at least at their measured footprint. */
  view(snapshot: FleetSnapshot): FleetSnapshot {
    return measuredView(snapshot);
  }

  /** `GET /api/catalogue`. */
  report(): CatalogueReport {
    const entries = this.#options.entries();
    return catalogueReport(entries, this.#book, this.#routed, this.#problemsIn(entries));
  }

  /** Whether the model (a catalogue id) can be placed now, waits for its estimate, or never. */
  status(model: string): MemoryStatus {
    const entry = this.#options.entries().byId.get(model);
    if (entry === undefined || this.#routed.effective(entry) !== null) return { kind: "ready" };
    const key = memoryKey(entry);
    const refusal = this.#scheduler.refusal(key);
    if (refusal !== undefined)
      return {
        kind: "refused",
        message: `model "${model}" declares no vram_mb and its GPU memory cannot be estimated (${refusal}); declare vram_mb in its catalogue entry`,
      };
    return { kind: "pending", detail: this.#scheduler.lastError(key) };
  }

  /** Starts the estimates for the catalogue and reading measurements from every poll. */
  start(): void {
    this.#unsubscribe ??= this.#options.fleet.onReplaced((snapshot) => {
      this.#observe(snapshot);
      this.#scheduler.fleetChanged();
    });
    this.#observe(this.#options.fleet.snapshot);
    this.catalogueChanged();
  }

  /** The catalogue was reloaded: estimate what is new, forget problems of entries gone. */
  catalogueChanged(): void {
    const entries = this.#options.entries();
    const jobs: EstimateJob[] = entries.models
      .filter((entry) => entry.runs_on === "gpu")
      .map((entry) => ({ key: memoryKey(entry), entry }));
    const keys = new Set(jobs.map((job) => job.key));
    for (const key of this.#problems.keys()) if (!keys.has(key)) this.#problems.delete(key);
    this.#scheduler.sync(jobs);
  }

  /**
   * A load placed with `profile.vram_mb` failed because the engine ran out of GPU memory
   * (`message` is the neuron's): the model's figure is raised so the next placement gives it
   * more room. Anything else is ignored.
   */
  outOfMemory(profile: ModelProfile, node: string, message: string): void {
    const found = engineOutOfMemory(message);
    if (found === null || profile.runs_on === "cpu" || !Number.isFinite(profile.vram_mb)) return;
    const floor = this.#book.raise(subjectOf(profile), profile.vram_mb, found.requested_mb);
    this.#options.log.warn(
      {
        model: profile.id,
        node,
        placed_mb: profile.vram_mb,
        requested_mb: found.requested_mb,
        raised_mb: floor,
      },
      "the engine ran out of GPU memory; the model's memory figure is raised",
    );
    this.#options.onSettled?.(profile.id);
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#scheduler.close();
  }

  #estimated(job: EstimateJob, answer: EstimateAnswer, node: string): void {
    const changed = this.#book.setEstimate(subjectOf(job.entry), answer);
    this.#problems.delete(job.key);
    if (!changed) return;
    this.#options.log.info(
      {
        model: job.entry.id,
        node,
        estimated_mb: answer.vram_mb,
        declared_mb: job.entry.vram_mb ?? null,
        basis: answer.basis,
      },
      "GPU memory estimated",
    );
    this.#options.onSettled?.(job.entry.id);
  }

  /** The problems as placed in `entries`' files. */
  #problemsIn(entries: CatalogueEntries): CatalogueProblem[] {
    return [...this.#problems.values()].map(({ id, message }) =>
      entryProblem(entries, id, "vram_mb", message, this.#options.cataloguePath),
    );
  }

  #refused(job: EstimateJob, reason: string): void {
    const { entry } = job;
    if (entry.vram_mb !== undefined) {
      // It declares its figure: the estimate was only for the report.
      this.#options.log.info({ model: entry.id, reason }, "GPU memory not estimable; declared");
      return;
    }
    const entries = this.#options.entries();
    const message = `required: the GPU memory of "${entry.source}" cannot be estimated (${reason})`;
    this.#problems.set(job.key, { id: entry.id, message });
    const error = formatProblems([
      entryProblem(entries, entry.id, "vram_mb", message, this.#options.cataloguePath),
    ]);
    this.#options.log.warn({ problems: error }, "catalogue entry cannot be placed");
    this.#options.fleet.emit({
      type: "catalogue_problem",
      at: new Date((this.#options.now ?? Date.now)()).toISOString(),
      model: entry.id,
      error,
    });
    this.#options.onSettled?.(entry.id);
  }

  /** Files every loaded replica's measured footprint under its entry's key. */
  #observe(snapshot: FleetSnapshot): void {
    const entries = this.#options.entries();
    for (const node of snapshot.nodes) {
      for (const model of node.models) {
        if (this.#seen.has(model)) continue;
        this.#seen.add(model);
        const used = model.vram_used_mb;
        // Nothing measured (or nothing held yet: no GPU model holds 0 MB once loaded).
        if (model.status !== "loaded" || used == null || used <= 0) continue;
        const entry = entries.byId.get(model.id);
        // A replica loaded by hand, or with settings the catalogue no longer has, says nothing
        // about the entry's figure.
        if (
          entry === undefined ||
          entry.runs_on !== "gpu" ||
          entry.harness !== model.harness ||
          entry.max_concurrency !== model.max_concurrency
        )
          continue;
        if (!this.#book.observe(subjectOf(entry), used)) continue;
        this.#options.log.info(
          {
            model: entry.id,
            node: node.name,
            observed_mb: used,
            declared_mb: entry.vram_mb ?? null,
            loaded_with_mb: model.vram_mb,
          },
          "GPU memory measured: a new peak",
        );
        this.#options.onSettled?.(entry.id);
      }
    }
  }
}
