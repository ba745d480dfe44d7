import { type Catalogue, type CatalogueEntries, createCatalogue } from "@cortex/catalogue";
import type { CatalogueEntry, ModelProfile } from "@cortex/protocol";
import { effectiveMb, type MemoryBook } from "./memory-book.js";
import { memoryKey } from "./memory-key.js";

// The catalogue routing reads: every entry as a ModelProfile whose `vram_mb` is the entry's
// effective figure. Everything in cortex that places, evicts or plans reads this one.

/**
 * What an entry whose figure is unknown (no declared `vram_mb`, no estimate yet) is placed by:
 * more than any GPU has, so no path can place it by mistake. It stays in the catalogue (listed,
 * routable to replicas that already run it); the dispatcher makes requests that would place it
 * wait for its estimate instead of taking routing's refusal.
 */
export const UNKNOWN_VRAM_MB = Number.POSITIVE_INFINITY;

/**
 * The profile of an entry placed by `effective` MB: `min_device_vram_mb` as declared, else the
 * even share of the effective figure over `min_devices` (0 for a cpu model).
 */
export const profileOf = (entry: CatalogueEntry, effective: number | null): ModelProfile => {
  const vram = effective ?? UNKNOWN_VRAM_MB;
  return {
    ...entry,
    vram_mb: vram,
    min_device_vram_mb:
      entry.min_device_vram_mb ??
      (entry.runs_on === "cpu"
        ? 0
        : effective === null
          ? vram
          : Math.ceil(vram / entry.min_devices)),
  };
};

/** A profile built for an entry, kept while the entry's figure stays the same. */
interface Built {
  readonly effective: number | null;
  readonly profile: ModelProfile;
}

/**
 * The routed catalogue, rebuilt only when the entries (a reload) or the book (an estimate, a
 * new peak, a raise) changed; the hot path gets the cached one. A rebuild keeps the profile
 * objects of entries whose figure did not change.
 */
export class RoutedCatalogue {
  readonly #entries: () => CatalogueEntries;
  readonly #book: MemoryBook;
  readonly #built = new WeakMap<CatalogueEntry, Built>();
  #source: CatalogueEntries | undefined;
  #version = -1;
  #current: Catalogue | undefined;
  #listed: Catalogue | undefined;
  #listedFrom: Catalogue | undefined;

  constructor(entries: () => CatalogueEntries, book: MemoryBook) {
    this.#entries = entries;
    this.#book = book;
  }

  current(): Catalogue {
    const entries = this.#entries();
    if (this.#current && entries === this.#source && this.#book.version === this.#version)
      return this.#current;
    this.#source = entries;
    this.#version = this.#book.version;
    this.#current = createCatalogue(entries.models.map((entry) => this.#profile(entry)));
    return this.#current;
  }

  /**
   * The same models for answers that show a size rather than place anything (Ollama's
   * `/api/tags`): an entry of unknown figure shows 0 there instead of an infinite size.
   */
  listed(): Catalogue {
    const current = this.current();
    if (this.#listed && this.#listedFrom === current) return this.#listed;
    this.#listedFrom = current;
    this.#listed = current.models.every((profile) => Number.isFinite(profile.vram_mb))
      ? current
      : createCatalogue(
          current.models.map((profile) =>
            Number.isFinite(profile.vram_mb)
              ? profile
              : { ...profile, vram_mb: 0, min_device_vram_mb: 0 },
          ),
        );
    return this.#listed;
  }

  /** The entry's figure now: null while unknown. */
  effective(entry: CatalogueEntry): number | null {
    return effectiveMb(entry, this.#book.get(memoryKey(entry)));
  }

  #profile(entry: CatalogueEntry): ModelProfile {
    const effective = this.effective(entry);
    const built = this.#built.get(entry);
    if (built?.effective === effective) return built.profile;
    const profile = profileOf(entry, effective);
    this.#built.set(entry, { effective, profile });
    return profile;
  }
}
