import type { CatalogueEntries, CatalogueProblem } from "@cortex/catalogue";
import { type CatalogueReport, type CatalogueReportModel, vramFlag } from "@cortex/protocol";
import type { MemoryBook } from "./memory-book.js";
import { memoryKey } from "./memory-key.js";
import type { RoutedCatalogue } from "./routed-catalogue.js";

/**
 * `GET /api/catalogue`: every entry with `vram_mb` and `min_device_vram_mb` as placement counts
 * them (null while unknown), what cortex knows of its memory (declared, estimated, observed,
 * effective), the estimate's basis and breakdown, and the flag for a declared figure more than
 * 20 % off the measured one; then the problems cortex found with entries after loading them.
 */
export const catalogueReport = (
  entries: CatalogueEntries,
  book: MemoryBook,
  routed: RoutedCatalogue,
  problems: readonly CatalogueProblem[],
): CatalogueReport => {
  const catalogue = routed.current();
  const models = entries.models.map((entry): CatalogueReportModel => {
    const record = book.get(memoryKey(entry));
    const gpu = entry.runs_on === "gpu";
    const effective = routed.effective(entry);
    const declared = entry.vram_mb ?? null;
    const observed = gpu ? (record?.observedMb ?? null) : null;
    const profile = catalogue.byId.get(entry.id);
    const perDevice = profile?.min_device_vram_mb ?? null;
    const estimate = gpu ? (record?.estimate ?? null) : null;
    return {
      ...entry,
      vram_mb: effective,
      min_device_vram_mb: perDevice !== null && Number.isFinite(perDevice) ? perDevice : null,
      vram: {
        declared_mb: declared,
        estimated_mb: estimate?.vram_mb ?? null,
        observed_mb: observed,
        effective_mb: effective,
      },
      estimate:
        estimate === null ? null : { basis: estimate.basis, breakdown: { ...estimate.breakdown } },
      vram_flag: vramFlag(declared, observed),
    };
  });
  return { models, problems: problems.map((problem) => ({ ...problem })) };
};
