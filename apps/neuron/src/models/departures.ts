import type { LoadProgress } from "@cortex/protocol";
import type { Timers } from "../timers.js";
import { evictionsFor, readAgainFor } from "./load-request.js";
import type { Log, ManagerDeps } from "./manager-deps.js";
import type { ModelEntry } from "./model-entry.js";
import type { ModelRegistry } from "./model-registry.js";

export interface DepartureDeps {
  readonly models: ModelRegistry;
  readonly timers: Timers;
  readonly log: Log;
  readonly devices: ManagerDeps["devices"];
  /** Whether that reading is fresh, and a new one when it is not. */
  readonly gpuMemory?: ManagerDeps["gpuMemory"];
  /** A load's progress (`evicting`), to whoever follows it. */
  readonly progress: (id: string, progress: Pick<LoadProgress, "phase" | "message">) => void;
}

/**
 * How models leave the GPU, and what the node remembers of them afterwards. The ModelManager
 * decides when; this carries it out, every status change through the registry.
 *
 * - **Forgotten** (`POST /models/unload`, an explicit load's evictions): out of the list at
 *   once, its process stopping; a load of the same id waits for that stop (`leaving`). An
 *   explicit load's victims are forgotten so that no lazy reload takes back the memory cortex
 *   or an operator just gave to another model.
 * - **Kept `unloaded`** (the idle TTL, a lazy reload's swap): listed with its spec, so the next
 *   request for it reloads it, on its own turn in the swap queue.
 */
export class Departures {
  readonly #deps: DepartureDeps;
  /** Stops under way of models already forgotten, by id. */
  readonly #leaving = new Map<string, Promise<unknown>>();

  constructor(deps: DepartureDeps) {
    this.#deps = deps;
  }

  /** The stop under way of a forgotten model with this id, if any. */
  leaving(id: string): Promise<unknown> | undefined {
    return this.#leaving.get(id);
  }

  /**
   * An explicit load's room: idle models of priority ≤ its own, claimed at once (synchronously
   * from the check to the claims: two loads can never count the same free memory, because the
   * entry is already `loading`, and so resident, here), then forgotten. Throws
   * insufficient_vram, claiming nothing, when that is not enough. A plan that would refuse or
   * evict on a reading of the GPUs older than the last exit waits for a new reading first.
   */
  async evictFor(entry: ModelEntry): Promise<void> {
    const { models } = this.#deps;
    const reading = readAgainFor(entry, models.entries(), this.#deps);
    if (reading) await reading;
    const evict = evictionsFor(entry, models.entries(), this.#deps);
    const victims = evict.flatMap((id) => models.get(id) ?? []);
    for (const victim of victims) models.setStatus(victim, "unloaded");
    if (victims.length === 0) return;
    this.#deps.progress(entry.spec.id, {
      phase: "evicting",
      message: `evicting ${evict.join(", ")}`,
    });
    await Promise.all(
      victims.map(async (victim) => {
        await this.forget(victim);
        this.#deps.log.info({ model: victim.spec.id }, "model evicted");
      }),
    );
  }

  /**
   * A lazy reload's swap for model `forId`: the `evict`ed are claimed `unloaded` at once and
   * their processes stop; they stay listed with their specs. Only loaded ones: the swap queue
   * swaps only once nothing runs on them (a load counts as running). Resolves once all stopped.
   */
  swapOut(forId: string, evict: readonly string[]): Promise<void> {
    const victims = evict.flatMap((id) => {
      const victim = this.#deps.models.get(id);
      return victim?.status === "loaded" ? [victim] : [];
    });
    if (victims.length === 0) return Promise.resolve();
    const ids = victims.map((victim) => victim.spec.id);
    const stopped = Promise.all(
      victims.map((victim) => {
        this.clearIdle(victim);
        this.#deps.models.setStatus(victim, "unloaded");
        return this.stop(victim);
      }),
    ).then(() => this.#deps.log.info({ model: forId, swapped_out: ids }, "swapped out"));
    this.#deps.progress(forId, { phase: "evicting", message: `swapping out ${ids.join(", ")}` });
    return stopped;
  }

  /**
   * Takes the entry out of the list at once (no request or load can reach it any more), then
   * stops its process; a load of the same id meanwhile waits for the stop (`leaving`).
   */
  async forget(entry: ModelEntry): Promise<void> {
    const { models } = this.#deps;
    const id = entry.spec.id;
    this.clearIdle(entry);
    models.remove(entry, false);
    const stopping = this.stop(entry);
    this.#leaving.set(id, stopping);
    try {
      await stopping;
    } finally {
      if (this.#leaving.get(id) === stopping) this.#leaving.delete(id);
      models.announceRemoved(id);
    }
  }

  /** Stops the harness, and a restart pending after a crash: it never starts. */
  stop(entry: ModelEntry): Promise<void> {
    entry.loadedAtMs = null;
    return entry.harness.stop();
  }

  clearIdle(entry: ModelEntry): void {
    if (entry.idleTimer) this.#deps.timers.clear(entry.idleTimer);
    entry.idleTimer = null;
  }

  /** Idle TTL counts from the end of the last request: (re)armed when nothing is in flight. */
  scheduleIdle(entry: ModelEntry): void {
    this.clearIdle(entry);
    const ttl = entry.spec.idle_ttl_s;
    if (ttl <= 0 || entry.status !== "loaded") return;
    if (entry.admission.inFlight > 0) return;
    entry.idleTimer = this.#deps.timers.set(() => void this.#idleUnload(entry), ttl * 1000);
  }

  async #idleUnload(entry: ModelEntry): Promise<void> {
    entry.idleTimer = null;
    if (entry.status !== "loaded" || entry.loading || entry.admission.inFlight > 0) return;
    this.#deps.log.info(
      { model: entry.spec.id, idle_ttl_s: entry.spec.idle_ttl_s },
      "idle: unloading",
    );
    this.#deps.models.setStatus(entry, "unloaded");
    await this.stop(entry);
  }
}
